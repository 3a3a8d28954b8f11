"""The chat screen over a group whose message is lost on the last hop, then resent.

Alice - Bob - Carol in memory (Bob relays), one private group, Carol's screen on it. What Bob
relays to Carol is lost while Alice sends "one"; Alice's next message "two" reaches Carol held
(it names "one"), Carol's node asks for "one", Alice resends it. Carol's screen must end with
"one" before "two" (the screen re-reads the order; appending as messages arrive would show
"two" first), no line left waiting, and while "two" waited its text was never on screen.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from test_tui_controller import WIDE, Side
from urwid.testing import render_text

from meshchat.catchup import CatchupTimings
from meshchat.group.book import group_conversation
from meshchat.identity import Identity
from meshchat.node import Node, NodeOptions
from meshchat.store import Store
from meshchat.transports.memory import MemoryHub
from meshchat.tui.controller import ChatController

NAMES = ("Alicewright", "Bobsworth", "Carolinda")
FAST = CatchupTimings(
    quiet_ms=300,
    repeat_ms=(600, 1_200, 2_400, 4_800, 9_600),
    want_every_ms=200,
    resend_window_ms=1_000,
    resend_budget=64,
    resend_same_ms=300,
)


@pytest.fixture
async def line(tmp_path: Path) -> AsyncIterator[tuple[MemoryHub, list[Side], list[str]]]:
    hub = MemoryHub(rng=random.Random(20261203))
    sides = []
    screens: list[str] = []
    for name in NAMES:
        identity = Identity.generate()
        store = Store.open(tmp_path / f"{name}.db", key=os.urandom(32))
        transport = hub.transport(identity.public)
        node = Node(identity, name, store, [transport], options=NodeOptions(catchup=FAST))
        await node.start()
        holder: list[ChatController] = []

        def redraw(holder: list[ChatController] = holder, name: str = name) -> None:
            if name == NAMES[2] and holder:  # every state of Carol's screen, as drawn
                screens.append("\n".join(render_text(holder[0].screen, WIDE, focus=True)))

        ctl = ChatController(node, redraw=redraw, on_quit=lambda: None)
        holder.append(ctl)
        await ctl.start()
        sides.append(Side(node, store, transport, ctl))
    yield hub, sides, screens
    for side in sides:
        await side.ctl.close()
        await side.node.stop()
        side.store.close()


async def test_a_resent_message_lands_before_the_one_that_waited_for_it(line) -> None:  # type: ignore[no-untyped-def]
    hub, (alice, bob, carol), screens = line
    for a, b in ((alice, bob), (alice, carol), (bob, carol)):
        await a.node.add_card(await b.node.card())
        await b.node.add_card(await a.node.card())
    hub.connect(alice.transport, bob.transport)
    hub.connect(bob.transport, carol.transport)
    group = await alice.node.create_group("crew", [NAMES[1], NAMES[2]])
    conversation = group_conversation(group.group_id)
    await alice.node.send_text("+crew", "warm up")

    async def texts(side: Side) -> list[str]:
        got = await side.node.history(conversation)
        return [m.text for m in got if m.order_ms is not None]

    async with asyncio.timeout(30):
        while await texts(carol) != ["warm up"]:
            await asyncio.sleep(0.05)
        await asyncio.sleep(4 * FAST.quiet_ms / 1000)
    await carol.ctl.refresh_list()
    await carol.ctl.open(conversation)

    bob_links = set(bob.transport.links)
    hub.drop = lambda link, frame: (
        link.link_id in bob_links
        and link.remote is not None
        and (link.remote.owner is carol.transport)
    )
    await alice.node.send_text("+crew", "one lost")
    async with asyncio.timeout(10):
        while "one lost" not in await texts(bob):
            await asyncio.sleep(0.02)
    await asyncio.sleep(0.1)
    hub.drop = None
    screens.clear()
    await alice.node.send_text("+crew", "two waits")

    async with asyncio.timeout(20):
        while await texts(carol) != ["warm up", "one lost", "two waits"]:
            await asyncio.sleep(0.05)
        await carol.ctl.idle()
    screen = carol.text()
    order = [screen.index(t) for t in ("warm up", "one lost", "two waits")]
    assert order == sorted(order), screen
    assert "waiting for" not in screen
    shown = [m.text for m in carol.ctl.shown_messages()]
    assert shown == ["warm up", "one lost", "two waits"]
    # Before "one lost" came back, "two waits" was on screen only as a waiting line.
    early = [s for s in screens if "one lost" not in s]
    assert any("waiting for 1 earlier message" in s for s in early)
    assert not any("two waits" in s for s in early)
