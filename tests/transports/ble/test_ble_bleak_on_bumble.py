"""The project's bleak backend (written from documentation, never run on a radio) as the
central of a real meshchat BLE link, against a meshchat node on bumble: bleak reaches bumble
through the backend in ``bleak_bumble.py``. What this proves: our use of bleak's scanner
(service filter, local name carrying the rotating id), client (connect, MTU, notify, write
without response) drives the link handshake and frames both ways. What it does not: bless
(the peripheral half; it needs BlueZ), or any operating system's stack."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import bleak
import pytest

from meshchat.identity import Identity
from meshchat.transports.ble import BleTransport
from meshchat.transports.ble.bleak_backend import BleakBackend
from meshchat.transports.ble.virtual import RangedLink, make_virtual_backends

sys.path.insert(0, str(Path(__file__).parent))
from ble_world import FAST, Recorder
from bleak_bumble import backends, virtual_device


async def test_our_bleak_backend_links_to_a_bumble_node(monkeypatch: pytest.MonkeyPatch) -> None:
    air = RangedLink()
    (peripheral,) = make_virtual_backends(1, link=air)
    central_radio = virtual_device(air, "bleak-central")
    await central_radio.power_on()
    scanner, client = backends(central_radio)
    monkeypatch.setattr(
        bleak, "BleakScanner", functools.partial(bleak.BleakScanner, backend=scanner)
    )
    monkeypatch.setattr(bleak, "BleakClient", functools.partial(bleak.BleakClient, backend=client))
    a_id, b_id = Identity.generate(), Identity.generate()
    a = BleTransport(a_id, BleakBackend(peripheral=False), options=FAST)
    b = BleTransport(b_id, peripheral, options=FAST)
    rec_a, rec_b = Recorder("bleak"), Recorder("bumble")
    await b.start(rec_b)
    await a.start(rec_a)
    try:
        await rec_a.until(lambda: bool(rec_a.live) and bool(rec_b.live), timeout=20)
        assert rec_a.live[0].peer == b_id.public and rec_b.live[0].peer == a_id.public
        big = bytes(range(256)) * 6  # past one ATT value: fragmented both ways
        assert rec_a.live[0].send(b"from bleak" + big)
        assert rec_b.live[0].send(b"from bumble" + big)
        await rec_a.until(lambda: b"from bumble" + big in rec_a.payloads())
        await rec_b.until(lambda: b"from bleak" + big in rec_b.payloads())
    finally:
        await a.stop()
        await b.stop()
