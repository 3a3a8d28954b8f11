"""Acked direct messages: meshchat against Reticulum/LXMF, both on loopback TCP, in one run.

What is measured. For each system, a sender and a receiver linked by one TCP connection on
127.0.0.1; the sender sends direct messages to the receiver and counts a message when the
receiver's end-to-end acknowledgement is back at the sender:

- **burst**: N messages handed to the sender as fast as its API takes them, timed from the
  first hand-over until the last one is acked -> acked messages/s;
- **one at a time**: send, wait for the ack, send the next, M times -> messages/s;
- **latency**: send -> ack of each of those single messages (median and p95).

meshchat: two :class:`~meshchat.node.Node` objects, each with an encrypted SQLite store and a
:class:`~meshchat.transports.lan.LanTransport` bound to 127.0.0.1 (no mDNS; the sender dials
the receiver's port); the sender runs in this process, the receiver in a child process started
from this script, so each node has its own interpreter as each LXMF peer has. The nodes
exchange contact cards, so every message is a sealed, forward-secret direct message, and
"acked" means the sender's store marked it DELIVERED (timed by the node's state notice).
Router limits are the defaults (200 frames/s per link, bucket 400): a burst of 200 fits the
bucket; a sustained stream above 200 messages/s would be cut to that rate by design.

LXMF: Reticulum is one instance per process, so the script starts itself twice more as the LXMF
sender and receiver, each with its own config dir written before Reticulum first starts: no
shared instance, no AutoInterface, only a TCPServerInterface (receiver) or TCPClientInterface
(sender) on 127.0.0.1. The sender resolves the receiver's ``lxmf.delivery`` destination by a
path request and sends ``LXMessage`` objects with DIRECT delivery (over an RNS link, the
message as one link packet); "acked" means the message's delivery callback ran (state
DELIVERED, from the receiver's proof). The parent drives both by JSON lines on stdin/stdout.

Both systems first send a few warm-up messages (the meshchat session handshake, the LXMF link
establishment), not counted. Each measurement is repeated ``--reps`` times, alternating the
systems; the medians are reported. A second meshchat pair with its stores on /dev/shm
(tmpfs: fsync costs nothing) is measured too and shown beside the first, to show what
durable storage costs; the ratios use the normal pair. A last measurement gives the floor
under any meshchat round trip: the CPU of one message and its ack through both sides'
forward-secret crypto alone (no sockets, no store), beside the time the latency and
one-at-a-time targets leave for a whole round trip, and the same turn's session layer on the
current libraries and on vodozemac (``bench/crypto_floor.py``; its ``crypto_floor_ms`` line).
The cost of one durable commit is measured in the same run: the median time of the sending
store's own commits during the single messages (SQLite, WAL, ``synchronous = FULL``), since
one message and its ack wait for three of them in sequence (the sender's message, the
receiver's copy before its ack, the sender's DELIVERED state). The target lines, after the
crypto floor's::

    meshchat_vs_lxmf_latency_tmpfs_ratio: R (target <= 1.0)   p50 with stores on tmpfs / LXMF's
    meshchat_latency_disk_p50_ms: X (target <= Y)             Y = LXMF's p50 + one commit
    meshchat_latency_disk_p50_ms_three_commits: X (target <= Y)  Y = LXMF's p50 + three commits
    meshchat_vs_lxmf_single_tmpfs_ratio: R (target >= 1.0)    one at a time, tmpfs / LXMF
    meshchat_vs_lxmf_burst_ratio: R (target >= 15)

Run ``python bench/vs_lxmf.py`` (about a minute; needs the ``bench`` extra: rns, lxmf).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import queue
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crypto_floor import Floor
from crypto_floor import lines as crypto_floor_lines
from crypto_floor import measure as measure_crypto_floor
from echo_floor import measure as measure_echo_floor

TEXT = "benchmark message {i:06d}: a short chat line of about sixty bytes"
WARMUP = 3


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


@dataclass
class Result:
    burst_n: int = 0
    single_m: int = 0
    burst_rates: list[float] = field(default_factory=list)
    single_rates: list[float] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)

    @property
    def burst(self) -> float:
        return statistics.median(self.burst_rates)

    @property
    def single(self) -> float:
        return statistics.median(self.single_rates)

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies_ms)

    @property
    def p95(self) -> float:
        return percentile(self.latencies_ms, 0.95)


# -- meshchat -------------------------------------------------------------------------------------


class MeshchatPair:
    """Two nodes, contacts of each other, linked over loopback TCP, each in its own process.

    The sender's node runs in this process's event loop (the parent does nothing else while
    it measures meshchat); the receiver's runs in a child process started from this script
    (``--meshchat-peer``), as the LXMF peers do, so each node has its own interpreter and
    neither waits for the other's share of one GIL.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.delivered: dict[bytes, float] = {}
        self.changed = asyncio.Event()
        self.node: Any = None
        self.store: Any = None
        self.receiver: Peer | None = None
        #: durations of the sender store's commits during the single messages
        self.commits_ms: list[float] = []

    async def start(self) -> None:
        from meshchat.identity import ContactCard, Identity
        from meshchat.node import Node
        from meshchat.store import Store
        from meshchat.transports.lan import LanTransport

        self.root.mkdir(parents=True, exist_ok=True)
        self.receiver = Peer("meshchat receiver", self.root / "receiver", 0, kind="meshchat")
        hello = self.receiver.recv()
        identity = Identity.generate()
        lan = LanTransport(
            identity,
            host="127.0.0.1",
            discovery=False,
            static_peers=[("127.0.0.1", int(hello["port"]))],
            dial_delay=0.0,
        )
        self.store = Store.open(self.root / "a.db", key=os.urandom(32))
        self.node = Node(identity, "a", self.store, [lan])
        await self.node.start()
        await self.node.add_card(ContactCard.from_text(hello["card"]), "b")
        self.receiver.ask(card=(await self.node.card()).to_text())
        async with asyncio.timeout(20):
            while not self.node.links:
                await asyncio.sleep(0.01)
        self.node.subscribe(self._notice)

    def _notice(self, notice: Any) -> None:
        from meshchat.store.records import MessageState

        if notice.kind == "state" and notice.state is MessageState.DELIVERED:
            assert notice.msg_id is not None
            self.delivered.setdefault(notice.msg_id, time.perf_counter())
            self.changed.set()

    async def _wait(self, ids: list[bytes], timeout: float = 60.0) -> None:
        async with asyncio.timeout(timeout):
            while not all(i in self.delivered for i in ids):
                self.changed.clear()
                await self.changed.wait()

    async def burst(self, n: int, base: int) -> float:
        start = time.perf_counter()
        ids = [(await self.node.send_text("b", TEXT.format(i=base + i))).msg_id for i in range(n)]
        await self._wait(ids)
        return n / (max(self.delivered[i] for i in ids) - start)

    async def singles(self, m: int, base: int) -> tuple[float, list[float]]:
        latencies = []
        start = time.perf_counter()
        for i in range(m):
            t0 = time.perf_counter()
            msg_id = (await self.node.send_text("b", TEXT.format(i=base + i))).msg_id
            await self._wait([msg_id])
            latencies.append((self.delivered[msg_id] - t0) * 1000)
            # the sender's two commits of this message (sent, then delivered), as timed by
            # the store itself
            self.commits_ms.extend(ns / 1e6 for ns in self.store.recent_commits_ns()[-2:])
        return m / (time.perf_counter() - start), latencies

    async def close(self) -> None:
        if self.node is not None:
            with contextlib.suppress(Exception):
                await self.node.stop()
        if self.store is not None:
            with contextlib.suppress(Exception):
                self.store.close()
        if self.receiver is not None:
            self.receiver.close()


