"""The GATT half of bench/files.py: a file between two real nodes over one bumble BLE link,
beside raw GATT values of the same bytes on the same virtual air, in the same run.

What is measured. Four bumble virtual radios on one :class:`~meshchat.transports.ble.virtual.
RangedLink` (real HCI, L2CAP, ATT and GATT in software; MTU 517, LE data length 251; everything
in one Python process), twice: as fast as the CPU goes (every figure CPU-bound), and with each
connection's values held to ``RADIO_RATE`` (100 kB/s, the top of a real 1M PHY link; the
backend's ``rate_limit``), where the air is the bottleneck as on a real radio:

* **raw GATT**: two bare backends, connected as a phone and a laptop would be (MTU exchange,
  discovery, subscription); the file's number of bytes goes across as ATT values through the
  backend's paced write, of the largest size the link allows (``min(mtu - 3, 512)``, 512
  bytes) and of the size meshchat cuts to (``value_size``, 495: whole ACL packets), as *write
  without response* from the central and as *notifications* from the peripheral (the two ways
  a GATT link carries data, one per direction); the receiver counts bytes;
* **transfer**: two :class:`~meshchat.node.Node` s (stores, engines, :class:`~meshchat.
  transports.ble.BleTransport` s on the other two radios, one link between them): A sends B a
  file of random bytes (B auto-accepts: a verified contact), timed from ``files.send``
  (sealing the chunks, the hash tree, the announcement as a message) until B's transfer is
  done (every piece pulled, checked, opened, written, the whole file checked against its root
  and given its name); then B sends A another, so one direction goes as the central's writes
  and the other as the peripheral's notifications. Each goodput is divided by the faster raw
  figure of the same GATT direction measured just before it. A one-chunk file is timed too
  (what every file costs besides its bytes). At radio speed, also text latency from A's
  ``send_text`` to B's notice: ``TEXTS`` texts at 20 a second with no transfer, then as many
  while a file flows the same way.

Sizes: 1,000,000 bytes CPU-bound, the largest round size under the default limit of a
BLE-only path (1 MiB, :class:`~meshchat.files.policy.FilePolicy`), which is what the BLE path
is for (a 20 MB file, the LAN half's size, would be refused over BLE by that policy, and on a
real radio would take minutes); 300,000 bytes at 100 kB/s (3 s a transfer).

Run ``python bench/files_ble.py`` alone (about 90 s), or as part of ``bench/files.py``. Its
last two lines are::

    files_ble_goodput_ratio_at_100kBps: 0.83 (target >= 0.8)
    files_ble_goodput_ratio: 0.51 (target >= 0.8)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from meshchat.files.policy import FilePolicy
from meshchat.identity import Identity
from meshchat.node import Node, NodeOptions
from meshchat.node._filestate import Direction, State
from meshchat.node._types import FileOptions, NodeNotice
from meshchat.store import Store
from meshchat.store.records import Contact, Trust
from meshchat.transports.ble import BleTransport, GattProfile, ScanResult
from meshchat.transports.ble.bumble_backend import BumbleBackend
from meshchat.transports.ble.seam import AdvertiseSettings, BleConnection, ScanSettings
from meshchat.transports.ble.session import BleLink
from meshchat.transports.ble.virtual import RangedLink, fast_options, make_virtual_backends

SIZE = 1_000_000
RATIO_TARGET = 0.8
#: bytes per second per connection for the radio-speed half (the top of a real 1M PHY link)
RADIO_RATE = 100_000
RADIO_SIZE = 300_000
#: a file of one chunk, to time what a transfer costs besides its bytes
SMALL = 1000
#: texts timed (at radio speed), without a transfer and during one, and how far apart
TEXTS = 20
TEXT_EVERY_S = 0.05


@dataclass
class Way:
    """One GATT direction's figures over the runs (bytes per second)."""

    name: str
    #: raw values of the largest size (512 bytes), and of the size meshchat cuts to (495)
    raw_max: list[float] = field(default_factory=list)
    raw_packed: list[float] = field(default_factory=list)
    transfer: list[float] = field(default_factory=list)
    #: seconds for a 1 kB file (one chunk): what every file costs besides its bytes
    small: list[float] = field(default_factory=list)
    #: seconds from send_text to the receiver's notice, with no transfer and during one
    quiet: list[float] = field(default_factory=list)
    busy: list[float] = field(default_factory=list)

    @property
    def ratios(self) -> list[float]:
        """Per run: the transfer over the faster of the two raw figures."""
        raws = [max(m, p) for m, p in zip(self.raw_max, self.raw_packed, strict=True)]
        return [t / r for t, r in zip(self.transfer, raws, strict=True)]


