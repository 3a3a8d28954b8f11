"""History sync between two of my devices over loopback TCP: bytes and time, in one run.

What is measured. Two devices, each its own process with its own real
:class:`meshchat.store.Store` (a temporary directory), run the real sync code
(:class:`meshchat.sync.driver.SyncDriver`: range-based set reconciliation over the store's
item index, records fetched and applied in one transaction per message). Every sync message
travels as it will on the wire between two devices of one account: the control blob
``[19, sync_bytes]`` cut into 900-byte control parts, each a direct message sealed in the
devices' forward-secret session (:class:`meshchat.crypto.direct.DirectSuite`: ratchet, sealed
envelope, a signed anonymous packet), framed with a 4-byte length on a TCP connection over
127.0.0.1, opened, joined by the control assembler, and acknowledged with a sealed ack as a
node acknowledges every direct message. Bytes are counted on the socket (frames, both ways,
acks included).

Scenarios:

* **200 new of 20,200**: both devices hold the same 20,000 messages (50 conversations, incoming
  and outgoing, each naming the one before as its parent) and have synced them before (their
  item indexes are up to date); device A then gets 200 new messages (the newest). B starts a
  session. Target: bytes exchanged <= 3 x the new messages' size + a constant (16 kB), and
  at most 1 s from B's first message to the last record stored.
  The new messages' size is the bytes of their sync records (ids, text, parents; and the
  delivery state of those that are ours).
* **50 reads** (not a target): both hold the same 20,000 messages; A's user then reads every
  conversation, which makes one Read record per conversation (:mod:`meshchat.sync.records`).
* **full initial sync**: B is empty (a new device), A holds 20,000 messages. Target:
  at least 2,000 messages/s.

Baseline, same run, same stores, same encrypted transport: **naive**, A sends every sync id it
holds (16 bytes each, 1,024 per message) and B asks for those it lacks, then the records come
the same way.

Time is wall time, from the first byte to the last processed message on either side (each side
notes when it last did something). The end is agreed (:meth:`Device.serve`): after ``--quiet``
seconds without a frame an idle side sends a mark of its frame counts, and both close once
each, idle, holds the other's matching mark; that wait is not counted. A run is clean when
both ends close so and B then holds exactly A's sync ids; the bench exits 1 otherwise.
Run ``python bench/sync.py`` (about two minutes; ``--messages 5000`` for a quick
look; ``--profile`` adds a cProfile of the receiving side of the full sync). Last line::

    sync_200_new_of_20k_bytes_ratio: 2.46 (target <= 3)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import hashlib
import io
import multiprocessing as mp
import os
import pstats
import queue
import random
import struct
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cbor2

from meshchat.crypto.direct import DirectSuite
from meshchat.errors import DecryptionError
from meshchat.group.control import Assembler, split
from meshchat.identity import Identity
from meshchat.store import MessageState, Store
from meshchat.sync.driver import SyncDriver
from meshchat.sync.records import MessageRecord, ReadRecord
from meshchat.sync.wire import MAX_IDS, pack_records
from meshchat.wire import codec
from meshchat.wire.packet import PacketKind
from meshchat.wire.payloads import MSG_ID_SIZE, ControlPart

T0 = 1_760_000_000_000
ME = b"\x01" * 16
SYNC_KIND = 19
TTL = 4
CONSTANT_BYTES = 16_000
BYTES_TARGET = 3.0
TIME_TARGET_S = 1.0
RATE_TARGET = 2_000
#: a frame length that is no frame: the end mark ``(frames received, frames sent)`` follows
MARK = 0xFFFF_FFFF


def conversation(n: int) -> str:
    return "dm:" + f"{n % 50:02x}" * 16


def build_history(store: Store, first: int, count: int, *, batch: int = 1000) -> None:
    """``count`` messages numbered from ``first``: every fifth one ours, the rest received."""
    n = first
    end = first + count
    while n < end:
        with store.transaction():
            for k in range(n, min(end, n + batch)):
                conv = conversation(k)
                msg_id = k.to_bytes(16, "big")
                parents = [(k - 50).to_bytes(16, "big")] if k >= 50 else []
                text = f"message number {k} in a conversation about something or other"
                if k % 5 == 0:
                    store.add_outgoing(
                        conv, msg_id, ME, ME, "me", text, T0 + k * 1000, T0 + 10**10,
                        parents=parents,
                    )  # fmt: skip
                else:
                    sender = bytes([0x80 + k % 50]) * 16
                    store.add_incoming(
                        conv, msg_id, sender, "peer", text, T0 + k * 1000, T0 + k * 1000 + 5,
                        parents=parents,
                    )  # fmt: skip
        n += batch


# -- the wire: sealed control parts in a forward-secret session, length-framed ---------------


@dataclass
class Wire:
    """One device's end of the encrypted link to its other device."""

    suite: DirectSuite
    peer: Any  # PublicIdentity
    writer: asyncio.StreamWriter | None = None
    assembler: Assembler = field(default_factory=Assembler)
    sent: int = 0
    received: int = 0
    frames: int = 0

    def send_blob(self, blob: bytes, now_ms: int) -> None:
        writer = self.writer
        if writer is None:
            raise RuntimeError("not connected")
        for blob_id, index, count, chunk in split(blob):
            part = ControlPart(os.urandom(MSG_ID_SIZE), blob_id, index, count, chunk)
            packet = self.suite.build_message(self.peer, part.msg_id, part.encode(), now_ms, TTL)
            self._frame(codec.encode(packet))

    def _frame(self, frame: bytes) -> None:
        writer = self.writer
        if writer is None:
            raise RuntimeError("not connected")
        writer.write(struct.pack(">I", len(frame)) + frame)
        self.sent += 4 + len(frame)
        self.frames += 1

    def take(self, frame: bytes, now_ms: int) -> bytes | None:
        """A frame received: an ack (opened, nothing more) or a part; a whole blob when done."""
        self.received += 4 + len(frame)
        packet = codec.decode(frame, now_ms)
        if packet.kind is PacketKind.ACK:
            self.suite.open_ack(packet, now_ms)
            return None
        opened = self.suite.open_message(packet, now_ms)
        self._frame(codec.encode(self.suite.build_ack(opened.sender, opened.token, now_ms, TTL)))
        if opened.control is None:
            return None
        keys = (self.peer.sign_public, self.peer.box_public)
        return self.assembler.add(self.peer.node_id, opened.control, now_ms, keys)


