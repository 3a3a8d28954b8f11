"""Goodput of meshchat frames over one BLE GATT link, beside raw GATT writes on the same link.

What is measured. Two bumble virtual radios (real HCI, L2CAP, ATT and GATT in software; see
TESTBEDS.md) are connected once, as a phone and a laptop would be: MTU exchange, service
discovery, subscription. On that one connection each run does, in alternating order:

* **raw**: the central writes the same number of payload bytes as ATT *write without
  response* values of the largest size the link allows (``min(mtu - 3, 512)``), through the
  backend's paced write; the peripheral counts bytes. This is the most a GATT application can
  push through this stack.
* **meshchat**: the central's :class:`~meshchat.transports.ble.session.Session` (after a real
  link handshake) sends 2048-byte frames (the largest meshchat packet): channel byte, cut into
  fragments with their 4-byte header, bounded send queue, one writer task; the peripheral's
  session reassembles them and hands them up.

Goodput is payload bytes delivered per second of wall time, from the first write to the last
byte (or frame) received. The virtual link has no air time, so both figures are CPU-bound (both
ends share one Python process); the ratio is what matters: the cost of meshchat's framing over
the bare GATT path. The ratio is taken per run, between a raw and a meshchat phase run back to
back, and the median of those ratios is shown: pairs cancel most of the drift when other
processes share the CPU (the load average is printed: such runs are noisy). Fragment overhead
is the extra bytes meshchat puts into ATT values (headers and the channel byte) over the frame
bytes, counted at the link, for 2048-byte and for 200-byte frames. Every figure is the median
of ``--runs`` runs.

Why the ratio falls at MTU 23 and 517: the stack's cost is per ATT write, and a 2049-byte link
frame needs ``ceil(2049 / (value - 4))`` writes against ``2048 / value`` for raw data: 9 against
8.4 at MTU 247, but 129 against 102 at MTU 23 and 5 against 4 at MTU 517.

Targets (issue #3): goodput ratio at MTU 247 >= 0.85; fragment overhead at MTU 247 <= 6%.
Run ``python bench/ble.py`` (about 30 s). The last line is::

    ble_goodput_ratio_mtu247: 0.93 (target >= 0.85)
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

from meshchat.identity import Identity
from meshchat.transports.ble import GattProfile, ScanResult, ScanSettings
from meshchat.transports.ble.bumble_backend import BumbleBackend
from meshchat.transports.ble.seam import AdvertiseSettings, BleConnection
from meshchat.transports.ble.session import Session, SessionLimits
from meshchat.transports.ble.virtual import make_virtual_backends
from meshchat.wire.packet import MAX_PACKET_SIZE

RATIO_TARGET = 0.85
OVERHEAD_TARGET = 6.0


class Tap(BleConnection):
    """Wraps a connection: counts what is written, and lets the bench route what arrives."""

    def __init__(self, inner: BleConnection) -> None:
        super().__init__(inner.address, inner.initiator)
        self.inner = inner
        self.written = 0
        self.sink: Callable[[bytes], None] = lambda value: None
        inner.attach(self._route, self.mark_closed)

    def _route(self, value: bytes) -> None:
        self.sink(value)

    @property
    def mtu(self) -> int:
        return self.inner.mtu

    async def write(self, value: bytes) -> None:
        self.written += len(value)
        await self.inner.write(value)

    async def close(self) -> None:
        await self.inner.close()


@dataclass
class Result:
    raw: float
    meshchat: float
    #: median over runs of meshchat / raw measured back to back (pairs cancel load drift)
    ratio: float
    overhead_large: float
    overhead_small: float


async def connect_pair(mtu: int) -> tuple[list[BumbleBackend], Tap, Tap]:
    backends = make_virtual_backends(2, mtu=mtu)
    central, peripheral = backends
    incoming: asyncio.Future[BleConnection] = asyncio.get_running_loop().create_future()
    await peripheral.start(GattProfile(), incoming.set_result)
    await central.start(GattProfile(), lambda connection: None)
    await peripheral.start_advertising(b"bench", AdvertiseSettings(interval_ms=20))
    found: asyncio.Future[ScanResult] = asyncio.get_running_loop().create_future()

    def on_result(result: ScanResult) -> None:
        if not found.done():
            found.set_result(result)

    await central.start_scanning(on_result, ScanSettings(interval_ms=20, window_ms=20))
    target = await found
    await central.stop_scanning()
    outgoing = await central.connect(target.address, 5.0)
    accepted = await incoming
    await peripheral.stop_advertising()
    return backends, Tap(outgoing), Tap(accepted)


async def handshake(a: Tap, b: Tap, frames: list[bytes]) -> tuple[Session, Session]:
    limits = SessionLimits(queue_frames=64, queue_bytes=256 * 1024)
    ready: list[Session] = []

    def make(connection: Tap) -> Session:
        return Session(
            connection,
            Identity.generate(),
            limits,
            on_ready=ready.append,
            on_frame=lambda session, frame: frames.append(frame),
            on_control=lambda session, adv_id: None,
            on_closed=lambda session: None,
        )

    sa, sb = make(a), make(b)
    # Route values through the taps to the sessions; the sessions attach to the taps.
    a.sink, b.sink = a.deliver, b.deliver
    sa.begin()
    sb.begin()
    while len(ready) < 2:
        await asyncio.sleep(0.001)
    return sa, sb


async def raw_run(a: Tap, b: Tap, total: int) -> float:
    received = 0
    done = asyncio.Event()

    def count(value: bytes) -> None:
        nonlocal received
        received += len(value)
        if received >= total:
            done.set()

    b.sink = count
    value = bytes(a.max_value_size)
    start = time.perf_counter()
    sent = 0
    while sent < total:
        chunk = value[: min(len(value), total - sent)]
        await a.write(chunk)
        sent += len(chunk)
    await done.wait()
    elapsed = time.perf_counter() - start
    b.sink = b.deliver
    return total / elapsed


async def meshchat_run(
    a: Tap, sender: Session, frames: list[bytes], count: int, size: int
) -> tuple[float, float]:
    frames.clear()
    frame = bytes(size)
    written_before = a.written
    start = time.perf_counter()
    for _ in range(count):
        while not sender.enqueue(frame):
            await asyncio.sleep(0.0005)
    while len(frames) < count:
        await asyncio.sleep(0.0005)
    elapsed = time.perf_counter() - start
    overhead = (a.written - written_before - count * size) / (count * size) * 100
    return count * size / elapsed, overhead


async def measure(mtu: int, runs: int, frame_count: int) -> Result:
    backends, a, b = await connect_pair(mtu)
    frames: list[bytes] = []
    sender, _ = await handshake(a, b, frames)
    raws, meshes, large, small = [], [], [], []
    total = frame_count * MAX_PACKET_SIZE
    try:
        for run in range(runs):
            if run % 2 == 0:
                raws.append(await raw_run(a, b, total))
                goodput, overhead = await meshchat_run(
                    a, sender, frames, frame_count, MAX_PACKET_SIZE
                )
            else:
                goodput, overhead = await meshchat_run(
                    a, sender, frames, frame_count, MAX_PACKET_SIZE
                )
                raws.append(await raw_run(a, b, total))
            meshes.append(goodput)
            large.append(overhead)
            small.append((await meshchat_run(a, sender, frames, 50, 200))[1])
    finally:
        for backend in backends:
            await backend.stop()
    return Result(
        statistics.median(raws),
        statistics.median(meshes),
        statistics.median(m / r for m, r in zip(meshes, raws, strict=True)),
        statistics.median(large),
        statistics.median(small),
    )


async def main(runs: int) -> None:
    logging.getLogger("bumble").setLevel(logging.ERROR)
    print(f"BLE goodput on one bumble virtual link, median of {runs} runs")
    print(f"load average before the run: {os.getloadavg()[0]:.2f} (1 min), {os.cpu_count()} CPUs")
    print()
    header = (
        f"{'MTU':>5} {'value':>6} {'raw kB/s':>10} {'meshchat kB/s':>14} {'ratio':>6} "
        f"{'overhead 2048 B':>16} {'overhead 200 B':>15}"
    )
    print(header)
    print("-" * len(header))
    results: dict[int, Result] = {}
    for mtu, frame_count in ((23, 64), (247, 512), (517, 512)):
        r = await measure(mtu, runs, frame_count)
        results[mtu] = r
        value = min(mtu - 3, 512)
        print(
            f"{mtu:>5} {value:>6} {r.raw / 1000:>10.1f} {r.meshchat / 1000:>14.1f} "
            f"{r.ratio:>6.3f} {r.overhead_large:>15.2f}% {r.overhead_small:>14.2f}%"
        )
    at247 = results[247]
    print()
    print(
        f"fragment overhead at MTU 247: {at247.overhead_large:.2f}% for 2048-byte frames, "
        f"{at247.overhead_small:.2f}% for 200-byte frames (target <= {OVERHEAD_TARGET:g}%)"
    )
    print(f"load average during the run: {os.getloadavg()[0]:.2f} (1 min), {os.cpu_count()} CPUs")
    print(f"ble_goodput_ratio_mtu247: {at247.ratio:.3f} (target >= {RATIO_TARGET})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="runs per MTU (median is shown)")
    asyncio.run(main(parser.parse_args().runs))
