"""bitchat over the air (virtual): bitchat-cli's own BLE layer, unchanged, as the GATT central
against meshchat's bitchat peripheral on bumble. bleak reaches bumble through the backend in
``tests/transports/ble/bleak_bumble.py`` (bleak's ``backend=`` hook); everything above bleak
is bitchat-cli's code.

What this proves: the GATT layout (service, one characteristic, notify and write without
response), MTU and framing work between an independent bitchat implementation and ours,
announces cross both ways, public messages cross both ways (fragments included), and
bitchat-cli's random peer id is refused as upstream refuses it. What it does not: anything
about a phone's radio or OS (see firmware-notes/bitchat.md).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import bleak
import pytest
from bitchat_cli import ble_service
from bitchat_cli.chat_state import ChatState

from meshchat.bridges.bitchat.announce import Announcement
from meshchat.bridges.bitchat.ble import BitchatGatt
from meshchat.bridges.bitchat.mesh import BitchatMesh
from meshchat.bridges.bitchat.peers import PublicText
from meshchat.bridges.bitchat.public import BitchatIdentity
from meshchat.errors import BridgeReason
from meshchat.transports.ble.virtual import RangedLink

sys.path.insert(0, str(Path(__file__).parents[2] / "transports" / "ble"))
from bleak_bumble import backends, virtual_device


async def _until(check: Callable[[], bool], timeout: float = 15.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.02)


def _now_ms() -> int:
    return int(time.time() * 1000)


async def test_bitchat_cli_and_meshchat_talk_over_virtual_ble(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    link = RangedLink()
    ours, theirs = virtual_device(link, "meshchat"), virtual_device(link, "bitchat-cli")
    await theirs.power_on()
    peers: list[Announcement] = []
    texts: list[PublicText] = []
    mesh = BitchatMesh(BitchatIdentity.generate(), "meshchat-alice")
    gatt = BitchatGatt(ours, mesh, on_peer=peers.append, on_text=texts.append, clock_ms=_now_ms)
    await gatt.start()

    scanner, client = backends(theirs)
    monkeypatch.setattr(
        ble_service, "BleakScanner", functools.partial(bleak.BleakScanner, backend=scanner)
    )
    monkeypatch.setattr(
        ble_service, "BleakClient", functools.partial(bleak.BleakClient, backend=client)
    )
    monkeypatch.setattr(ble_service, "print_formatted_text", lambda *a, **k: None)
    state = ChatState("cli-bob", os.urandom(8))
    state.my_peer_id = hashlib.sha256(state.identity.noise_public_key_bytes()).digest()[:8]
    service = ble_service.BLEService(state, lambda: None)
    runner = asyncio.get_running_loop().create_task(service.run())
    try:
        ours_hex = mesh.identity.peer_id.hex()
        await _until(lambda: state.peer_nicknames.get(ours_hex) == "meshchat-alice")
        await _until(lambda: any(p.nickname == "cli-bob" for p in peers))

        await service.send_public_message("hello from bitchat-cli")
        long_text = "".join(chr(0x400 + i) for i in range(400))  # 800 bytes: fragments
        await service.send_public_message(long_text)
        await _until(lambda: len(texts) == 2)
        assert [t.text for t in texts] == ["hello from bitchat-cli", long_text]
        assert {t.nickname for t in texts} == {"cli-bob"}

        await gatt.send_text("hello from meshchat")
        await gatt.send_text("é" * 400)  # a fragmented notification train
        await _until(lambda: len(state.messages) >= 4)
        received = [m.content for m in state.messages if m.sender == "meshchat-alice"]
        assert received == ["hello from meshchat", "é" * 400]

        # bitchat-cli as shipped (a random peer id) is refused, as upstream refuses it
        state.my_peer_id = os.urandom(8)
        await service.send_announce()
        await _until(lambda: gatt.refused[BridgeReason.SENDER_MISMATCH] == 1)
        assert len(peers) == 1
    finally:
        await service.stop()
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        await gatt.stop()
