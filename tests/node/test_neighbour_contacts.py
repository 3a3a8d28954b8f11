"""Contacts from the people around you: announced neighbours are messaged and added by name.

Real nodes on the in-memory medium: a name no contact has resolves to the one peer that
announced it; the first message to it is sealed with the ratchet (suite RATCHET on the wire,
from the prekey its announce carried); two keys announcing one name make it ambiguous; a
contact always wins over a stranger announcing the contact's name; ``add_from_peer`` makes
an unverified contact from the announce.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from meshchat.engine import dm_conversation
from meshchat.errors import UsageError
from meshchat.identity import Identity
from meshchat.node import Node
from meshchat.store import Store
from meshchat.store.records import Trust
from meshchat.store.trust import KeyChangeError
from meshchat.transports.memory import MemoryHub, MemoryLink, MemoryTransport
from meshchat.wire import codec
from meshchat.wire.packet import PacketKind, Suite


@dataclass
class Peer:
    node: Node
    transport: MemoryTransport
    store: Store


async def wait_for(predicate: Callable[[], Awaitable[bool] | bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while True:
            result = predicate()
            if result if isinstance(result, bool) else await result:
                return
            await asyncio.sleep(0.02)


@pytest.fixture
async def mesh(tmp_path: Path) -> AsyncIterator[Callable[[str], Awaitable[Peer]]]:
    hub = MemoryHub()
    peers: list[Peer] = []

    async def make(name: str) -> Peer:
        identity = Identity.generate()
        store = Store.open(tmp_path / f"{name}-{len(peers)}.db", key=os.urandom(32))
        transport = hub.transport(identity.public)
        node = Node(identity, name, store, [transport])
        await node.start()
        peer = Peer(node, transport, store)
        for other in peers:
            hub.connect(other.transport, transport)
        peers.append(peer)
        return peer

    make.hub = hub  # type: ignore[attr-defined]
    yield make
    for p in peers:
        await p.node.stop()
        p.store.close()


async def heard(node: Node, *others: Peer) -> None:
    ids = {o.node.identity.node_id for o in others}
    await wait_for(lambda: ids <= node.announced_peers().keys())


async def test_first_message_to_an_announced_name_is_forward_secret(mesh) -> None:  # type: ignore[no-untyped-def]
    alice = await mesh("alice")
    bob = await mesh("bob")
    suites: list[Suite] = []

    def watch(link: MemoryLink, frame: bytes) -> bool:
        packet = codec.parse(frame)
        if packet.kind is PacketKind.MESSAGE and link.owner is bob.transport:
            suites.append(packet.suite)
        return False

    mesh.hub.drop = watch
    await heard(bob.node, alice)
    message = await bob.node.send_text("alice", "hi from the next table")
    alice_id = alice.node.identity.node_id
    assert message.conversation == dm_conversation(alice_id)
    conversation = dm_conversation(bob.node.identity.node_id)
    await wait_for(lambda: _has(alice, conversation))
    assert suites and set(suites) == {Suite.RATCHET}
    # the sender's conversation is kept under the key, and resolves by id afterwards
    assert await bob.node.resolve_conversation(alice_id.hex()) == dm_conversation(alice_id)


async def _has(peer: Peer, conversation: str) -> bool:
    return any(m.text == "hi from the next table" for m in await peer.node.messages(conversation))


async def test_two_keys_announcing_one_name_are_ambiguous(mesh) -> None:  # type: ignore[no-untyped-def]
    first = await mesh("alice")
    second = await mesh("Alice")  # another key, the same name (case-folded)
    carol = await mesh("carol")
    await heard(carol.node, first, second)
    with pytest.raises(UsageError) as caught:
        await carol.node.send_text("alice", "which one?")
    text = str(caught.value)
    for p in (first, second):
        assert p.node.identity.node_id.hex()[:8] in text
    assert "~alice" in text and "~Alice" in text
    # naming one by its id prefix sends to that key only
    prefix = second.node.identity.node_id.hex()[:8]
    sent = await carol.node.send_text(prefix, "you")
    assert sent.conversation == dm_conversation(second.node.identity.node_id)
    assert await carol.node.messages(sent.conversation)


async def test_a_contact_wins_over_a_stranger_with_its_name(mesh) -> None:  # type: ignore[no-untyped-def]
    alice = await mesh("alice")
    bob = await mesh("bob")
    await bob.node.add_card(alice.node.identity.card("alice"))
    mallory = await mesh("alice")  # a stranger announcing the contact's name
    await heard(bob.node, alice, mallory)
    target = await bob.node.resolve("alice")
    assert target.destination == alice.node.identity.node_id
    assert target.contact is not None and target.peer is None
    # adding the stranger under that name is a key change, refused
    with pytest.raises(KeyChangeError):
        await bob.node.add_from_peer(mallory.node.identity.node_id.hex()[:8])


async def test_add_from_peer_makes_an_unverified_contact_with_its_prekey(mesh) -> None:  # type: ignore[no-untyped-def]
    alice = await mesh("alice")
    bob = await mesh("bob")
    await heard(bob.node, alice)
    result = await bob.node.add_from_peer("ALICE")
    contact = result.contact
    assert contact.node_id == alice.node.identity.node_id
    assert contact.sign_public == alice.node.identity.public.sign_public
    assert contact.trust is Trust.UNVERIFIED and contact.name == "alice"
    assert bob.node.engine.direct.can_seal(alice.node.identity.public)
    with pytest.raises(UsageError, match="already a contact"):
        await bob.node.add_from_peer("alice")


async def test_an_unknown_name_says_where_to_look(mesh) -> None:  # type: ignore[no-untyped-def]
    bob = await mesh("bob")
    with pytest.raises(UsageError, match=r"no contact is named .zed., and no neighbour announced"):
        await bob.node.send_text("zed", "anyone?")
