"""The chat screen shows the causal order with its markers, and deletes with a confirmation.

Real nodes linked in memory, the screen rendered without a terminal (as in
``test_tui_controller``). Messages with missing parents are stored on the receiving node's own
store thread, as its receive path stores them, and the node tells the screen as it does when
it releases held messages.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from test_tui_controller import Side, befriend, make_side, until

from meshchat.causal import HOLD_MS
from meshchat.node import NodeNotice
from meshchat.transports.memory import MemoryHub


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[tuple[MemoryHub, Side, Side]]:
    hub = MemoryHub()
    alice = await make_side(tmp_path, hub, "alice")
    bob = await make_side(tmp_path, hub, "bob")
    await befriend(alice, bob)
    hub.connect(alice.transport, bob.transport)
    yield hub, alice, bob
    for side in (alice, bob):
        await side.ctl.close()
        await side.node.stop()
        side.store.close()


def last_note(side: Side, conversation: str) -> str:
    notes = side.ctl.notes.get(conversation, [])
    return notes[-1].text if notes else ""


async def talk(alice: Side, bob: Side, *texts: str) -> str:
    """Alice sends these to Bob; Bob opens the conversation once all are there."""
    for text in texts:
        await alice.node.send_text("bob", text)
    conversation = await bob.node.resolve_conversation("alice")

    async def arrived() -> bool:
        return len(await bob.node.history(conversation)) == len(texts)

    async with asyncio.timeout(10):
        while not await arrived():
            await asyncio.sleep(0.02)
    bob.type("/msg alice")
    await until(lambda: all(t in bob.text() for t in texts))
    return conversation


async def test_delete_one_message_after_the_question_and_yes(pair) -> None:  # type: ignore[no-untyped-def]
    _hub, alice, bob = pair
    conversation = await talk(alice, bob, "first", "second secret", "third")
    bob.type("/delete 2")
    await until(lambda: "/yes deletes it" in bob.text())
    question = last_note(bob, conversation)
    assert question.startswith('Delete the message from alice "second secret" (')
    assert question.endswith("/yes deletes it; anything else keeps it.")
    assert [m.text for m in await bob.node.history(conversation)] == [
        "first",
        "second secret",
        "third",
    ]  # only asked

    bob.type("/yes")
    await until(lambda: "deleted 1 message" in bob.text())
    await until(lambda: "second secret" not in bob.text())  # the question went too
    assert [m.text for m in await bob.node.history(conversation)] == ["first", "third"]
    assert "first" in bob.text() and "third" in bob.text()


async def test_any_other_line_forgets_the_question(pair) -> None:  # type: ignore[no-untyped-def]
    _hub, alice, bob = pair
    conversation = await talk(alice, bob, "keep me")
    bob.type("/delete")
    await until(lambda: "whole conversation alice" in last_note(bob, conversation))
    bob.type("a reply instead")
    await until(lambda: "a reply instead" in bob.text())
    bob.type("/yes")
    await until(lambda: "nothing to confirm: /delete first" in bob.text())
    assert len(await bob.node.history(conversation)) == 2
    # Nor does a question asked in one conversation delete in another.
    bob.type("/delete 1")
    await until(lambda: 'your message "a reply instead"' in last_note(bob, conversation))
    bob.type("/msg #mesh")
    await until(lambda: bob.ctl.current == "#mesh")
    bob.type("/yes")
    await until(lambda: "nothing to confirm" in bob.text())
    assert len(await bob.node.history(conversation)) == 2


async def test_delete_the_whole_conversation_and_bad_numbers(pair) -> None:  # type: ignore[no-untyped-def]
    _hub, alice, bob = pair
    conversation = await talk(alice, bob, "apple one", "apple two")
    bob.type("/delete 3")
    await until(lambda: "shows 2 messages" in last_note(bob, conversation))
    assert last_note(bob, conversation).startswith("/delete 3: alice (")
    bob.type("/delete x")
    await until(lambda: "usage: /delete [N]" in last_note(bob, conversation))
    bob.type("/delete")
    await until(lambda: "/yes deletes it" in bob.text())
    bob.type("/yes")
    await until(lambda: "deleted 2 messages" in bob.text())
    await until(lambda: "apple" not in bob.text())
    assert await bob.node.history(conversation) == []


async def test_markers_show_and_a_released_message_lands_in_its_place(pair) -> None:  # type: ignore[no-untyped-def]
    _hub, alice, bob = pair
    conversation = await talk(alice, bob, "hello there")
    store = bob.node.store
    sender = alice.node.identity.node_id
    lost, held_id = os.urandom(16), os.urandom(16)
    now = int(time.time() * 1000)

    async def receive(msg_id: bytes, text: str, sent: int, at: int, parents: tuple[bytes, ...]):  # type: ignore[no-untyped-def]
        return await store.call(
            store.store.add_incoming,
            conversation,
            msg_id,
            sender,
            "alice",
            text,
            sent,
            at,
            parents=parents,
        )

    await receive(held_id, "the answer is yes", now, now, (lost,))
    bob.node.notify(NodeNotice("history", conversation=conversation))
    await until(lambda: "(waiting for 1 earlier message)" in bob.text())
    assert "the answer is yes" not in bob.text()

    await receive(os.urandom(16), "from long ago", now - 3_600_000, now + 5, ())
    bob.node.notify(NodeNotice("history", conversation=conversation))
    await until(lambda: "from long ago  (arrived late)" in bob.text())

    # The hold runs out: the message is shown in its place, after a gap line.
    await store.call(store.store.release_held, now + HOLD_MS + 1)
    bob.node.notify(NodeNotice("history", conversation=conversation))
    await until(lambda: "the answer is yes" in bob.text())
    screen = bob.text()
    assert "~~ 1 earlier message missing ~~" in screen
    order = [screen.index(t) for t in ("hello there", "1 earlier message missing", "the answer")]
    assert order == sorted(order)
    assert "waiting for" not in screen


async def test_a_late_parent_releases_its_child_and_both_land_in_order(pair) -> None:  # type: ignore[no-untyped-def]
    _hub, alice, bob = pair
    conversation = await talk(alice, bob, "before both")
    store = bob.node.store
    sender = alice.node.identity.node_id
    parent, child = os.urandom(16), os.urandom(16)
    now = int(time.time() * 1000)

    async def receive(msg_id: bytes, text: str, sent: int, parents: tuple[bytes, ...]):  # type: ignore[no-untyped-def]
        return await store.call(
            store.store.add_incoming,
            conversation,
            msg_id,
            sender,
            "alice",
            text,
            sent,
            now + 100,
            parents=parents,
        )

    held = await receive(child, "the reply", now + 2, (parent,))
    bob.node.notify(NodeNotice("message", message=held))
    await until(lambda: "(waiting for 1 earlier message)" in bob.text())
    # The parent arrives: the store shows it and releases the child; the node tells the
    # screen about the parent only, and the screen re-reads the order.
    shown = await receive(parent, "the question", now + 1, ())
    bob.node.notify(NodeNotice("message", message=shown))
    await until(lambda: "the reply" in bob.text() and "waiting for" not in bob.text())
    screen = bob.text()
    order = [screen.index(t) for t in ("before both", "the question", "the reply")]
    assert order == sorted(order)
    texts = [m.text for m in bob.ctl.shown_messages()]
    assert texts == ["before both", "the question", "the reply"]
