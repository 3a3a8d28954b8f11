"""Private groups between running nodes: create, talk, restart, remove; nothing readable on disk."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from meshchat.group.book import group_conversation
from meshchat.identity import Identity
from meshchat.node import Node
from meshchat.store import Store
from meshchat.transports.memory import MemoryHub, MemoryTransport

NAMES = ("Alicewright", "Bobsworth", "Carolinda")


@dataclass
class Peer:
    node: Node
    transport: MemoryTransport
    store: Store
    path: Path
    key: bytes
    name: str


async def start(tmp_path: Path, hub: MemoryHub, name: str, identity: Identity, key: bytes) -> Peer:
    path = tmp_path / f"{name}.db"
    store = Store.open(path, key=key)
    transport = hub.transport(identity.public)
    node = Node(identity, name, store, [transport])
    await node.start()
    return Peer(node, transport, store, path, key, name)


async def wait_for(predicate: Callable[[], Awaitable[bool]], timeout: float = 15.0) -> None:
    async with asyncio.timeout(timeout):
        while not await predicate():
            await asyncio.sleep(0.02)


async def texts(peer: Peer, group_id: bytes) -> list[str]:
    return [m.text for m in await peer.node.messages(group_conversation(group_id))]


@pytest.fixture
async def trio(tmp_path: Path) -> AsyncIterator[tuple[MemoryHub, list[Peer]]]:
    hub = MemoryHub()
    peers = [await start(tmp_path, hub, n, Identity.generate(), os.urandom(32)) for n in NAMES]
    yield hub, peers
    for p in peers:
        await p.node.stop()
        p.store.close()


def raw(path: Path) -> bytes:
    return b"".join(
        p.read_bytes()
        for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm"))
        if p.exists()
    )


async def test_group_lifecycle_between_running_nodes(trio, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    hub, (alice, bob, carol) = trio
    for other in (bob, carol):
        await alice.node.add_card(await other.node.card())
        await other.node.add_card(await alice.node.card())
    hub.connect(alice.transport, bob.transport)
    hub.connect(bob.transport, carol.transport)

    group = await alice.node.create_group("crew", [NAMES[1], NAMES[2]])
    gid = group.group_id

    async def everyone_in() -> bool:
        return all(
            (g := p.node.engine.groups.groups.get(gid)) is not None and g.current is not None
            for p in (bob, carol)
        )

    await wait_for(everyone_in)
    assert [g.name for g in bob.node.groups()] == ["crew"]
    await carol.node.send_text("+crew", "Periwinkle kazoo rehearsal at nine")

    async def both_got_it() -> bool:
        got = [await texts(p, gid) for p in (alice, bob)]
        return all("Periwinkle kazoo rehearsal at nine" in t for t in got)

    await wait_for(both_got_it)

    # bob restarts from his store: the group and its keys come back.
    await bob.node.stop()
    bob.store.close()
    hub.disconnect(alice.transport, bob.transport)
    hub.disconnect(bob.transport, carol.transport)
    bob = await start(tmp_path, hub, NAMES[1], bob.node.identity, bob.key)
    trio[1][1] = bob  # the fixture stops the new node
    hub.connect(alice.transport, bob.transport)
    hub.connect(bob.transport, carol.transport)
    await alice.node.send_text("+crew", "Marmalade submarine surfaced")

    async def bob_after_restart() -> bool:
        return "Marmalade submarine surfaced" in await texts(bob, gid)

    await wait_for(bob_after_restart)

    # carol is removed: she relays what follows and reads none of it.
    await alice.node.change_group("+crew", remove=[NAMES[2]])

    async def carol_out() -> bool:
        g = carol.node.engine.groups.groups[gid]
        b = bob.node.engine.groups.groups[gid]
        return g.current is None and b.roster.epoch == 2 and len(b.current.peers) == 1  # type: ignore[union-attr]

    await wait_for(carol_out)
    hub.connect(alice.transport, carol.transport)  # carol now also hears alice directly
    await bob.node.send_text("+crew", "Secret after carol left: walrus accordion")

    async def alice_got_it() -> bool:
        return "Secret after carol left: walrus accordion" in await texts(alice, gid)

    await wait_for(alice_got_it)
    await asyncio.sleep(0.3)
    assert "Secret after carol left: walrus accordion" not in await texts(carol, gid)
    with pytest.raises(Exception, match="no longer a member"):
        await carol.node.send_text("+crew", "can I still post?")

    # No store holds any group text or the group's name in a readable form.
    for p in (alice, bob, carol):
        data = raw(p.path)
        for text in (b"Periwinkle kazoo", b"Marmalade submarine", b"walrus accordion", b"crew"):
            assert text not in data, (p.name, text)
