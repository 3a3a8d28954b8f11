"""Bluetooth by default: BLE starts when an adapter is usable, says why not otherwise, and
starts later once one becomes usable, on bumble's virtual controllers (the adapter-present
path) and on this machine's own stack (no adapter here).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from ble_world import FAST, Recorder

from meshchat.app import NodeSettings, ble_transport
from meshchat.identity import Identity
from meshchat.transports.ble import BleTransport
from meshchat.transports.ble.probe import Availability, BleProbe
from meshchat.transports.ble.seam import BleBackend
from meshchat.transports.ble.virtual import RangedLink, make_virtual_backends
from meshchat.transports.ble.watch import BleUnavailable, BleWatch, bumble_opener


class Adapter:
    """An opener whose adapter is off until :meth:`switch_on`; then it gives ``backend``."""

    def __init__(self, backend: BleBackend) -> None:
        self.backend = backend
        self.on = False
        self.asked = 0

    async def __call__(self) -> BleBackend:
        self.asked += 1
        if not self.on:
            raise BleUnavailable(
                BleProbe(Availability.ADAPTER_OFF, "the Bluetooth adapter is off (hci0)")
            )
        return self.backend


async def test_an_adapter_switched_on_later_is_used_without_a_restart() -> None:
    air = RangedLink()
    radio_a, radio_b = make_virtual_backends(2, link=air)
    alice, bob = Identity.generate(), Identity.generate()
    adapter = Adapter(radio_a)
    watch = BleWatch(
        adapter, lambda backend: BleTransport(alice, backend, options=FAST), recheck_s=0.1
    )
    other = BleTransport(bob, radio_b, options=FAST)
    seen_a, seen_b = Recorder("A"), Recorder("B")
    await other.start(seen_b)
    await watch.start(seen_a)
    try:
        status = watch.status()
        assert not status.up and status.state == "adapter off"
        assert status.reason == "the Bluetooth adapter is off (hci0)"
        assert watch.transport is None
        adapter.on = True
        await seen_a.until(lambda: len(seen_a.live) == 1, timeout=20)
        await seen_b.until(lambda: len(seen_b.live) == 1, timeout=20)
        assert seen_a.live[0].peer == bob.public
        status = watch.status()
        assert status.up and status.state == "" and "1 links" in status.detail
        asked = adapter.asked
        await asyncio.sleep(0.3)
        assert adapter.asked == asked  # no more probing once BLE runs
    finally:
        await watch.stop()
        await other.stop()
    assert seen_a.downs == seen_a.ups  # the link was reported down when the watch stopped


class Radio:
    """An adapter on the virtual air that can be switched off and on: each switching on
    opens a fresh radio (as a re-plugged dongle would be), and the check says whether it is
    still on."""

    def __init__(self, air: RangedLink) -> None:
        self.air = air
        self.on = True
        self.opened = 0

    async def open(self) -> BleBackend:
        if not self.on:
            raise BleUnavailable(BleProbe(Availability.ADAPTER_OFF, "the adapter is off (hci0)"))
        self.opened += 1
        [backend] = make_virtual_backends(1, link=self.air)
        return backend

    async def check(self) -> BleProbe:
        if self.on:
            return BleProbe(Availability.AVAILABLE, "", "hci0")
        return BleProbe(Availability.ADAPTER_OFF, "the adapter is off (hci0)")


async def test_an_adapter_switched_off_while_in_use_stops_ble_until_it_is_back() -> None:
    air = RangedLink()
    [radio_b] = make_virtual_backends(1, link=air)
    alice, bob = Identity.generate(), Identity.generate()
    radio = Radio(air)
    watch = BleWatch(
        radio.open,
        lambda backend: BleTransport(alice, backend, options=FAST),
        recheck_s=0.1,
        check=radio.check,
    )
    other = BleTransport(bob, radio_b, options=FAST)
    seen_a, seen_b = Recorder("A"), Recorder("B")
    await other.start(seen_b)
    await watch.start(seen_a)
    try:
        await seen_a.until(lambda: len(seen_a.live) == 1, timeout=20)
        await seen_b.until(lambda: len(seen_b.live) == 1, timeout=20)
        radio.on = False
        await seen_a.until(lambda: not seen_a.live, timeout=20)  # reported down
        await seen_b.until(lambda: not seen_b.live, timeout=20)  # and gone on the far side
        status = watch.status()
        assert not status.up and status.state == "adapter off" and watch.transport is None
        radio.on = True
        await seen_a.until(lambda: len(seen_a.live) == 1, timeout=20)
        await seen_b.until(lambda: len(seen_b.live) == 1, timeout=20)
        assert watch.status().up and radio.opened == 2
    finally:
        await watch.stop()
        await other.stop()


async def test_a_backend_that_fails_to_start_is_reported_and_retried() -> None:
    class Broken(BleBackend):
        name = "broken"

        def __init__(self) -> None:
            self.starts = 0

        async def start(self, profile: object, on_incoming: object) -> None:  # type: ignore[override]
            from meshchat.errors import TransportError

            self.starts += 1
            raise TransportError("cannot scan: org.bluez.Error.NotReady")

        async def stop(self) -> None:
            return None

        async def start_advertising(self, adv_id: bytes, settings: object) -> None:  # type: ignore[override]
            return None

        async def stop_advertising(self) -> None:
            return None

        async def start_scanning(self, on_result: object, settings: object) -> None:  # type: ignore[override]
            return None

        async def stop_scanning(self) -> None:
            return None

        async def connect(self, address: str, timeout: float) -> object:  # type: ignore[override]
            raise AssertionError("never dials")

    broken = Broken()

    async def opener() -> BleBackend:
        return broken

    watch = BleWatch(
        opener, lambda backend: BleTransport(Identity.generate(), backend), recheck_s=0.05
    )
    await watch.start(Recorder("A"))
    try:
        async with asyncio.timeout(10):
            while broken.starts < 3:
                await asyncio.sleep(0.02)
        status = watch.status()
        assert not status.up and status.state == "failed"
        assert "NotReady" in status.reason
    finally:
        await watch.stop()


async def test_a_missing_bumble_controller_says_there_is_none() -> None:
    opener = bumble_opener("tcp-client:127.0.0.1:1", timeout=5)
    try:
        await opener()
    except BleUnavailable as exc:
        assert exc.probe.availability is Availability.NO_ADAPTER
        assert "tcp-client:127.0.0.1:1" in exc.probe.reason
    else:
        raise AssertionError("a controller nobody serves was opened")


async def test_this_machine_has_no_adapter_and_says_so(tmp_path: Path) -> None:
    """The node's own BLE transport, on this machine's stack: none here (no /sys/class/bluetooth
    adapter, no system bus), so it is down with the reason and keeps checking."""
    assert not any(Path("/sys/class/bluetooth").glob("hci*")), "this test wants no adapter"
    settings = NodeSettings(ble_backend="bleak", ble_recheck_s=0.05)
    watch = ble_transport(settings, Identity.generate())
    assert isinstance(watch, BleWatch)
    await watch.start(Recorder("A"))
    try:
        await asyncio.sleep(0.2)
        status = watch.status()
        assert not status.up and status.state == "no adapter"
        assert "no Bluetooth adapter" in status.reason
        assert watch.attempts >= 2  # checked again
    finally:
        await watch.stop()