def sync_blob(data: bytes) -> bytes:
    return cbor2.dumps([SYNC_KIND, data], canonical=True)


def sync_bytes(blob: bytes) -> bytes:
    kind, data = cbor2.loads(blob)
    if kind != SYNC_KIND or not isinstance(data, bytes):
        raise ValueError("not a sync blob")
    return data


# -- one device -------------------------------------------------------------------------------


class Device:
    """A device's loop: frames in, sync handled, frames out; notes when it last acted."""

    def __init__(self, store: Store, wire: Wire, mode: str) -> None:
        self.store = store
        self.wire = wire
        self.mode = mode
        self.driver = SyncDriver(store)
        self.last = time.perf_counter()
        self.first = 0.0
        # as in the node: the store (and the driver over it) on its own thread, so the loop
        # opens and acks the next parts while a message of records is applied
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="store")
        self.pending: asyncio.Queue[Iterator[bytes]] = asyncio.Queue()
        #: messages received and not yet handled to the end
        self.unhandled = 0

    def now_ms(self) -> int:
        return int(time.time() * 1000)

    def begin(self) -> None:
        """Start: the first messages are made on the store's thread like every answer, and
        sent once :meth:`serve` runs."""
        self.first = time.perf_counter()
        self.unhandled += 1
        self.pending.put_nowait(self.opening())

    def opening(self) -> Iterator[bytes]:
        if self.mode == "rbsr":
            yield from self.driver.start(b"peer", self.now_ms())
            return
        # naive: offer every id, in messages of MAX_IDS
        ids = [sid for _, sid in self.store.sync_listing(self.now_ms())]
        for i in range(0, len(ids), MAX_IDS):
            yield cbor2.dumps([1, ids[i : i + MAX_IDS]], canonical=True)
        if not ids:
            yield cbor2.dumps([1, []])

    def handle(self, data: bytes) -> Iterator[bytes]:
        """Sync bytes received; the sync bytes to send back (records fetched as they go)."""
        now = self.now_ms()
        if self.mode == "rbsr":
            outcome = self.driver.receive(b"peer", data, now)
            yield from outcome.out
            while outcome.pushes is not None and (batch := outcome.pushes.next()):
                yield from batch
            return
        fields = cbor2.loads(data)
        if fields[0] == 1:  # ids offered: ask for what is missing
            have = {sid for _, sid in self.store.sync_listing(now)}
            wants = [sid for sid in fields[1] if sid not in have]
            for i in range(0, len(wants), MAX_IDS):
                yield cbor2.dumps([3, wants[i : i + MAX_IDS]], canonical=True)
        elif fields[0] == 3:  # asked: the records go the same way as in the real protocol
            records = self.store.sync_records(fields[1])
            yield from (m.encode() for m in pack_records(b"\x00" * 8, records))
        else:
            self.driver.receive(b"peer", data, now)  # records

    def idle(self) -> bool:
        """Nothing received is waiting or being handled on this side."""
        return self.unhandled == 0

    async def _finish(self, answer: asyncio.Task[None]) -> None:
        """Wait until every message received is handled (or the answering task failed)."""
        join = asyncio.create_task(self.pending.join())
        await asyncio.wait({join, answer}, return_when=asyncio.FIRST_COMPLETED)
        join.cancel()

    async def _answer(self) -> None:
        """Run each received message's handling on the store's thread, in order, and send
        what it yields as it comes (the peer works while this one reads and encrypts)."""
        loop = asyncio.get_running_loop()
        while True:
            replies = await self.pending.get()
            try:
                while (
                    out := await loop.run_in_executor(self.executor, next, replies, None)
                ) is not None:
                    self.wire.send_blob(sync_blob(out), self.now_ms())
                    if self.wire.writer is not None:
                        await self.wire.writer.drain()
                    self.last = time.perf_counter()
            finally:
                self.last = time.perf_counter()
                self.unhandled -= 1
                self.pending.task_done()

    async def serve(self, reader: asyncio.StreamReader, quiet_s: float) -> str:
        """Take frames until both sides agree they are done; returns how it ended ("quiet"
        when clean).

        The end is agreed, not guessed from silence (a loaded machine may keep a side busy
        in a store call for seconds): a side with nothing left to do, after ``quiet_s``
        without a frame, sends a mark ``(frames received, frames sent)``; a side that has
        nothing left to do and gets a mark that matches its own counts (the peer has every
        frame it sent, and it has every frame the peer sent, and the peer too had nothing
        left to do) answers with its own mark, shuts its sending half (EOF) and reads until
        the peer's EOF before closing: neither side closes on data the other still sends.
        Marks are not counted in the bytes (2 to 4 of 12 bytes each, once per run)."""
        answer = asyncio.create_task(self._answer())
        try:
            return await self._take(reader, quiet_s, answer)
        finally:
            await self._finish(answer)
            answer.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await answer
            self.executor.shutdown()

    def _mark(self, got: int) -> tuple[int, int]:
        """Send this side's mark (frames received, frames sent); returns it."""
        mark = (got, self.wire.frames)
        if self.wire.writer is not None:
            self.wire.writer.write(struct.pack(">III", MARK, *mark))
        return mark

    async def _take(
        self, reader: asyncio.StreamReader, quiet_s: float, answer: asyncio.Task[None]
    ) -> str:
        writer = self.wire.writer
        got = 0  # frames received (not marks)
        marked: tuple[int, int] | None = None  # the last mark sent
        while True:
            if answer.done():
                return f"answering failed: {answer.exception()!r}"
            try:
                head = await asyncio.wait_for(reader.readexactly(4), quiet_s)
            except TimeoutError:
                if self.idle() and marked != (got, self.wire.frames):
                    marked = self._mark(got)
                continue
            except asyncio.IncompleteReadError:
                return "the peer ended first"
            except ConnectionError as exc:
                return f"connection lost: {exc!r}"
            size = struct.unpack(">I", head)[0]
            if size == MARK:
                peer_got, peer_sent = struct.unpack(">II", await reader.readexactly(8))
                if not self.idle():
                    continue
                if (peer_got, peer_sent) == (self.wire.frames, got):
                    self._mark(got)  # even if sent before: the peer may have been busy then
                    return await self._close(reader, quiet_s)
                if marked != (got, self.wire.frames):
                    marked = self._mark(got)
                continue
            frame = await reader.readexactly(size)
            got += 1
            blob = self.wire.take(frame, self.now_ms())
            if blob is not None:
                self.unhandled += 1
                self.pending.put_nowait(self.handle(sync_bytes(blob)))
            self.last = time.perf_counter()
            if writer is not None:
                await writer.drain()

    async def _close(self, reader: asyncio.StreamReader, quiet_s: float) -> str:
        """Both sides are done: EOF, then read to the peer's EOF (nothing more may come)."""
        writer = self.wire.writer
        if writer is not None:
            await writer.drain()
            writer.write_eof()
        try:
            rest = await asyncio.wait_for(reader.read(), max(10 * quiet_s, 30.0))
        except TimeoutError:
            return "no EOF from the peer"
        except ConnectionError as exc:
            return f"connection lost after the end: {exc!r}"
        # the peer's own mark may come after the one this side answered: nothing else
        if len(rest) % 12 or any(
            struct.unpack(">I", rest[i : i + 4])[0] != MARK for i in range(0, len(rest), 12)
        ):
            return f"{len(rest)} bytes after the end"
        return "quiet"

    def digest(self) -> tuple[int, bytes]:
        """How many sync items this store holds, and a digest of their ids."""
        sids = sorted(sid for _, sid in self.store.sync_listing(self.now_ms()))
        return len(sids), hashlib.sha256(b"".join(sids)).digest()


