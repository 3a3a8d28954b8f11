"""History sync between two linked devices, real nodes on the in-memory medium: a new device
gets the history, later messages and deletions follow, and a deletion is told at once."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from meshchat.control import ControlServer, request
from meshchat.group._state import ControlSend
from meshchat.identity import Identity
from meshchat.node import Node, wall_clock_ms
from meshchat.store import Store
from meshchat.transports.memory import MemoryHub, MemoryTransport
from meshchat.wire.payloads import ControlPart

Make = Callable[..., Awaitable[tuple[Node, Store]]]
DM = "dm:" + "b0" * 16
BOB = b"\xb0" * 16
T0 = 1_700_000_000_000


@pytest.fixture
async def mesh(tmp_path: Path) -> AsyncIterator[Make]:
    hub = MemoryHub()
    nodes: list[tuple[Node, Store, MemoryTransport]] = []

    async def make(name: str, history: int = 0) -> tuple[Node, Store]:
        identity = Identity.generate()
        store = Store.open(tmp_path / f"{name}.db", key=os.urandom(32))
        for n in range(history):
            msg_id = n.to_bytes(16, "big")
            store.add_incoming(DM, msg_id, BOB, "bob", f"old {n}", T0 + n, T0 + n + 1)
        transport = hub.transport(identity.public)
        node = Node(identity, name, store, [transport])
        await node.start()
        for _, _, other in nodes:
            hub.connect(other, transport)
        nodes.append((node, store, transport))
        return node, store

    yield make
    for node, store, _ in nodes:
        await node.stop()
        store.close()


async def link(e: Node, n: Node) -> None:
    offer = await e.link_start()
    await n.link_join(offer.code, "laptop", timeout_s=10)
    shown = await n.link_wait("new", 10)
    assert shown is not None
    await e.link_confirm("existing", shown.string)
    await n.link_confirm("new", "y")
    final = await n.link_wait("new", 10, answered=True)
    assert final is not None and final.state == "linked"


async def until(check: Callable[[], Awaitable[bool]], timeout_s: float = 20.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not await check():
            await asyncio.sleep(0.05)


async def ids(node: Node) -> list[bytes]:
    return [m.msg_id for m in await node.history(DM, 10_000)]


async def test_a_linked_device_gets_the_history_and_deletions_follow(
    mesh: Make, tmp_path: Path
) -> None:
    e, _ = await mesh("alice", history=300)
    n, _ = await mesh("alice-laptop")
    # control parts to a group member who is away, unacked: they must not hold sync up
    away = Identity.generate().public
    for k in range(100):
        part = ControlPart(os.urandom(16), b"\x07" * 16, k % 24, 24, b"x")
        e.engine.groups.state.outgoing[part.msg_id] = ControlSend(away, part, 2**40)
    await link(e, n)

    async def synced() -> bool:
        return len(await ids(n)) == 300

    await until(synced)
    assert await ids(n) == await ids(e)
    status = n.sync.status()
    assert status and status[0]["device"] == e.identity.node_id.hex()
    assert status[0]["received"] == 300 and status[0]["left"] == 0
    # what `meshchat device sync` and `status` read through the control socket
    server = ControlServer(n, tmp_path / "n.sock")
    await server.start()
    try:
        reply = await asyncio.to_thread(request, tmp_path / "n.sock", {"op": "sync_status"})
        whole = await asyncio.to_thread(request, tmp_path / "n.sock", {"op": "status"})
    finally:
        await server.stop()
    assert reply["sync"][0]["received"] == 300 and reply["sync"][0]["done"]
    assert reply["sync"][0]["name"] == "alice" and whole["sync"] == reply["sync"]
    # a contact added on one device reaches the other with its card, and its engine knows it
    carol = Identity.generate()
    await e.add_card(carol.card("carol"))
    n.sync._met.clear()
    n.sync.met(e.identity.public)

    async def knows_carol() -> bool:
        return n.engine.direct.knows(carol.public.node_id)

    await until(knows_carol)
    on_n = {c.node_id: c for c in await n.contacts()}[carol.public.node_id]
    assert on_n.name == "carol" and on_n.card == carol.card("carol").to_text()
    # a deletion on the new device is told at once and erases the message on the other
    gone = (await ids(n))[10]
    assert await n.delete(DM, [gone]) == 1

    async def erased() -> bool:
        return gone not in await ids(e)

    await until(erased)
    assert e.counters.get("sync.erased", 0) >= 1
    # and meeting again (a new session) does not bring it back anywhere
    e.sync.driver.drop(n.identity.node_id)
    n.sync._met.clear()
    n.sync.met(e.identity.public)
    await asyncio.sleep(1.0)
    assert gone not in await ids(e) and gone not in await ids(n)
    assert len(await ids(e)) == len(await ids(n)) == 299
    assert wall_clock_ms() > T0