def meshchat_receiver(root: Path) -> None:
    """The receiving node of a :class:`MeshchatPair`; JSON lines on stdin and stdout."""

    async def run() -> None:
        from meshchat.identity import ContactCard, Identity
        from meshchat.node import Node
        from meshchat.store import Store
        from meshchat.transports.lan import LanTransport

        loop = asyncio.get_running_loop()
        identity = Identity.generate()
        lan = LanTransport(identity, host="127.0.0.1", discovery=False)
        store = Store.open(root / "b.db", key=os.urandom(32))
        node = Node(identity, "b", store, [lan])
        await node.start()
        card = (await node.card()).to_text()
        print(json.dumps({"card": card, "port": lan.listening_port}), flush=True)
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            cmd = json.loads(line)
            if cmd.get("cmd") == "quit":
                break
            await node.add_card(ContactCard.from_text(cmd["card"]), "a")
            print(json.dumps({"ready": True}), flush=True)
        await node.stop()
        store.close()

    root.mkdir(parents=True, exist_ok=True)
    asyncio.run(run())


# -- LXMF peers (subprocesses) --------------------------------------------------------------------

RNS_CONFIG = """\
[reticulum]
  enable_transport = No
  share_instance = No
  panic_on_interface_error = Yes
  discover_interfaces = No

[logging]
  loglevel = 2

[interfaces]
  [[bench tcp]]
    type = {kind}
    enabled = yes
{address}
"""


