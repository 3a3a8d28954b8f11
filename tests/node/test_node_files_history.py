"""A file announcement sits in the causal history as a loose parent: the messages sent after it
name it without waiting for it, so a lost announcement never holds back later text."""

from __future__ import annotations

import os
from pathlib import Path

from meshchat.files.announce import parse_text
from meshchat.store import Store
from meshchat.store.records import Trust
from meshchat.transports.memory import MemoryHub
from tests.node.test_node_files import Peer, befriend, pair, received, wait_for

__all__ = ["pair"]  # the fixture


async def test_text_after_a_file_names_it_loose_and_is_shown_without_it(
    pair: tuple[MemoryHub, Peer, Peer], tmp_path: Path
) -> None:
    hub, alice, bob = pair
    await befriend(alice, bob, Trust.VERIFIED)
    hub.connect(alice.transport, bob.transport)
    source = tmp_path / "notes.bin"
    source.write_bytes(os.urandom(5000))
    first = await alice.node.send_text("bob", "here it comes")
    sent = await alice.node.files.send("bob", source)
    after = await alice.node.send_text("bob", "did you get it?")
    # the sender names the announcement loose, and the text before it (the announcement's
    # own parent) as a blocking parent
    assert after.loose == (sent.msg_id,)
    assert after.parents == (first.msg_id,)
    again = await alice.node.send_text("bob", "and?")
    assert again.parents == (after.msg_id,) and again.loose == ()

    conversation = await bob.node.resolve_conversation("alice")

    async def bob_has_them() -> bool:
        return bool(await received(bob)) and len(await bob.node.history(conversation)) == 4

    await wait_for(bob_has_them)
    shown = await bob.node.history(conversation)
    assert [m.msg_id for m in shown] == [first.msg_id, sent.msg_id, after.msg_id, again.msg_id]
    assert all(m.order_ms is not None for m in shown)
    (bobs_after,) = [m for m in shown if m.msg_id == after.msg_id]
    assert bobs_after.loose == (sent.msg_id,)
    # a device that never got the announcement shows the later text at once (not held)
    other = Store.open(tmp_path / "other.db", key=os.urandom(32))
    try:
        kept = other.add_incoming(
            conversation, first.msg_id, first.sender, "alice", first.text, 1, 2
        )
        assert kept is not None and not kept.held
        later = other.add_incoming(
            conversation, after.msg_id, after.sender, "alice", after.text, 3, 4,
            parents=bobs_after.parents, loose=bobs_after.loose,
        )  # fmt: skip
        assert later is not None and not later.held
        assert parse_text(shown[1].text) is not None
    finally:
        other.close()