def open_store(path: Path, seed: bytes) -> Store:
    return Store.open(path, key=seed * 32)


def run_b(
    path: str, suite: DirectSuite, peer: Any, port_q: Any, result_q: Any, quiet: float,
    profile: bool,
) -> None:  # fmt: skip
    """Device B (a child process): serves one connection, starts the sync in rbsr mode."""

    async def main() -> None:
        store = open_store(Path(path), b"b")
        device = Device(store, Wire(suite, peer), "rbsr")
        done = asyncio.Event()
        ended = ["never connected"]

        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            device.wire.writer = writer
            mode = (await reader.readexactly(1)).decode()
            device.mode = "rbsr" if mode == "r" else "naive"
            try:
                if mode == "r":
                    device.begin()
                ended[0] = await device.serve(reader, quiet)
            except (ConnectionError, asyncio.IncompleteReadError) as exc:
                ended[0] = f"connection lost: {exc!r}"
            finally:
                writer.close()
                with contextlib.suppress(ConnectionError):
                    await writer.wait_closed()
                done.set()

        server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
        port_q.put(server.sockets[0].getsockname()[1])
        await done.wait()
        server.close()
        count, digest = device.digest()
        wire = device.wire
        result_q.put((device.first, device.last, wire.sent, wire.frames, count, digest, ended[0]))
        store.close()

    if profile:
        prof = cProfile.Profile()
        prof.runcall(asyncio.run, main())
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(25)
        print(out.getvalue(), file=sys.stderr)
    else:
        asyncio.run(main())


