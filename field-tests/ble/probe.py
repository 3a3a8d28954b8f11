"""A BLE link probe for real radios: link up time, round trips and goodput, without the node.

Run one side as ``echo`` (it sends back every frame it receives) and the other as ``ping``::

    laptop 1:  python field-tests/ble/probe.py echo --backend bumble --hci usb:0
    laptop 2:  python field-tests/ble/probe.py ping --backend bleak --count 50 --size 2048

``ping`` waits for the first link, then sends ``--count`` frames of ``--size`` bytes one at a
time and times each round trip, then sends ``--burst`` frames back to back and times their
echoes for goodput. It prints a report to paste into ``field-tests/ble/report-template.md``.

``--virtual`` runs both sides in this process on bumble virtual controllers (a smoke test of the
script itself; it says nothing about radios).

Never run on radio hardware so far.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import time

from meshchat.identity import Identity
from meshchat.transports.base import Link
from meshchat.transports.ble import BleBackend, BleOptions, BleTransport


class Probe:
    """LinkHandler that echoes (``echo``) or collects replies (``ping``)."""

    def __init__(self, echo: bool) -> None:
        self.echo = echo
        self.links: list[Link] = []
        self.replies: asyncio.Queue[bytes] = asyncio.Queue()
        self.up = asyncio.Event()

    def link_up(self, link: Link) -> None:
        print(f"{time.strftime('%H:%M:%S')} link up: {link.link_id} {link.describe()}")
        self.links.append(link)
        self.up.set()

    def link_down(self, link: Link) -> None:
        print(f"{time.strftime('%H:%M:%S')} link down: {link.link_id}")
        if link in self.links:
            self.links.remove(link)
        if not self.links:
            self.up.clear()

    def frame_received(self, link: Link, frame: bytes) -> None:
        if self.echo:
            link.send(frame)
        else:
            self.replies.put_nowait(frame)


async def make_backend(name: str, hci: str) -> BleBackend:
    if name == "bumble":
        from meshchat.transports.ble.bumble_backend import BumbleBackend

        return await BumbleBackend.open(hci)
    from meshchat.transports.ble.bleak_backend import BleakBackend

    return BleakBackend()


async def ping(probe: Probe, count: int, size: int, burst: int, wait: float) -> None:
    started = time.perf_counter()
    async with asyncio.timeout(wait):
        await probe.up.wait()
    print(f"first link after {time.perf_counter() - started:.2f} s")
    link = probe.links[0]
    rtts = []
    lost = 0
    for n in range(count):
        frame = n.to_bytes(4, "big") + bytes(size - 4)
        sent = time.perf_counter()
        if not link.send(frame):
            lost += 1
            continue
        try:
            async with asyncio.timeout(5):
                while (await probe.replies.get())[:4] != frame[:4]:
                    pass
            rtts.append(time.perf_counter() - sent)
        except TimeoutError:
            lost += 1
    sent_at = time.perf_counter()
    accepted = 0
    for n in range(burst):
        while not link.send(n.to_bytes(4, "big") + bytes(size - 4)):
            await asyncio.sleep(0.005)
        accepted += 1
    received = 0
    try:
        async with asyncio.timeout(60):
            while received < accepted:
                await probe.replies.get()
                received += 1
    except TimeoutError:
        pass
    elapsed = time.perf_counter() - sent_at
    print()
    print(f"round trips: {len(rtts)}/{count} answered, {lost} lost")
    if rtts:
        quantiles = statistics.quantiles(rtts, n=20) if len(rtts) > 1 else rtts * 19
        print(f"RTT p50 {statistics.median(rtts) * 1000:.1f} ms, p95 {quantiles[18] * 1000:.1f} ms")
    print(
        f"burst: {received}/{accepted} frames of {size} B echoed in {elapsed:.2f} s, "
        f"goodput {received * size / elapsed / 1000:.1f} kB/s each way"
    )


async def run_virtual(args: argparse.Namespace) -> None:
    from meshchat.transports.ble.seam import AdvertiseSettings, ScanSettings
    from meshchat.transports.ble.virtual import make_virtual_backends

    options = BleOptions(
        scan=ScanSettings(interval_ms=20, window_ms=20), advertise=AdvertiseSettings(20)
    )
    backends = make_virtual_backends(2, mtu=args.mtu, rate_limit=args.rate)
    echo, pinger = Probe(echo=True), Probe(echo=False)
    transports = [BleTransport(Identity.generate(), b, options=options) for b in backends]
    await transports[0].start(echo)
    await transports[1].start(pinger)
    try:
        await ping(pinger, args.count, args.size, args.burst, args.wait)
    finally:
        for transport in transports:
            await transport.stop()


async def main(args: argparse.Namespace) -> None:
    if args.virtual:
        await run_virtual(args)
        return
    backend = await make_backend(args.backend, args.hci)
    probe = Probe(echo=args.role == "echo")
    transport = BleTransport(Identity.generate(), backend, max_links=args.max_links)
    await transport.start(probe)
    try:
        if args.role == "echo":
            print("echoing; Ctrl-C to stop")
            await asyncio.Event().wait()
        else:
            await ping(probe, args.count, args.size, args.burst, args.wait)
    finally:
        await transport.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("role", choices=["echo", "ping"], nargs="?", default="ping")
    parser.add_argument("--backend", choices=["bumble", "bleak"], default="bleak")
    parser.add_argument("--hci", default="usb:0", help="bumble HCI transport, e.g. usb:0")
    parser.add_argument("--count", type=int, default=50)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--burst", type=int, default=100)
    parser.add_argument("--wait", type=float, default=120.0, help="seconds to wait for a link")
    parser.add_argument("--max-links", type=int, default=7)
    parser.add_argument("--virtual", action="store_true", help="both sides here, virtual radios")
    parser.add_argument("--mtu", type=int, default=247, help="(virtual) ATT MTU")
    parser.add_argument("--rate", type=float, default=None, help="(virtual) bytes/s per link")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(parser.parse_args()))
