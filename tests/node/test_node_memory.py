"""Nodes with real stores, linked by the in-memory transport, on one event loop."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from meshchat.identity import Identity
from meshchat.node import Node
from meshchat.store import Store
from meshchat.store.records import Contact, MessageState, Trust
from meshchat.transports.memory import MemoryHub, MemoryTransport


@dataclass
class Peer:
    node: Node
    transport: MemoryTransport
    store: Store
    name: str


async def make_peer(tmp_path: Path, hub: MemoryHub, name: str) -> Peer:
    identity = Identity.generate()
    store = Store.open(tmp_path / f"{name}.db", key=os.urandom(32))
    transport = hub.transport(identity.public)
    node = Node(identity, name, store, [transport])
    await node.start()
    return Peer(node, transport, store, name)


async def befriend(a: Peer, b: Peer) -> None:
    for x, y in ((a, b), (b, a)):
        ident = y.node.identity.public
        await x.node.add_contact(
            Contact(ident.node_id, ident.sign_public, ident.box_public, y.name, Trust.UNVERIFIED, 0)
        )


@pytest.fixture
async def chain(tmp_path: Path) -> AsyncIterator[tuple[MemoryHub, list[Peer]]]:
    hub = MemoryHub()
    peers = [await make_peer(tmp_path, hub, n) for n in ("alice", "bob", "carol")]
    yield hub, peers
    for p in peers:
        await p.node.stop()
        p.store.close()


async def wait_for(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while not await predicate():
            await asyncio.sleep(0.02)


async def test_direct_message_crosses_a_relay_and_is_acked(chain) -> None:  # type: ignore[no-untyped-def]
    hub, (alice, bob, carol) = chain
    await befriend(alice, carol)
    hub.connect(alice.transport, bob.transport)
    hub.connect(bob.transport, carol.transport)
    sent = await alice.node.send_text("carol", "hello through bob")

    async def delivered() -> bool:
        msg = await alice.node.store.call(alice.store.get_message, sent.msg_id)
        return msg is not None and msg.state is MessageState.DELIVERED

    await wait_for(delivered)
    conv = await carol.node.resolve_conversation("alice")
    got = await carol.node.messages(conv)
    assert [m.text for m in got] == ["hello through bob"]
    assert got[0].sender_name == "alice"


async def test_message_queued_offline_is_delivered_when_a_path_appears(chain) -> None:  # type: ignore[no-untyped-def]
    hub, (alice, bob, carol) = chain
    await befriend(alice, carol)
    sent = await alice.node.send_text("carol", "store and forward")
    msg = await alice.node.store.call(alice.store.get_message, sent.msg_id)
    assert msg is not None and msg.state is MessageState.QUEUED
    # alice meets bob, then leaves; bob later meets carol and carries the message over.
    hub.connect(alice.transport, bob.transport)

    async def bob_carries() -> bool:
        return bob.node.engine.router.carried_count == 1

    await wait_for(bob_carries)
    hub.disconnect(alice.transport, bob.transport)
    hub.connect(bob.transport, carol.transport)

    async def carol_has() -> bool:
        conv = await carol.node.resolve_conversation("alice")
        return len(await carol.node.messages(conv)) == 1

    await wait_for(carol_has)
    hub.connect(alice.transport, bob.transport)

    async def delivered() -> bool:
        m = await alice.node.store.call(alice.store.get_message, sent.msg_id)
        return m is not None and m.state is MessageState.DELIVERED

    await wait_for(delivered)


async def test_public_channel_reaches_everyone_once(chain) -> None:  # type: ignore[no-untyped-def]
    hub, (alice, bob, carol) = chain
    hub.connect(alice.transport, bob.transport)
    hub.connect(bob.transport, carol.transport)
    hub.connect(alice.transport, carol.transport)
    await alice.node.send_text("#mesh", "hi all")

    async def both() -> bool:
        counts = [len(await p.node.messages("#mesh")) for p in (bob, carol)]
        return counts == [1, 1]

    await wait_for(both)
    await asyncio.sleep(0.2)
    assert [len(await p.node.messages("#mesh")) for p in (alice, bob, carol)] == [1, 1, 1]