@dataclass
class Run:
    seconds: float
    a_bytes: int
    b_bytes: int
    frames: int
    b_items: int
    #: how each side's connection ended ("quiet" both when clean)
    ended: tuple[str, str] = ("quiet", "quiet")
    #: B holds every sync item A holds (same ids) at the end
    synced: bool = True

    @property
    def clean(self) -> bool:
        return self.ended == ("quiet", "quiet") and self.synced

    @property
    def total(self) -> int:
        return self.a_bytes + self.b_bytes


def exchange(a_path: Path, b_path: Path, mode: str, quiet: float, *, profile: bool = False) -> Run:
    """One sync between a store at ``a_path`` (this process) and one at ``b_path`` (a child)."""
    ia, ib = Identity.generate(), Identity.generate()
    sa, sb = DirectSuite(ia), DirectSuite(ib)
    now = int(time.time() * 1000)
    for s in (sa, sb):
        s.maintain(now)
    sa.add_peer(ib.public, sb.own_prekey(now))
    # the session exists already (the devices were linked): one message each way opens it
    hello = sa.build_message(ib.public, os.urandom(16), b"\x82\x40\x40", now, TTL)
    with contextlib.suppress(DecryptionError):  # the body is not a message; the session opened
        sb.open_message(hello, now)
    ctx = mp.get_context("fork")
    port_q, result_q = ctx.Queue(), ctx.Queue()
    child = ctx.Process(
        target=run_b, args=(str(b_path), sb, ia.public, port_q, result_q, quiet, profile)
    )
    child.start()
    port = port_q.get(timeout=60)

    async def main() -> tuple[Device, str, tuple[int, bytes]]:
        store = open_store(a_path, b"a")
        device = Device(store, Wire(sa, ib.public), mode)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        device.wire.writer = writer
        try:
            writer.write(b"r" if mode == "rbsr" else b"n")
            if mode == "naive":
                device.begin()
            await writer.drain()
            ended = await device.serve(reader, quiet)
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            ended = f"connection lost: {exc!r}"
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
        held = device.digest()
        store.close()
        return device, ended, held

    device, a_ended, (_, a_digest) = asyncio.run(main())
    result = None
    while result is None:  # B's result, unless B died
        try:
            result = result_q.get(timeout=1)
        except queue.Empty:
            if not child.is_alive():
                raise RuntimeError(f"device B ended without a result ({child.exitcode})") from None
    child.join()
    b_first, b_last, b_sent, b_frames, b_items, b_digest, b_ended = result
    first = b_first if mode == "rbsr" else device.first
    seconds = max(device.last, b_last) - first
    frames = device.wire.frames + b_frames
    return Run(
        seconds, device.wire.sent, b_sent, frames, b_items, (a_ended, b_ended), a_digest == b_digest
    )


