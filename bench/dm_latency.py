"""Where the time of one direct message and its ack goes, on both nodes, step by step.

What is measured. The pair of ``bench/vs_lxmf.py``: two :class:`~meshchat.node.Node` objects,
each in its own process with its own encrypted store, linked by one
:class:`~meshchat.transports.lan.LanTransport` connection on 127.0.0.1, contacts of each other
(every message a sealed, forward-secret direct message). The sender sends ``--messages``
messages one at a time, each waiting for its DELIVERED notice, as the latency measure of
``vs_lxmf.py`` does.

How. Before the nodes start, both processes wrap a few functions of meshchat and asyncio with
probes that record ``(time.perf_counter_ns(), label)``; ``perf_counter_ns`` reads
``CLOCK_MONOTONIC``, one clock for every process on the machine, so the two processes' events
merge into one timeline. The probes mark the hand-overs: the command taken by the worker,
each store call (asked on the loop, started and ended on the store thread, the loop resumed),
the commit, the engine's send and receive (router, crypto, the ack built), a frame queued on
the link and written to the socket, bytes arriving from the socket and read by the link's
task, the frame taken from the inbox, the notices. Each probe costs about a microsecond.

For every message the events between its ``send_text`` and its DELIVERED notice, from both
processes, form one sequence of steps; the table gives each step's median duration over the
messages that took the modal sequence (the others had a timer or housekeeping in between),
grouped by kind (crypto and engine, store work, commit, thread hop, loop hop, socket), and
per node the CPU time (``process_time``) per message beside the wall time.

Also: the cost of one durable commit, measured in the same run on the same file system
(``fsync``: SQLite WAL, ``synchronous=FULL``, one small row), which the disk targets of
``vs_lxmf.py`` are stated in.

Run::

    python bench/dm_latency.py                 # stores on disk (the temp dir)
    python bench/dm_latency.py --tmpfs         # stores on /dev/shm
    python bench/dm_latency.py --pyinstrument  # also a pyinstrument profile of each node

The last line: ``dm_roundtrip_p50_ms: X`` (not a target: the figure the table splits).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import functools
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

TEXT = "benchmark message {i:06d}: a short chat line of about sixty bytes"
EVENTS: list[tuple[int, str]] = []


def mark(label: str) -> None:
    EVENTS.append((time.perf_counter_ns(), label))


def _name(fn: Any) -> str:
    while isinstance(fn, functools.partial):
        fn = fn.func
    return str(getattr(fn, "__name__", type(fn).__name__))


def install_probes() -> None:
    """Wrap the hand-over points (see the module docstring); call before a node starts."""
    import asyncio.streams as streams

    from meshchat.engine import Engine
    from meshchat.node import Node, _commands, _effects, _inbox, _store
    from meshchat.store import Store
    from meshchat.transports import stream

    def around(cls: Any, attr: str, before: str | None, after: str | None) -> None:
        orig = getattr(cls, attr)

        @functools.wraps(orig)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if before:
                mark(before)
            try:
                return orig(*args, **kwargs)
            finally:
                if after:
                    mark(after)

        setattr(cls, attr, wrapper)

    around(Engine, "send_direct", "engine.send_direct", "engine.send_direct done")
    around(Engine, "receive", "engine.receive", "engine.receive done")
    around(stream.StreamLink, "send", "link.send", None)
    around(stream.StreamLink, "_deliver", "link task reads frame", None)
    around(streams.StreamWriter, "write", "socket write", None)
    around(streams.StreamReaderProtocol, "data_received", "bytes arrive", None)
    around(Node, "frame_received", "inbox.put frame", None)

    orig_take = _inbox.Inbox.take

    def take(self: Any) -> Any:
        item = orig_take(self)
        if item is not None:
            mark(f"worker takes {type(item).__name__}")
        return item

    _inbox.Inbox.take = take  # type: ignore[method-assign]

    orig_cmd = _commands.Commands.send_text

    async def send_text(self: Any, to: str, text: str) -> Any:
        mark("command send_text runs")
        return await orig_cmd(self, to, text)

    _commands.Commands.send_text = send_text  # type: ignore[method-assign]

    orig_call = _store.AsyncStore.call

    async def call(self: Any, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        name = _name(fn)
        mark(f"store.call {name}")

        def run() -> Any:
            mark(f"store thread: {name} starts")
            try:
                return fn(*args, **kwargs)
            finally:
                mark(f"store thread: {name} ends")

        result = await orig_call(self, run)
        mark(f"loop resumes after {name}")
        return result

    _store.AsyncStore.call = call  # type: ignore[method-assign]

    orig_quick = getattr(_store.AsyncStore, "quick", None)
    if orig_quick is not None:  # the worker's short calls, on the loop when they can be

        async def quick(self: Any, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
            name = _name(fn)
            mark(f"store.quick {name}")

            def run() -> Any:
                where = (
                    "loop" if threading.current_thread() is threading.main_thread() else "thread"
                )
                mark(f"store {where}: {name} starts")
                try:
                    return fn(*args, **kwargs)
                finally:
                    mark(f"store {where}: {name} ends")

            result = await orig_quick(self, run)
            mark(f"loop resumes after {name}")
            return result

        _store.AsyncStore.quick = quick  # type: ignore[method-assign]

    orig_tx = Store.transaction

    @contextlib.contextmanager
    def transaction(self: Any) -> Any:
        with orig_tx(self):
            yield
            mark("commit")

    Store.transaction = transaction  # type: ignore[method-assign]

    orig_write = _effects.apply_write

    def apply_write(store: Any, write: Any) -> Any:
        where = "loop" if threading.current_thread() is threading.main_thread() else "thread"
        mark(f"store {where}: {type(write).__name__}")
        return orig_write(store, write)

    _effects.apply_write = apply_write

    orig_house = Node.housekeeping

    async def housekeeping(self: Any) -> None:
        mark("housekeeping")
        await orig_house(self)

    Node.housekeeping = housekeeping  # type: ignore[method-assign]


def kind_of(step: str) -> str:
    """The kind of time a step is (see the module docstring)."""
    a, b = step.split(" -> ")
    if a.endswith("engine.send_direct") or a.endswith("engine.receive"):
        return "engine (router, crypto, ack)"
    if "commit" in a:
        return "commit (fsync)"
    if "store thread:" in a or "store loop:" in a:
        if not a.endswith("ends"):
            return "store work (SQL, row sealing)"
        if "store loop:" in a:
            return "loop and node"
    if "store.quick" in a and "store loop:" in b:
        return "loop and node"
    if "store.call" in a or "store.quick" in a or ("store thread:" in a and a.endswith("ends")):
        return "store thread hop"
    if "socket write" in a and "bytes arrive" in b:
        return "socket (kernel)"
    return "loop and node"


class Child:
    """The receiving node's process (``--peer``); JSON lines on stdin and stdout."""

    def __init__(self, root: Path, profile: bool) -> None:
        argv = [sys.executable, __file__, "--peer", "--dir", str(root)]
        if profile:
            argv.append("--pyinstrument")
        self.log = (root / "peer.log").open("w")
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True
        )

    def ask(self, **cmd: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        if cmd:
            self.proc.stdin.write(json.dumps(cmd) + "\n")
            self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the peer exited (see {self.log.name})")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.ask(cmd="quit")
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def peer(root: Path, profile: bool) -> None:
    install_probes()
    profiler = _profiler(profile)

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
        node.subscribe(lambda n: mark(f"notice {n.kind}"))
        await node.start()
        card = (await node.card()).to_text()
        print(json.dumps({"card": card, "port": lan.listening_port}), flush=True)
        cpu = 0.0
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            cmd = json.loads(line)
            if cmd["cmd"] == "quit":
                break
            if cmd["cmd"] == "card":
                await node.add_card(ContactCard.from_text(cmd["card"]), "a")
                print(json.dumps({"ready": True}), flush=True)
            elif cmd["cmd"] == "start":
                EVENTS.clear()
                cpu = time.process_time()
                if profiler is not None:
                    profiler.start()
                print(json.dumps({"ok": True}), flush=True)
            elif cmd["cmd"] == "dump":
                cpu = time.process_time() - cpu
                text = _stop(profiler)
                dump = root / "peer-events.json"
                dump.write_text(json.dumps({"events": EVENTS, "cpu": cpu, "profile": text}))
                print(json.dumps({"file": str(dump)}), flush=True)
        await node.stop()
        store.close()

    asyncio.run(run())


def _profiler(enabled: bool) -> Any:
    if not enabled:
        return None
    from pyinstrument import Profiler

    return Profiler(interval=0.0002, async_mode="disabled")


def _stop(profiler: Any) -> str:
    if profiler is None:
        return ""
    profiler.stop()
    return str(profiler.output_text(unicode=False, color=False, show_all=False))


async def measure(root: Path, messages: int, profile: bool) -> dict[str, Any]:
    from meshchat.identity import ContactCard, Identity
    from meshchat.node import Node
    from meshchat.store import Store
    from meshchat.store.records import MessageState
    from meshchat.transports.lan import LanTransport

    child = Child(root, profile)
    profiler = _profiler(profile)
    hello = child.ask()
    identity = Identity.generate()
    lan = LanTransport(
        identity,
        host="127.0.0.1",
        discovery=False,
        static_peers=[("127.0.0.1", int(hello["port"]))],
        dial_delay=0.0,
    )
    store = Store.open(root / "a.db", key=os.urandom(32))
    node = Node(identity, "a", store, [lan])
    delivered: dict[bytes, int] = {}
    changed = asyncio.Event()

    def notice(n: Any) -> None:
        if n.kind == "state" and n.state is MessageState.DELIVERED:
            mark("DELIVERED shown")
            delivered.setdefault(n.msg_id, time.perf_counter_ns())
            changed.set()

    try:
        await node.start()
        await node.add_card(ContactCard.from_text(hello["card"]), "b")
        child.ask(cmd="card", card=(await node.card()).to_text())
        async with asyncio.timeout(20):
            while not node.links:
                await asyncio.sleep(0.01)
        node.subscribe(notice)

        async def one(i: int) -> tuple[int, int]:
            t0 = time.perf_counter_ns()
            mark("send_text")
            msg_id = (await node.send_text("b", TEXT.format(i=i))).msg_id
            async with asyncio.timeout(30):
                while msg_id not in delivered:
                    changed.clear()
                    await changed.wait()
            await asyncio.sleep(0.002)  # let both nodes finish their housekeeping
            return t0, delivered[msg_id]

        for i in range(5):
            await one(i)
        child.ask(cmd="start")
        EVENTS.clear()
        cpu = time.process_time()
        if profiler is not None:
            profiler.start()
        spans = [await one(100 + i) for i in range(messages)]
        cpu = time.process_time() - cpu
        text = _stop(profiler)
        mine = list(EVENTS)
        theirs = json.loads(Path(child.ask(cmd="dump")["file"]).read_text())
    finally:
        with contextlib.suppress(Exception):
            await node.stop()
        store.close()
        child.close()
    return {
        "spans": spans,
        "a": mine,
        "b": [tuple(e) for e in theirs["events"]],
        "cpu_a": cpu,
        "cpu_b": theirs["cpu"],
        "profile_a": text,
        "profile_b": theirs["profile"],
    }


def breakdown(run: dict[str, Any]) -> tuple[list[tuple[str, float]], int, int]:
    """The modal step sequence and each step's median (us); messages used, messages."""
    events = sorted(
        [(t, f"A {label}") for t, label in run["a"]] + [(t, f"B {label}") for t, label in run["b"]]
    )
    sequences: list[tuple[tuple[str, ...], list[int]]] = []
    for t0, t1 in run["spans"]:
        inside = [(t, label) for t, label in events if t0 <= t <= t1]
        labels = tuple(label for _, label in inside)
        sequences.append((labels, [t for t, _ in inside]))
    modal, _ = collections.Counter(s for s, _ in sequences).most_common(1)[0]
    gaps: list[list[int]] = [[] for _ in range(len(modal) - 1)]
    for labels, times in sequences:
        if labels != modal:
            continue
        for i in range(len(modal) - 1):
            gaps[i].append(times[i + 1] - times[i])
    used = sum(1 for s, _ in sequences if s == modal)
    steps = [
        (f"{modal[i]} -> {modal[i + 1]}", statistics.median(gaps[i]) / 1000)
        for i in range(len(modal) - 1)
    ]
    return steps, used, len(sequences)


def commit_cost_us(directory: Path, n: int = 60) -> tuple[float, float]:
    """Median microseconds of one small durable commit (SQLite WAL, synchronous=FULL) and of
    one ``fdatasync`` of a 4 kB write, in ``directory``."""
    path = directory / "fsync-probe.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("CREATE TABLE t (v BLOB)")
    commits = []
    for _ in range(n):
        t = time.perf_counter_ns()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t VALUES (?)", (os.urandom(200),))
        conn.execute("COMMIT")
        commits.append(time.perf_counter_ns() - t)
        time.sleep(0.001)
    conn.close()
    syncs = []
    fd = os.open(directory / "fsync-probe.bin", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        for _ in range(n):
            os.write(fd, os.urandom(4096))
            t = time.perf_counter_ns()
            os.fdatasync(fd)
            syncs.append(time.perf_counter_ns() - t)
            time.sleep(0.001)
    finally:
        os.close(fd)
    return statistics.median(commits) / 1000, statistics.median(syncs) / 1000


def report(run: dict[str, Any], messages: int, where: str) -> float:
    steps, used, total = breakdown(run)
    walls = [(t1 - t0) / 1e6 for t0, t1 in run["spans"]]
    p50 = statistics.median(walls)
    print(f"one message and its ack, stores {where}: {messages} messages one at a time")
    print(f"latency p50 {p50:.3f} ms; steps from the {used} of {total} messages in the modal order")
    print()
    print("| # | step (A sender, B receiver) | kind | median us |")
    print("| ---: | --- | --- | ---: |")
    kinds: dict[str, float] = collections.defaultdict(float)
    for i, (step, us) in enumerate(steps, 1):
        kind = kind_of(step)
        kinds[kind] += us
        print(f"| {i} | {step} | {kind} | {us:.0f} |")
    print(f"| | sum of the medians | | {sum(us for _, us in steps):.0f} |")
    print()
    print("| kind | us per round trip |")
    print("| --- | ---: |")
    for kind, us in sorted(kinds.items(), key=lambda kv: -kv[1]):
        print(f"| {kind} | {us:.0f} |")
    print()
    for who in ("a", "b"):
        counts = collections.Counter(label for _, label in run[who])
        busy = {k: round(n / messages, 1) for k, n in counts.items() if n > messages * 1.5}
        print(f"events per message on {who.upper()}, where more than 1.5: {busy}")
    print(
        f"CPU per message and ack: sender {run['cpu_a'] / messages * 1e3:.3f} ms, "
        f"receiver {run['cpu_b'] / messages * 1e3:.3f} ms (wall p50 {p50:.3f} ms)"
    )
    return p50


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=60)
    parser.add_argument("--tmpfs", action="store_true", help="stores on /dev/shm")
    parser.add_argument("--pyinstrument", action="store_true", help="profile both nodes")
    parser.add_argument("--peer", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peer:
        peer(args.dir, args.pyinstrument)
        return
    install_probes()
    root = Path(tempfile.mkdtemp(prefix="dm-latency-", dir="/dev/shm" if args.tmpfs else None))
    try:
        run = asyncio.run(measure(root, args.messages, args.pyinstrument))
        commit_us, sync_us = commit_cost_us(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    where = "on tmpfs" if args.tmpfs else "on disk"
    p50 = report(run, args.messages, where)
    print(f"one durable commit here: {commit_us:.0f} us (fdatasync of 4 kB: {sync_us:.0f} us)")
    if args.pyinstrument:
        print("\n-- sender --\n" + run["profile_a"])
        print("\n-- receiver --\n" + run["profile_b"])
    print()
    print(f"dm_roundtrip_p50_ms: {p50:.3f}")


if __name__ == "__main__":
    main()
