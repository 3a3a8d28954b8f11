"""The terminal UI with the bitchat bridge on: ``#bitchat`` is in the conversation list, its
title carries the other-network mark, a crowd's text shows with its bitchat sender, and what
the user types there goes to the crowd as a signed public message."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from datetime import UTC
from pathlib import Path

from urwid.testing import render_text

from meshchat.bridges.bitchat.central import BitchatCentral
from meshchat.bridges.bitchat.mesh import BitchatMesh
from meshchat.bridges.bitchat.peers import PublicText
from meshchat.bridges.bitchat.public import BitchatIdentity
from meshchat.bridges.marks import BITCHAT_MARK
from meshchat.identity import Identity
from meshchat.node import Node
from meshchat.node._bitchat import BitchatGateway
from meshchat.store import Store
from meshchat.transports.ble.virtual import RangedLink
from meshchat.tui.controller import ChatController
from tests.transports.ble.bleak_bumble import virtual_device

WIDE = (200, 40)


async def until(check: Callable[[], bool], timeout: float = 15.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.02)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


async def test_the_ui_shows_and_sends_bitchat(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "alice.db", key=os.urandom(32))
    node = Node(Identity.generate(), "alice", store, [])
    await node.start()
    air = RangedLink()
    gateway = BitchatGateway(node, device=virtual_device(air, "alice-radio"))
    await gateway.start()
    crowd_device = virtual_device(air, "carol")
    await crowd_device.power_on()
    heard: list[PublicText] = []
    carol = BitchatCentral(
        crowd_device,
        BitchatMesh(BitchatIdentity.generate(), "carol"),
        on_text=heard.append,
        clock_ms=now_ms,
    )
    await carol.start()
    ctl = ChatController(node, redraw=lambda: None, on_quit=lambda: None, tz=UTC)
    await ctl.start()

    def screen() -> str:
        return "\n".join(render_text(ctl.screen, WIDE, focus=True))

    def typed(line: str) -> None:
        ctl.screen.focus_pane("input")
        for ch in line:
            ctl.screen.keypress(WIDE, ch)
        ctl.screen.keypress(WIDE, "enter")

    try:
        await until(lambda: len(carol.mesh.peers) == 1)
        await carol.send_text("hello from the \x1b[31mcrowd")
        async with asyncio.timeout(15):
            while not any(m.text.startswith("hello") for m in await node.messages("#bitchat")):
                await asyncio.sleep(0.02)
        typed("/join #bitchat")
        await until(lambda: ctl.current == "#bitchat")
        await ctl.idle()
        shown = screen()
        assert f"#bitchat  {BITCHAT_MARK}" in shown  # the conversation's title
        assert f"carol@bitchat:{carol.mesh.identity.peer_id.hex()}" in shown
        assert "\x1b" not in shown  # the crowd's escape sequence is shown escaped
        typed("alice answers the crowd")
        await until(lambda: [t.text for t in heard] == ["alice answers the crowd"])
        assert heard[0].nickname == "alice"
    finally:
        await ctl.close()
        await carol.stop()
        await gateway.stop()
        await node.stop()
        store.close()