@dataclass
class Stores:
    a: Path  #: messages + new
    b: Path  #: messages (indexed before the new ones came to A)
    empty: Path  #: a new device
    spread: Path  #: messages, of which `new` older ones of ours changed state since
    new_size: int  #: bytes of the new messages' records
    spread_size: int  #: bytes of the changed messages' records
    reads: Path  #: messages, every conversation read since (one Read record each)
    reads_size: int  #: bytes of those Read records


def prepare(tmp: Path, messages: int, new: int) -> Stores:
    a_path, b_path, e_path = tmp / "a.db", tmp / "b.db", tmp / "e.db"
    for path, seed in ((a_path, b"a"), (b_path, b"b")):
        with open_store(path, seed) as store:
            build_history(store, 0, messages)
            store.sync_listing(int(time.time() * 1000))
    with open_store(e_path, b"b"):
        pass
    s_path = copy(a_path, tmp / "s.db")
    with open_store(s_path, b"a") as store:  # delivered since: states spread through history
        ours = random.Random(5).sample(range(0, messages, 5), min(new, messages // 5))
        now = int(time.time() * 1000)
        for k in ours:
            store.set_state(k.to_bytes(16, "big"), MessageState.DELIVERED, now)
        store.sync_listing(now)
        have = {sid for _, sid in store.sync_listing(now)}
    with open_store(b_path, b"b") as store:
        changed = sorted(have - {sid for _, sid in store.sync_listing(now)})
    with open_store(s_path, b"a") as store:
        spread_size = sum(
            len(cbor2.dumps(r.fields(), canonical=True)) for r in store.sync_records(changed)
        )
    r_path = copy(a_path, tmp / "r.db")
    with open_store(r_path, b"a") as store:  # every conversation read since: 50 Read records
        now = int(time.time() * 1000)
        for k in range(min(messages, 50)):
            store.mark_read(conversation(k), now)
        newest = store.sync_listing(now)[-100:]  # dated now: the newest items
        every = store.sync_records(sid for _, sid in newest)
        reads = [r for r in every if isinstance(r, ReadRecord)]
        reads_size = sum(len(cbor2.dumps(r.fields(), canonical=True)) for r in reads)
    with open_store(a_path, b"a") as store:
        build_history(store, messages, new)
        have = {sid for _, sid in store.sync_listing(int(time.time() * 1000))}
    with open_store(b_path, b"b") as store:
        lacking = sorted(have - {sid for _, sid in store.sync_listing(now)})
    with open_store(a_path, b"a") as store:
        recs = store.sync_records(lacking)
        size = sum(len(cbor2.dumps(r.fields(), canonical=True)) for r in recs)
        if sum(isinstance(r, MessageRecord) for r in recs) != new:
            raise RuntimeError("B lacks something else than the new messages")
    return Stores(a_path, b_path, e_path, s_path, size, spread_size, r_path, reads_size)


def copy(path: Path, to: Path) -> Path:
    to.write_bytes(path.read_bytes())
    return to


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--new", type=int, default=200)
    parser.add_argument("--quiet", type=float, default=3.0, help="seconds of silence = done")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each; the best counts")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        start = time.perf_counter()
        stores = prepare(tmp, args.messages, args.new)
        a_path, b_path, e_path, new_size = stores.a, stores.b, stores.empty, stores.new_size
        print(f"stores built in {time.perf_counter() - start:.1f} s; "
              f"{args.new} new messages: {new_size:,} bytes of records")  # fmt: skip
        runs: dict[str, Run] = {}
        done: list[bool] = []  # each exchange: clean or not
        for k in range(args.repeats):  # the best of each, as other processes share the CPU
            plan = [
                ("rbsr, 200 new", "a1", a_path, "b1", b_path, "rbsr"),
                ("rbsr, spread", "a5", stores.spread, "b5", b_path, "rbsr"),
                ("rbsr, 50 reads", "a6", stores.reads, "b6", b_path, "rbsr"),
                ("naive, 200 new", "a2", a_path, "b2", b_path, "naive"),
                ("rbsr, full", "a3", a_path, "e3", e_path, "rbsr"),
                ("naive, full", "a4", a_path, "e4", e_path, "naive"),
            ]
            for name, an, ap, bn, bp, mode in plan:
                profile = args.profile and k == 0 and name == "rbsr, full"
                a_copy, b_copy = copy(ap, tmp / f"{an}{k}.db"), copy(bp, tmp / f"{bn}{k}.db")
                run = exchange(a_copy, b_copy, mode, args.quiet, profile=profile)
                done.append(run.clean)
                if not run.clean:
                    print(f"  not clean: {name}, run {k + 1}: A {run.ended[0]}; B {run.ended[1]}; "
                          f"B holds {'all' if run.synced else 'not all'} of A's items")  # fmt: skip
                best = runs.get(name)
                if best is None or (run.clean, -run.seconds) > (best.clean, -best.seconds):
                    runs[name] = run
    total_items = args.messages + args.new
    print(f"load average while running: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; "
          f"best of {args.repeats} runs each; {sum(done)} of {len(done)} exchanges clean "
          "(both ends quiet, B holds every item A holds)")  # fmt: skip
    print()
    print(f"{'scenario':<16}{'bytes A->B':>12}{'bytes B->A':>12}{'total':>12}{'frames':>8}"
          f"{'seconds':>9}{'msgs/s':>9}{'B items':>9}")  # fmt: skip
    for name, run in runs.items():
        moved = args.new if "full" not in name else total_items
        moved = 50 if "reads" in name else moved
        print(f"{name:<16}{run.a_bytes:>12,}{run.b_bytes:>12,}{run.total:>12,}{run.frames:>8,}"
              f"{run.seconds:>9.3f}{moved / run.seconds:>9,.0f}{run.b_items:>9,}")  # fmt: skip
    small = runs["rbsr, 200 new"]
    full = runs["rbsr, full"]
    allowed = BYTES_TARGET * new_size + CONSTANT_BYTES
    ratio = (small.total - CONSTANT_BYTES) / new_size
    rate = total_items / full.seconds
    print()
    print(f"200 new: {small.total:,} bytes (allowed {allowed:,.0f} = 3 x {new_size:,} + "
          f"{CONSTANT_BYTES:,}), {small.seconds:.3f} s (target <= {TIME_TARGET_S}); naive "
          f"{runs['naive, 200 new'].total:,} bytes")  # fmt: skip
    spread = runs["rbsr, spread"]
    print(f"{args.new} older messages changed state (spread through the history, not a target): "
          f"{spread.total:,} bytes for {stores.spread_size:,} bytes of records "
          f"({(spread.total - CONSTANT_BYTES) / stores.spread_size:.2f} x + constant), "
          f"{spread.seconds:.3f} s")  # fmt: skip
    reads = runs["rbsr, 50 reads"]
    print(f"50 conversations read on A (not a target): {reads.total:,} bytes for "
          f"{stores.reads_size:,} bytes of Read records "
          f"({reads.total / stores.reads_size:.1f} x, framing and acks included), "
          f"{reads.seconds:.3f} s")  # fmt: skip
    print(f"full sync: {total_items:,} messages in {full.seconds:.2f} s = {rate:,.0f} messages/s "
          f"(target >= {RATE_TARGET:,})")  # fmt: skip
    print(f"sync_200_new_seconds: {small.seconds:.3f} (target <= {TIME_TARGET_S})")
    print(f"sync_full_messages_per_s: {rate:.0f} (target >= {RATE_TARGET})")
    print(f"sync_200_new_of_20k_bytes_ratio: {ratio:.2f} (target <= {BYTES_TARGET:.0f})")
    return 0 if all(done) else 1


if __name__ == "__main__":
    raise SystemExit(main())
