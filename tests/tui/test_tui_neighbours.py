"""The chat screen's neighbour flow over real nodes: ``/msg alice`` to a neighbour who is no
contact, then ``/add alice``; a stranger announcing a contact's name stays a stranger."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from test_tui_controller import Side, make_side, until

from meshchat.engine import dm_conversation
from meshchat.store.records import Trust
from meshchat.transports.memory import MemoryHub


@pytest.fixture
async def trio(tmp_path: Path) -> AsyncIterator[tuple[MemoryHub, Side, Side, Side]]:
    hub = MemoryHub()
    sides = []
    for i, name in enumerate(("alice", "bob", "alice")):
        (tmp_path / str(i)).mkdir()
        sides.append(await make_side(tmp_path / str(i), hub, name))
    yield hub, *sides  # type: ignore[misc]
    for side in sides:
        await side.ctl.close()
        await side.node.stop()
        side.store.close()


async def test_msg_then_add_a_neighbour_by_its_announced_name(trio) -> None:  # type: ignore[no-untyped-def]
    hub, alice, bob, _other = trio
    hub.connect(alice.transport, bob.transport)
    await until(lambda: alice.node.identity.node_id in bob.node.announced_peers())
    bob.type("/msg alice hi neighbour")
    conversation = dm_conversation(bob.node.identity.node_id)
    await until(lambda: bool(alice.store.messages(conversation)))
    assert [m.text for m in alice.store.messages(conversation)] == ["hi neighbour"]
    await bob.ctl.idle()
    screen = bob.text()
    # a stranger: ~ and a short id, and how to keep them
    assert f"~alice ({alice.short[:4]})" in screen, screen
    assert f"not a contact: /add {alice.short}" in screen
    bob.type("/add alice")
    await bob.ctl.idle()
    [contact] = bob.store.list_contacts()
    assert contact.node_id == alice.node.identity.node_id
    assert contact.trust is Trust.UNVERIFIED
    screen = bob.text()
    assert "added alice" in screen and "unverified" in screen and "/verify alice" in screen
    await bob.ctl.open(dm_conversation(alice.node.identity.node_id))
    assert "unverified: /verify alice" in bob.text()


async def test_two_alices_are_listed_and_none_is_picked(trio) -> None:  # type: ignore[no-untyped-def]
    hub, alice, bob, other = trio
    hub.connect(alice.transport, bob.transport)
    hub.connect(other.transport, bob.transport)
    ids = {alice.node.identity.node_id, other.node.identity.node_id}
    await until(lambda: ids <= bob.node.announced_peers().keys())
    bob.type("/msg alice which one?")
    bob.type("/add alice")
    await bob.ctl.idle()
    screen = bob.text()
    assert screen.count("2 peers announced 'alice'") == 2
    assert alice.short in screen and other.short in screen
    assert bob.store.list_contacts() == []
    assert not bob.store.messages(dm_conversation(alice.node.identity.node_id))
    assert not bob.store.messages(dm_conversation(other.node.identity.node_id))


async def test_a_stranger_with_a_contacts_name_is_shown_as_a_stranger(trio) -> None:  # type: ignore[no-untyped-def]
    hub, alice, bob, impostor = trio
    hub.connect(alice.transport, bob.transport)
    await until(lambda: alice.node.identity.node_id in bob.node.announced_peers())
    bob.type("/add alice")
    await bob.ctl.idle()
    hub.connect(impostor.transport, bob.transport)
    await until(lambda: impostor.node.identity.node_id in bob.node.announced_peers())
    await until(lambda: bob.node.identity.node_id in impostor.node.announced_peers())
    # the impostor writes first: its conversation is a stranger's, never the contact's
    await impostor.node.send_text(bob.node.identity.node_id.hex(), "it's me, alice")
    await until(lambda: bool(bob.store.messages(dm_conversation(impostor.node.identity.node_id))))
    await bob.ctl.refresh_list()
    screen = bob.text()
    assert f"~alice ({impostor.short[:4]})" in screen
    bob.type("/msg alice to my contact")
    await until(lambda: bool(alice.store.messages(dm_conversation(bob.node.identity.node_id))))
    texts = [m.text for m in impostor.store.messages(dm_conversation(bob.node.identity.node_id))]
    assert texts == ["it's me, alice"]