class RawPair:
    """Two bare backends with one GATT connection; values counted on arrival."""

    def __init__(self, central: BleConnection, peripheral: BleConnection) -> None:
        self.central = central
        self.peripheral = peripheral
        self._received = 0
        self._want = 0
        self._done = asyncio.Event()
        central.attach(self._count, lambda: None)
        peripheral.attach(self._count, lambda: None)

    def _count(self, value: bytes) -> None:
        self._received += len(value)
        if self._received >= self._want:
            self._done.set()

    async def send(self, sender: BleConnection, total: int, size: int) -> float:
        """Bytes per second for ``total`` bytes in values of ``size`` bytes from ``sender``."""
        self._received, self._want = 0, total
        self._done.clear()
        value = bytes(size)
        start = time.perf_counter()
        sent = 0
        while sent < total:
            chunk = value[: min(len(value), total - sent)]
            await sender.write(chunk)
            sent += len(chunk)
        await self._done.wait()
        return total / (time.perf_counter() - start)


async def raw_pair(air: RangedLink, rate: float | None) -> tuple[list[BumbleBackend], RawPair]:
    central, peripheral = make_virtual_backends(2, link=air, mtu=517, rate_limit=rate)
    loop = asyncio.get_running_loop()
    incoming: asyncio.Future[BleConnection] = loop.create_future()
    profile = _raw_profile()
    await peripheral.start(profile, incoming.set_result)
    await central.start(profile, lambda connection: None)
    await peripheral.start_advertising(b"bench", AdvertiseSettings(interval_ms=20))
    found: asyncio.Future[ScanResult] = loop.create_future()

    def on_result(result: ScanResult) -> None:
        if not found.done():
            found.set_result(result)

    await central.start_scanning(on_result, ScanSettings(interval_ms=20, window_ms=20))
    target = await found
    await central.stop_scanning()
    outgoing = await central.connect(target.address, 5.0)
    accepted = await incoming
    await peripheral.stop_advertising()
    return [central, peripheral], RawPair(outgoing, accepted)


def _raw_profile() -> GattProfile:
    import uuid

    return GattProfile(service=uuid.uuid4(), write=uuid.uuid4(), notify=uuid.uuid4())


