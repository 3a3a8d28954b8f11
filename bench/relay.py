"""Messages per second through a gateway pair, beside raw MQTT through the same broker.

What is measured. Two gateway nodes G1 and G2 (real :class:`Node` objects with SQLite stores
and the relay transport) use one MQTT broker running in its own process: mosquitto (default)
or the embedded amqtt broker (``meshchat relay``, ``--broker amqtt``). A sender A is linked to
G1 and a recipient B to G2 by in-memory links; A and B are bare link ends so that only the
gateways are measured. A's direct messages to B are built and signed before timing. Each
crosses G1's router (parse, dedupe, signature check, store-and-forward write), the relay link
(seal, QoS 1 publish), the broker, G2's relay link (open) and G2's router (the same checks
and write) to reach B. At most ``--window`` messages are in flight at once.

Baseline, in the same run and through the same broker: one aiomqtt client publishes payloads
of the same size (the sealed envelope size) with QoS 1 to a topic another client subscribes
to, with the same window. The ratio of the two rates is the result::

    relay_gateway_pair_vs_raw_mqtt: R (target >= 0.5)

Also printed: the CPU time of the event loop's thread per message on each path (both gateways,
A and B share that one loop, as the two raw clients do). The gateways' SQLite work runs on
their store threads and is not in that figure. Both paths are CPU-bound, so this column
explains the ratio better than the rates, which move with whatever else the machine runs.

Run ``python bench/relay.py`` (about 20 s). The per-link rate limit of the gateways is raised
for the run (``--link-rate``, default 100000/s): the default (200/s per link, and the relay is
one link for a whole island) would measure the limiter, not the path.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiomqtt

from meshchat.crypto.box import BoxSuite
from meshchat.gateway import seal_envelope
from meshchat.identity import Identity
from meshchat.node import Node, NodeOptions
from meshchat.router.flood import RouterConfig
from meshchat.store import Store
from meshchat.transports.base import Link
from meshchat.transports.memory import MemoryHub, MemoryTransport
from meshchat.transports.relay import RelayConfig, RelayTransport, token_hash
from meshchat.wire import Destination, PacketKind, Suite, build, encode
from meshchat.wire.payloads import MessageBody

TARGET = 0.5


#: the embedded relay admits token holders only; mosquitto here ignores the credentials
USER, TOKEN = "bench", "a-token-for-the-benchmark"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_broker(kind: str, workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    if kind == "mosquitto":
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        conf = workdir / "mosquitto.conf"
        conf.write_text(
            f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
            "max_queued_messages 100000\nmax_inflight_messages 0\n"
        )
        argv = [binary, "-c", str(conf)]
    else:
        meshchat = str(Path(sys.executable).parent / "meshchat")
        tokens = workdir / "relay-tokens"
        tokens.write_text(f"{USER}:{token_hash(TOKEN)}\n")
        argv = [meshchat, "relay", "--bind", "127.0.0.1", "--port", str(port)]
        argv += ["--token-file", str(tokens)]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 15
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return process, port
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{kind} broker did not start") from None
            time.sleep(0.05)


class Counter:
    """A bare link end that counts the frames it receives (A and B)."""

    def __init__(self) -> None:
        self.frames = 0
        self.changed = asyncio.Event()

    def link_up(self, link: Link) -> None:
        pass

    def link_down(self, link: Link) -> None:
        pass

    def frame_received(self, link: Link, frame: bytes) -> None:
        self.frames += 1
        self.changed.set()


#: CPU seconds the event loop's thread spent in each windowed() run, in order
LOOP_CPU: list[float] = []


async def windowed(send: object, count: int, counter: Counter, window: int) -> float:
    """Call ``send(i)`` for i < count, keeping at most ``window`` unreceived; seconds taken.

    Also appends the CPU time of the loop's thread over the run to :data:`LOOP_CPU`.
    """
    assert callable(send)
    cpu = time.thread_time()
    start = time.perf_counter()
    base = counter.frames
    sent = 0
    while counter.frames - base < count:
        while sent < count and sent - (counter.frames - base) < window:
            await send(sent)
            sent += 1
        counter.changed.clear()
        async with asyncio.timeout(60):
            await counter.changed.wait()
    elapsed = time.perf_counter() - start
    LOOP_CPU.append(time.thread_time() - cpu)
    return elapsed


async def run_meshchat(port: int, count: int, window: int, link_rate: float, tmp: Path) -> float:
    hub = MemoryHub()
    options = NodeOptions(router=RouterConfig(link_rate=link_rate, link_burst=2 * link_rate))
    url = f"mqtt://{USER}:{TOKEN}@127.0.0.1:{port}"
    config = RelayConfig(url, refresh_s=0.2, max_inflight=window)
    a_id, b_id = Identity.generate(), Identity.generate()
    a_end, b_end = hub.transport(a_id.public), hub.transport(b_id.public)
    a_count, b_count = Counter(), Counter()
    await a_end.start(a_count)
    await b_end.start(b_count)
    nodes: list[tuple[Node, Store, RelayTransport]] = []
    for name in ("g1", "g2"):
        identity = Identity.generate()
        try:
            store = Store.open(tmp / f"{name}.db", key=bytes(32))  # type: ignore[call-arg,unused-ignore]
        except TypeError:
            store = Store.open(tmp / f"{name}.db")  # type: ignore[call-arg,unused-ignore]
        relay = RelayTransport(identity, config)
        mem = hub.transport(identity.public)
        node = Node(identity, name, store, [mem, relay], options=options)
        await node.start()
        nodes.append((node, store, relay))
    try:
        g1_mem = nodes[0][0].transports[0]
        g2_mem = nodes[1][0].transports[0]
        assert isinstance(g1_mem, MemoryTransport) and isinstance(g2_mem, MemoryTransport)
        a_link, _ = hub.connect(a_end, g1_mem)
        hub.connect(g2_mem, b_end)
        # Wait until G2 collects B's mailbox.
        async with asyncio.timeout(20):
            while not (
                nodes[1][2].status().up and "for 2 mailboxes" in nodes[1][2].status().detail
            ):
                await asyncio.sleep(0.05)
        box = BoxSuite(a_id)
        now = int(time.time() * 1000)
        frames = [
            encode(
                build(
                    a_id,
                    PacketKind.MESSAGE,
                    Destination.node(b_id.node_id),
                    Suite.BOX,
                    box.seal(b_id.public.box_public, MessageBody(os.urandom(16), f"m{i}").encode()),
                    now,
                    8,
                )
            )
            for i in range(count)
        ]

        async def send(i: int) -> None:
            a_link.send(frames[i])
            if i % 64 == 0:
                await asyncio.sleep(0)

        return await windowed(send, count, b_count, window)
    finally:
        for node, store, _ in nodes:
            await node.stop()
            store.close()


async def run_raw(port: int, count: int, window: int, size: int) -> float:
    topic = "mc1/m/" + "5a" * 16
    payload = os.urandom(size)
    counter = Counter()
    async with (
        aiomqtt.Client(
            "127.0.0.1", port, identifier="bench-sub", username=USER, password=TOKEN
        ) as sub,
        aiomqtt.Client(
            "127.0.0.1",
            port,
            identifier="bench-pub",
            max_inflight_messages=window,
            username=USER,
            password=TOKEN,
        ) as pub,
    ):
        pub.pending_calls_threshold = window + 16
        await sub.subscribe(topic, qos=1)

        async def reader() -> None:
            async for _ in sub.messages:
                counter.frame_received(None, b"")  # type: ignore[arg-type]

        read = asyncio.create_task(reader())
        pending: set[asyncio.Task[None]] = set()

        async def send(i: int) -> None:
            task = asyncio.create_task(pub.publish(topic, payload, qos=1))
            pending.add(task)
            task.add_done_callback(pending.discard)
            if i % 64 == 0:
                await asyncio.sleep(0)

        try:
            return await windowed(send, count, counter, window)
        finally:
            await asyncio.gather(*pending, return_exceptions=True)
            read.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await read


async def main(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-relay-"))
    process, port = start_broker(args.broker, tmp)
    try:
        sample = encode(
            build(
                Identity.generate(),
                PacketKind.MESSAGE,
                Destination.node(bytes(16)),
                Suite.BOX,
                bytes(80),
                0,
                8,
            )
        )
        size = len(seal_envelope(bytes(32), sample, 0))
        rows = []
        cpu_rows: list[tuple[float, float]] = []
        # Warm-up of both paths, then interleaved repetitions.
        await run_raw(port, min(500, args.count), args.window, size)
        for rep in range(args.repeat):
            raw_s = await run_raw(port, args.count, args.window, size)
            raw_cpu = LOOP_CPU[-1]
            workdir = tmp / f"r{rep}"
            workdir.mkdir()
            mesh_s = await run_meshchat(port, args.count, args.window, args.link_rate, workdir)
            mesh_cpu = LOOP_CPU[-1]
            rows.append((args.count / mesh_s, args.count / raw_s))
            cpu_rows.append((mesh_cpu / args.count * 1e6, raw_cpu / args.count * 1e6))
        print(
            f"broker: {args.broker}; {args.count} messages per run; window {args.window}; "
            f"envelope {size} bytes"
        )
        print(
            f"{'run':>4} {'meshchat msg/s':>15} {'raw aiomqtt msg/s':>18} {'ratio':>6}"
            f" {'loop CPU us/msg: meshchat':>26} {'raw':>5}"
        )
        for i, ((mesh, raw), (mesh_us, raw_us)) in enumerate(zip(rows, cpu_rows, strict=True)):
            print(
                f"{i:>4} {mesh:>15.0f} {raw:>18.0f} {mesh / raw:>6.2f}"
                f" {mesh_us:>26.0f} {raw_us:>5.0f}"
            )
        ratio = statistics.median(m / r for m, r in rows)
        print(f"relay_gateway_pair_vs_raw_mqtt: {ratio:.2f} (target >= {TARGET})")
    finally:
        process.terminate()
        process.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--broker", choices=["mosquitto", "amqtt"], default="mosquitto")
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--window", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--link-rate", type=float, default=100_000.0)
    asyncio.run(main(parser.parse_args()))