def write_rns_config(configdir: Path, role: str, port: int) -> None:
    """Written before Reticulum first starts there, so it never writes its default config
    (which enables AutoInterface on every network interface)."""
    configdir.mkdir(parents=True, exist_ok=True)
    if role == "receiver":
        kind = "TCPServerInterface"
        address = f"    listen_ip = 127.0.0.1\n    listen_port = {port}"
    else:
        kind = "TCPClientInterface"
        address = f"    target_host = 127.0.0.1\n    target_port = {port}"
    (configdir / "config").write_text(RNS_CONFIG.format(kind=kind, address=address))


def lxmf_peer(role: str, configdir: Path) -> None:
    """One LXMF peer; JSON commands on stdin, JSON replies on the original stdout."""
    # Reticulum logs to stdout: keep that stream for the protocol and send the rest to stderr.
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    import LXMF  # type: ignore[import-untyped]
    import RNS  # type: ignore[import-untyped]

    def reply(**fields: Any) -> None:
        proto.write(json.dumps(fields) + "\n")

    RNS.Reticulum(configdir=str(configdir), loglevel=RNS.LOG_ERROR)
    identity = RNS.Identity()
    router = LXMF.LXMRouter(identity=identity, storagepath=str(configdir / "lxmf"))
    source = router.register_delivery_identity(identity, display_name=role)
    received = 0
    lock = threading.Condition()

    def on_message(_message: Any) -> None:
        nonlocal received
        with lock:
            received += 1

    router.register_delivery_callback(on_message)
    reply(event="ready", hash=source.hash.hex())
    target: Any = None
    counter = 0

    def send(done: dict[int, float], failed: list[int]) -> tuple[int, float]:
        nonlocal counter
        counter += 1
        index = counter

        def ok(_m: Any) -> None:
            with lock:
                done.setdefault(index, time.perf_counter())
                lock.notify_all()

        def bad(_m: Any) -> None:
            with lock:
                failed.append(index)
                lock.notify_all()

        t0 = time.perf_counter()
        message = LXMF.LXMessage(
            target, source, TEXT.format(i=index), "", desired_method=LXMF.LXMessage.DIRECT
        )
        message.register_delivery_callback(ok)
        message.register_failed_callback(bad)
        router.handle_outbound(message)
        return index, t0

    def wait(done: dict[int, float], failed: list[int], ids: list[int], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with lock:
            while not all(i in done for i in ids):
                left = deadline - time.monotonic()
                if failed or left <= 0:
                    return False
                lock.wait(left)
        return True

    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["cmd"] == "quit":
            break
        if cmd["cmd"] == "received":
            with lock:
                reply(received=received)
        elif cmd["cmd"] == "connect":
            dest_hash = bytes.fromhex(cmd["hash"])
            deadline = time.monotonic() + 30
            RNS.Transport.request_path(dest_hash)
            while not RNS.Transport.has_path(dest_hash) and time.monotonic() < deadline:
                time.sleep(0.05)
            recipient = RNS.Identity.recall(dest_hash)
            if recipient is None:
                reply(error="no path to the receiver")
                continue
            target = RNS.Destination(
                recipient, RNS.Destination.OUT, RNS.Destination.SINGLE, "lxmf", "delivery"
            )
            done: dict[int, float] = {}
            failed: list[int] = []
            ids = [send(done, failed)[0] for _ in range(cmd.get("warmup", WARMUP))]
            reply(connected=wait(done, failed, ids, 60))
        elif cmd["cmd"] == "burst":
            done, failed = {}, []
            start = time.perf_counter()
            ids = [send(done, failed)[0] for _ in range(cmd["n"])]
            if wait(done, failed, ids, cmd.get("timeout", 300)):
                reply(rate=len(ids) / (max(done[i] for i in ids) - start))
            else:
                reply(error=f"burst: {len(done)} of {len(ids)} acked, {len(failed)} failed")
        elif cmd["cmd"] == "singles":
            done, failed = {}, []
            latencies = []
            start = time.perf_counter()
            ok = True
            for _ in range(cmd["m"]):
                index, t0 = send(done, failed)
                if not wait(done, failed, [index], 60):
                    ok = False
                    break
                latencies.append((done[index] - t0) * 1000)
            if ok:
                reply(rate=cmd["m"] / (time.perf_counter() - start), latencies=latencies)
            else:
                reply(error=f"single message not acked after {len(latencies)}")
    proto.flush()
    with contextlib.suppress(Exception):
        RNS.Reticulum.exit_handler()
    os._exit(0)


class Peer:
    """Parent side of one peer subprocess (an LXMF peer, or a meshchat receiver)."""

    def __init__(self, role: str, configdir: Path, port: int, kind: str = "lxmf") -> None:
        configdir.mkdir(parents=True, exist_ok=True)
        if kind == "lxmf":
            write_rns_config(configdir, role, port)
            argv = ["--lxmf-peer", role, "--dir", str(configdir)]
        else:
            argv = ["--meshchat-peer", "--dir", str(configdir)]
        self.role = f"LXMF {role}" if kind == "lxmf" else role
        self.log = (configdir / "stderr.log").open("w")
        self.proc = subprocess.Popen(
            [sys.executable, __file__, *argv],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            bufsize=1,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put("")

    def recv(self, timeout: float = 60) -> dict[str, Any]:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise RuntimeError(f"{self.role}: no answer in {timeout} s") from None
        if not line:
            raise RuntimeError(f"{self.role} exited (see {self.log.name})")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"{self.role}: {answer['error']}")
        return answer

    def ask(self, timeout: float = 60, **cmd: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        return self.recv(timeout)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            assert self.proc.stdin is not None
            self.proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


# -- the floor ------------------------------------------------------------------------------------


def crypto_floor_ms(reps: int = 5) -> Floor:
    """CPU milliseconds of one message and its ack through both sides' crypto, nothing else.

    ``bench/crypto_floor.py``: ``bench/pipeline.py``'s live turn (the sender's ratchet step,
    one-packet key, seal and signature; the receiver's verify, open, ratchet step and sealed
    ack; the sender opening the ack; each side's session blob), beside the session layer alone
    on the current libraries and on vodozemac's Olm and Megolm. No sockets, no event loop, no
    store: the least any meshchat round trip with forward-secret sessions costs on this machine
    (medians of ``reps`` runs of 100 turns).
    """
    return measure_crypto_floor(reps, 100)


# -- the run --------------------------------------------------------------------------------------


def table(mc: Result, lx: Result, shm: Result | None) -> str:
    def row(name: str, fmt: str, attr: str, lower_is_better: bool) -> str:
        m, x = getattr(mc, attr), getattr(lx, attr)
        ratio = x / m if lower_is_better else m / x
        mid = f" {fmt.format(getattr(shm, attr))} |" if shm is not None else ""
        return f"| {name} | {fmt.format(m)} |{mid} {fmt.format(x)} | {ratio:.2f}x |"

    extra = " meshchat, stores on tmpfs |" if shm is not None else ""
    out = [
        f"| measure | meshchat |{extra} LXMF | meshchat advantage |",
        "| --- | ---: |" + (" ---: |" if shm is not None else "") + " ---: | ---: |",
        row("burst, acked msgs/s", "{:.1f}", "burst", False),
        row("one at a time, msgs/s", "{:.1f}", "single", False),
        row("latency p50, ms", "{:.2f}", "p50", True),
        row("latency p95, ms", "{:.2f}", "p95", True),
    ]
    return "\n".join(out)


async def run_meshchat_rep(pair: MeshchatPair, result: Result, rep: int) -> None:
    base = 1_000_000 * (rep + 1)
    result.burst_rates.append(await pair.burst(result.burst_n, base))
    rate, latencies = await pair.singles(result.single_m, base + 500_000)
    result.single_rates.append(rate)
    result.latencies_ms.extend(latencies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--burst", type=int, default=200, help="meshchat burst size")
    parser.add_argument("--lxmf-burst", type=int, default=200, help="LXMF burst size")
    parser.add_argument("--singles", type=int, default=50, help="one-at-a-time messages")
    parser.add_argument("--lxmf-singles", type=int, default=50)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument(
        "--no-tmpfs", action="store_true", help="skip the extra meshchat run on /dev/shm"
    )
    parser.add_argument("--lxmf-peer", choices=["sender", "receiver"], help=argparse.SUPPRESS)
    parser.add_argument("--meshchat-peer", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.lxmf_peer:
        lxmf_peer(args.lxmf_peer, args.dir)
        return
    if args.meshchat_peer:
        meshchat_receiver(args.dir)
        return

    import LXMF
    import RNS

    import meshchat

    mc = Result(burst_n=args.burst, single_m=args.singles)
    lx = Result(burst_n=args.lxmf_burst, single_m=args.lxmf_singles)
    use_shm = not args.no_tmpfs and Path("/dev/shm").is_dir()
    shm = Result(burst_n=args.burst, single_m=args.singles) if use_shm else None
    root = Path(tempfile.mkdtemp(prefix="vs-lxmf-"))
    shm_root = Path(tempfile.mkdtemp(prefix="vs-lxmf-", dir="/dev/shm")) if use_shm else None
    peers: list[Peer] = []
    loop = asyncio.new_event_loop()
    pairs = [MeshchatPair(root)]
    if shm_root is not None:
        pairs.append(MeshchatPair(shm_root))
    try:
        port = free_port()
        receiver = Peer("receiver", root / "rns-receiver", port)
        peers.append(receiver)
        dest = receiver.recv()["hash"]
        sender = Peer("sender", root / "rns-sender", port)
        peers.append(sender)
        sender.recv()
        sender.ask(cmd="connect", hash=dest, timeout=90)

        for pair in pairs:
            loop.run_until_complete(pair.start())
            loop.run_until_complete(pair.singles(WARMUP, 0))

        for rep in range(args.reps):
            loop.run_until_complete(run_meshchat_rep(pairs[0], mc, rep))
            lx.burst_rates.append(sender.ask(cmd="burst", n=lx.burst_n, timeout=600)["rate"])
            answer = sender.ask(cmd="singles", m=lx.single_m, timeout=600)
            lx.single_rates.append(answer["rate"])
            lx.latencies_ms.extend(answer["latencies"])
            if shm is not None:
                loop.run_until_complete(run_meshchat_rep(pairs[1], shm, rep))
        received = receiver.ask(cmd="received")["received"]
        expected = WARMUP + args.reps * (lx.burst_n + lx.single_m)
    finally:
        for pair in pairs:
            loop.run_until_complete(pair.close())
        loop.close()
        for peer in peers:
            peer.close()
        shutil.rmtree(root, ignore_errors=True)
        if shm_root is not None:
            shutil.rmtree(shm_root, ignore_errors=True)

    print(
        f"meshchat {meshchat.__version__} vs rns {RNS.__version__} / lxmf {LXMF.__version__}, "
        f"loopback TCP, {args.reps} reps (medians; latency over all single messages)"
    )
    print(
        f"burst N: meshchat {mc.burst_n}, LXMF {lx.burst_n}; one at a time M: meshchat "
        f"{mc.single_m}, LXMF {lx.single_m} per rep"
    )
    print(f"LXMF receiver got {received} of {expected} messages sent")
    print()
    print(table(mc, lx, shm))
    print()
    print(
        f"per rep burst msgs/s: meshchat {[round(r, 1) for r in mc.burst_rates]}, "
        f"LXMF {[round(r, 1) for r in lx.burst_rates]}"
    )
    print(
        f"per rep one-at-a-time msgs/s: meshchat {[round(r, 1) for r in mc.single_rates]}, "
        f"LXMF {[round(r, 1) for r in lx.single_rates]}"
    )
    floor = crypto_floor_ms()
    print(
        f"forward-secret crypto alone, one message and its ack, both sides (no I/O, no store): "
        f"{floor.suite:.2f} ms CPU; the tmpfs latency target leaves {lx.p50:.2f} ms for a "
        f"whole round trip, the one-at-a-time target {1000 / lx.single:.2f} ms"
    )
    commit = statistics.median(pairs[0].commits_ms)
    fast = f", on tmpfs {statistics.median(pairs[1].commits_ms):.2f} ms" if shm is not None else ""
    print(
        f"one durable commit (the sender store's own, during the single messages): "
        f"{commit:.2f} ms median on disk{fast}; a message and its ack wait for three in sequence"
    )
    echo = measure_echo_floor()
    print(
        f"minimal asyncio echo of the same bytes between two processes (bench/echo_floor.py): "
        f"p50 {echo.p50_ms:.3f} ms, CPU {echo.sender_cpu_us:.0f} + {echo.echo_cpu_us:.0f} us"
    )
    for line in crypto_floor_lines(floor):
        print(line)
    print(f"python_echo_floor_p50_ms: {echo.p50_ms:.3f} (no target)")
    print()
    if shm is not None:
        print(f"meshchat_vs_lxmf_latency_tmpfs_ratio: {shm.p50 / lx.p50:.2f} (target <= 1.0)")
    print(f"meshchat_latency_disk_p50_ms: {mc.p50:.2f} (target <= {lx.p50 + commit:.2f})")
    print(
        f"meshchat_latency_disk_p50_ms_three_commits: {mc.p50:.2f} "
        f"(target <= {lx.p50 + 3 * commit:.2f})"
    )
    if shm is not None:
        print(f"meshchat_vs_lxmf_single_tmpfs_ratio: {shm.single / lx.single:.2f} (target >= 1.0)")
    print(f"meshchat_vs_lxmf_burst_ratio: {mc.burst / lx.burst:.2f} (target >= 15)")


if __name__ == "__main__":
    main()