class NodePair:
    """Two nodes over BLE with real stores; files go either way."""

    def __init__(self, folder: Path, air: RangedLink, rate: float | None, size: int) -> None:
        self.folder = folder
        self.air = air
        self.rate = rate
        self.size = size
        self.nodes: list[Node] = []
        self.stores: list[Store] = []

    async def start(self) -> None:
        backends = make_virtual_backends(2, link=self.air, mtu=517, rate_limit=self.rate)
        for n, backend in enumerate(backends):
            identity = Identity.generate()
            home = self.folder / f"ble{n}"
            home.mkdir(parents=True, exist_ok=True)
            store = Store.open(home / "db", key=os.urandom(32))
            files = FileOptions(
                downloads=str(home / "downloads"),
                state=str(home / "t.json"),
                policy=FilePolicy(auto_accept=2 * self.size),
            )
            transport = BleTransport(identity, backend, options=fast_options())
            node = Node(identity, f"n{n}", store, [transport], options=NodeOptions(files=files))
            await node.start()
            self.nodes.append(node)
            self.stores.append(store)
        a, b = self.nodes
        for x, y in ((a, b), (b, a)):
            k = y.identity.public
            await x.add_contact(
                Contact(k.node_id, k.sign_public, k.box_public, y.name, Trust.VERIFIED, 0)
            )
        async with asyncio.timeout(30):
            while not (a.links and b.links):
                await asyncio.sleep(0.02)

    def sender_is_central(self, sender: Node) -> bool:
        (link,) = sender.links.values()
        assert isinstance(link, BleLink)
        return link.session.connection.initiator

    async def transfer(self, sender: Node, receiver: Node, run: int, size: int = 0) -> float:
        """Seconds for a file of ``size`` bytes (default: the pair's) from ``sender`` to
        ``receiver``, from ``files.send`` to the receiver's transfer being done."""
        size = size or self.size
        source = self.folder / f"{sender.name}-{run}-{size}.bin"
        source.write_bytes(os.urandom(size))
        changed = asyncio.Event()

        def notice(notice: NodeNotice) -> None:
            if notice.kind == "transfer":
                changed.set()

        unsubscribe = receiver.subscribe(notice)
        start = time.perf_counter()
        sent = await sender.files.send(receiver.name, source)
        while True:
            changed.clear()
            done = [
                t
                for t in await receiver.files.transfers()
                if t.root == sent.root and t.direction is Direction.IN
            ]
            if done and done[0].state is State.DONE:
                break
            if done and not done[0].state.live:
                raise RuntimeError(f"transfer ended {done[0].state}: {done[0].error}")
            with contextlib.suppress(TimeoutError):  # a notice at each change of state
                await asyncio.wait_for(changed.wait(), 0.5)
        elapsed = time.perf_counter() - start
        unsubscribe()
        assert Path(done[0].path).read_bytes() == source.read_bytes()
        return elapsed

    async def texts(self, sender: Node, receiver: Node, tag: str) -> list[float]:
        """Seconds from ``send_text`` to the receiver's notice, for TEXTS texts at
        TEXT_EVERY_S apart."""
        arrived: dict[str, float] = {}

        def heard(notice: NodeNotice) -> None:
            if notice.kind == "message" and notice.message is not None:
                arrived.setdefault(notice.message.text, time.perf_counter())

        unsubscribe = receiver.subscribe(heard)
        sent: dict[str, float] = {}
        for i in range(TEXTS):
            text = f"{tag} {i}"
            sent[text] = time.perf_counter()
            await sender.send_text(receiver.name, text)
            await asyncio.sleep(TEXT_EVERY_S)
        async with asyncio.timeout(30):
            while any(t not in arrived for t in sent):
                await asyncio.sleep(0.005)
        unsubscribe()
        return [arrived[t] - at for t, at in sent.items()]

    async def texts_during(self, sender: Node, receiver: Node, run: int) -> list[float]:
        """Text latencies while a file of the pair's size flows the same way."""
        moving = asyncio.ensure_future(self.transfer(sender, receiver, 1000 + run))
        while not receiver.files.downloads.active():
            await asyncio.sleep(0.005)
        busy = await self.texts(sender, receiver, f"busy {run}")
        await moving
        return busy

    async def stop(self) -> None:
        for node in self.nodes:
            await node.stop()
        for store in self.stores:
            store.close()


