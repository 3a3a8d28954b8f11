"""``Node.delete`` and ``Node.history`` between running nodes linked in memory.

A message deleted while it waits in the outbox is never sent; deleting tells the faces which
conversation to re-read; deleting a whole conversation takes every message of it and only it.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from meshchat.identity import Identity
from meshchat.node import Node, NodeNotice
from meshchat.store import Store
from meshchat.transports.memory import MemoryHub, MemoryTransport


@dataclass
class Peer:
    node: Node
    transport: MemoryTransport
    store: Store
    name: str


async def start(tmp_path: Path, hub: MemoryHub, name: str) -> Peer:
    identity = Identity.generate()
    store = Store.open(tmp_path / f"{name}.db", key=os.urandom(32))
    transport = hub.transport(identity.public)
    node = Node(identity, name, store, [transport])
    await node.start()
    return Peer(node, transport, store, name)


async def wait_for(predicate: Callable[[], Awaitable[bool]], timeout: float = 15.0) -> None:
    async with asyncio.timeout(timeout):
        while not await predicate():
            await asyncio.sleep(0.02)


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[tuple[MemoryHub, Peer, Peer]]:
    hub = MemoryHub()
    alice = await start(tmp_path, hub, "alice")
    bob = await start(tmp_path, hub, "bob")
    for x, y in ((alice, bob), (bob, alice)):
        await x.node.add_card(await y.node.card())
    yield hub, alice, bob
    for peer in (alice, bob):
        await peer.node.stop()
        peer.store.close()


async def texts(peer: Peer, conversation: str) -> list[str]:
    return [m.text for m in await peer.node.history(conversation, 100)]


async def test_a_queued_message_deleted_before_any_link_is_never_sent(pair) -> None:  # type: ignore[no-untyped-def]
    hub, alice, bob = pair
    to_bob = await alice.node.resolve_conversation("bob")
    to_alice = await bob.node.resolve_conversation("alice")
    notices: list[NodeNotice] = []
    alice.node.subscribe(notices.append)

    doomed = await alice.node.send_text("bob", "regret this one")
    assert await texts(alice, to_bob) == ["regret this one"]
    assert await alice.node.delete(to_bob, [doomed.msg_id]) == 1
    assert await texts(alice, to_bob) == []
    (notice,) = [n for n in notices if n.kind == "history"]
    assert notice.conversation == to_bob

    # A later message goes out once a link is up (and would take the earlier unacked one
    # with it, were it still queued): when it has arrived, the deleted one would have too.
    await alice.node.send_text("bob", "keep this one")
    hub.connect(alice.transport, bob.transport)

    async def arrived() -> bool:
        return "keep this one" in await texts(bob, to_alice)

    await wait_for(arrived)
    await asyncio.sleep(0.3)  # any retry of the deleted one would be due by now
    assert await texts(bob, to_alice) == ["keep this one"]
    assert await texts(alice, to_bob) == ["keep this one"]


async def test_deleting_a_conversation_takes_all_of_it_and_nothing_else(pair) -> None:  # type: ignore[no-untyped-def]
    hub, alice, bob = pair
    hub.connect(alice.transport, bob.transport)
    to_alice = await bob.node.resolve_conversation("alice")
    for text in ("one", "two", "three"):
        await alice.node.send_text("bob", text)
    await alice.node.send_text("#mesh", "in the channel")

    async def all_in() -> bool:
        got = await texts(bob, to_alice)
        return len(got) == 3 and "in the channel" in await texts(bob, "#mesh")

    await wait_for(all_in)
    await bob.node.send_text("alice", "my own reply")
    assert await bob.node.delete(to_alice) == 4
    assert await texts(bob, to_alice) == []
    assert await texts(bob, "#mesh") == ["in the channel"]
    # An empty conversation deletes nothing, and says so.
    assert await bob.node.delete(to_alice) == 0
