"""A deleted message stays deleted: through a restart of the node that deleted it, the
sender's retries (new packets carrying the same message id) and a relay offering the carried
packet again.

Alice - Relay - Bob, linked in memory. Every frame Bob sends is lost, so Alice never hears an
ack: she keeps retrying and the relay keeps carrying. Bob deletes the message, restarts, and
is offered it again; nothing of it may come back. (A sealed session also remembers which
messages it opened, so for a direct message the tombstone is the second guard; the group test
below has only the tombstone, and fails without it.)
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path

from meshchat.engine import dm_conversation
from meshchat.identity import Identity
from meshchat.node import Node
from meshchat.store import Store
from meshchat.transports.memory import MemoryHub, MemoryLink, MemoryTransport


@dataclass
class Peer:
    identity: Identity
    key: bytes
    path: Path
    name: str
    node: Node | None = None
    transport: MemoryTransport | None = None
    store: Store | None = None

    async def start(self, hub: MemoryHub) -> None:
        self.store = Store.open(self.path, key=self.key)
        self.transport = hub.transport(self.identity.public)
        self.node = Node(self.identity, self.name, self.store, [self.transport])
        await self.node.start()

    async def stop(self) -> None:
        assert self.node is not None and self.store is not None
        await self.node.stop()
        self.store.close()


def peer(tmp_path: Path, name: str) -> Peer:
    return Peer(Identity.generate(), os.urandom(32), tmp_path / f"{name}.db", name)


async def test_a_deleted_message_does_not_come_back(tmp_path: Path) -> None:
    hub = MemoryHub()
    alice, relay, bob = peer(tmp_path, "alice"), peer(tmp_path, "relay"), peer(tmp_path, "bob")
    for p in (alice, relay, bob):
        await p.start(hub)
    assert alice.node and bob.node and relay.transport and alice.transport and bob.transport
    await alice.node.add_card(await bob.node.card())
    await bob.node.add_card(await alice.node.card())
    frames_to_bob = 0

    def lose_bobs_frames(link: MemoryLink, frame: bytes) -> bool:
        nonlocal frames_to_bob
        if link.owner is bob.transport:
            return True
        if link.remote is not None and link.remote.owner is bob.transport:
            frames_to_bob += 1
        return False

    hub.drop = lose_bobs_frames
    hub.connect(alice.transport, relay.transport)
    hub.connect(relay.transport, bob.transport)
    sent = await alice.node.send_text("bob", "burn after reading")
    conversation = dm_conversation(alice.identity.node_id)

    async def bob_texts() -> list[str]:
        assert bob.node is not None
        return [m.text for m in await bob.node.history(conversation, 10)]

    async with asyncio.timeout(10):
        while await bob_texts() != ["burn after reading"]:
            await asyncio.sleep(0.02)
    assert await bob.node.delete(conversation, [sent.msg_id]) == 1
    assert await bob_texts() == []

    await bob.stop()
    await bob.start(hub)
    assert bob.node and bob.transport
    offered_before = frames_to_bob
    hub.connect(relay.transport, bob.transport)  # the relay offers what it carries for Bob

    async def alice_attempts() -> int:
        assert alice.node and alice.store
        entries = await alice.node.store.call(alice.store.pending_outbox, alice.node.clock())
        return max((e.attempts for e in entries if e.msg_id == sent.msg_id), default=0)

    # Alice's retries (a new packet each, the same message id) and the relay's re-offer reach
    # Bob's new node, which decrypts them.
    async with asyncio.timeout(30):
        while await alice_attempts() < 3 or frames_to_bob < offered_before + 2:
            await asyncio.sleep(0.1)
    await asyncio.sleep(0.5)
    assert await bob_texts() == []
    assert bob.node.counter_totals().get("accepted", 0) >= 1
    assert bob.store is not None
    assert await bob.node.store.call(bob.store.is_deleted, sent.msg_id)
    for p in (alice, relay, bob):
        await p.stop()


async def test_a_deleted_group_message_resent_by_its_sender_is_not_stored_again(
    tmp_path: Path,
) -> None:
    """A group member's resend is a new group message with the same id (a new place in the
    sender's chain): only the tombstone keeps it out."""
    hub = MemoryHub()
    alice, carol = peer(tmp_path, "alice"), peer(tmp_path, "carol")
    for p in (alice, carol):
        await p.start(hub)
    assert alice.node and carol.node and alice.transport and carol.transport
    await alice.node.add_card(await carol.node.card())
    await carol.node.add_card(await alice.node.card())
    hub.connect(alice.transport, carol.transport)
    group = await alice.node.create_group("crew", ["carol"])
    conversation = "grp:" + group.group_id.hex()
    async with asyncio.timeout(15):
        while not any(g.group_id == group.group_id and g.current for g in carol.node.groups()):
            await asyncio.sleep(0.02)
    await carol.node.send_text("+crew", "here")  # Alice gets Carol's sender key

    async def texts(p: Peer) -> list[str]:
        assert p.node is not None
        return [m.text for m in await p.node.history(conversation, 10)]

    async with asyncio.timeout(15):
        while await texts(alice) != ["here"]:
            await asyncio.sleep(0.02)
    sent = await alice.node.send_text("+crew", "burn after reading")
    async with asyncio.timeout(15):
        while "burn after reading" not in await texts(carol):
            await asyncio.sleep(0.02)
    assert await carol.node.delete(conversation, [sent.msg_id]) == 1

    # Carol asks the group for it (as a member that lacks it would); Alice resends it.
    node = carol.node

    async def ask() -> None:
        await node.effects.run(
            node.engine.send_history(group.group_id, (), (sent.msg_id,), node.clock())
        )

    await node.submit(ask)
    async with asyncio.timeout(15):
        while alice.node.counter_totals().get("history.resent", 0) < 1:
            await asyncio.sleep(0.02)
    await asyncio.sleep(0.5)
    assert await texts(carol) == ["here"]
    for p in (alice, carol):
        await p.stop()