async def measure(
    folder: Path, runs: int, rate: float | None = None, size: int = SIZE
) -> tuple[Way, Way]:
    """Per run, for each GATT direction: raw values of both sizes (order alternating by
    run), then a file that way (A, B as the link made them central or peripheral). ``rate``:
    bytes per second each connection's values may carry (None: as fast as the CPU goes)."""
    logging.getLogger("bumble").setLevel(logging.ERROR)
    air = RangedLink()
    backends, raw = await raw_pair(air, rate)
    pair = NodePair(folder / f"rate{rate}", air, rate, size)
    writes = Way("central writes (without response)")
    notifies = Way("peripheral notifications")
    try:
        await pair.start()
        a, b = pair.nodes
        central, peripheral = (a, b) if pair.sender_is_central(a) else (b, a)
        for run in range(runs):
            for way, conn, sender, receiver in (
                (writes, raw.central, central, peripheral),
                (notifies, raw.peripheral, peripheral, central),
            ):
                sizes = [conn.max_value_size, conn.value_size]
                for value in sizes if run % 2 == 0 else sizes[::-1]:
                    got = await raw.send(conn, pair.size, value)
                    (way.raw_max if value == sizes[0] else way.raw_packed).append(got)
                way.transfer.append(pair.size / await pair.transfer(sender, receiver, run))
                way.small.append(await pair.transfer(sender, receiver, run, SMALL))
                if rate is not None and way is writes:
                    way.quiet += await pair.texts(sender, receiver, f"quiet {run}")
                    way.busy += await pair.texts_during(sender, receiver, run)
    finally:
        await pair.stop()
        for backend in backends:
            await backend.stop()
    return writes, notifies


def report(writes: Way, notifies: Way, runs: int, title: str) -> float:
    """Print the table; return the headline ratio (the worse direction's median)."""
    print(f"{title}, MTU 517, {runs} runs (medians)")
    print(
        f"{'direction':<36} {'raw 512 B':>10} {'raw 495 B':>10} {'file':>8} {'ratio':>6}"
        "   (kB/s; ratio: file / faster raw)"
    )
    print("-" * 74)
    for w in (writes, notifies):
        print(
            f"{w.name:<36} {statistics.median(w.raw_max) / 1000:>10.1f} "
            f"{statistics.median(w.raw_packed) / 1000:>10.1f} "
            f"{statistics.median(w.transfer) / 1000:>8.1f} {statistics.median(w.ratios):>6.3f}"
        )
    if writes.busy:
        quiet, busy = _p95(writes.quiet), _p95(writes.busy)
        print(
            f"text latency ({len(writes.busy)} texts, {1 / TEXT_EVERY_S:.0f}/s, central to "
            f"peripheral): p95 {quiet * 1000:.0f} ms without a transfer, {busy * 1000:.0f} ms "
            f"during one (ratio {busy / quiet:.2f}); medians "
            f"{statistics.median(writes.quiet) * 1000:.0f} and "
            f"{statistics.median(writes.busy) * 1000:.0f} ms"
        )
    small = statistics.median(writes.small + notifies.small)
    print(
        f"a {SMALL} B file (one chunk) takes {small * 1000:.0f} ms from send to done "
        "(announcement, decision, request, piece, final check, name)"
    )
    return min(statistics.median(writes.ratios), statistics.median(notifies.ratios))


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def ratio_line(ratio: float) -> str:
    return f"files_ble_goodput_ratio: {ratio:.2f} (target >= {RATIO_TARGET})"


def radio_line(ratio: float) -> str:
    return (
        f"files_ble_goodput_ratio_at_{RADIO_RATE // 1000}kBps: {ratio:.2f} "
        f"(target >= {RATIO_TARGET})"
    )


def run(runs: int) -> tuple[float, float]:
    """Both halves; their headline ratios: (CPU-bound, at radio speed)."""
    with tempfile.TemporaryDirectory() as tmp:
        writes, notifies = asyncio.run(measure(Path(tmp), runs))
        fast = report(writes, notifies, runs, f"BLE file: {SIZE:,} bytes over one bumble GATT link")
        print()
        writes, notifies = asyncio.run(measure(Path(tmp), runs, RADIO_RATE, RADIO_SIZE))
        slow = report(
            writes,
            notifies,
            runs,
            f"BLE file: {RADIO_SIZE:,} bytes, each connection held to {RADIO_RATE:,} B/s",
        )
    return fast, slow


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs (median is shown)")
    fast, slow = run(parser.parse_args().runs)
    print(f"load average: {os.getloadavg()[0]:.2f} (1 min), {os.cpu_count()} CPUs")
    print(radio_line(slow))
    print(ratio_line(fast))
