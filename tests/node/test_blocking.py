"""Blocking: a blocked key's messages are dropped before the store, still relayed for others,
and the block outlives a restart. Three real nodes in a chain on the in-memory medium:
alice - bob - carol; bob blocks alice."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from meshchat.identity import Identity
from meshchat.node import Node, NodeNotice
from meshchat.store import Store
from meshchat.transports.memory import MemoryHub, MemoryTransport


async def until(check, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.02)


async def texts(node: Node, conversation: str) -> list[str]:
    return [m.text for m in await node.messages(conversation)]


async def test_a_blocked_key_is_dropped_before_the_store_and_still_relayed(
    tmp_path: Path,
) -> None:
    hub = MemoryHub()
    keys = {n: os.urandom(32) for n in ("alice", "bob", "carol")}
    ids = {n: Identity.generate() for n in keys}
    stores: dict[str, Store] = {}
    transports: dict[str, MemoryTransport] = {}
    nodes: dict[str, Node] = {}

    async def start(name: str) -> Node:
        stores[name] = Store.open(tmp_path / f"{name}.db", key=keys[name])
        transports[name] = hub.transport(ids[name].public)
        nodes[name] = Node(ids[name], name, stores[name], [transports[name]])
        await nodes[name].start()
        return nodes[name]

    alice, bob, carol = [await start(n) for n in ("alice", "bob", "carol")]
    hub.connect(transports["alice"], transports["bob"])
    hub.connect(transports["bob"], transports["carol"])
    alice_id = alice.identity.node_id

    async def bob_heard_alice() -> bool:
        return alice_id in bob.announced_peers() and bob.identity.node_id in alice.announced_peers()

    await until(bob_heard_alice)
    shown: list[NodeNotice] = []
    bob.subscribe(lambda n: shown.append(n) if n.message is not None else None)
    key, name = await bob.block("alice")
    assert key == alice.identity.public.sign_public and name == "~alice"

    await alice.send_text("#mesh", "blocked words on the channel")
    dm = await alice.send_text("bob", "blocked words in private")

    async def carol_has_it() -> bool:
        return "blocked words on the channel" in await texts(carol, "#mesh")

    await until(carol_has_it)  # relayed through bob all the same

    async def acked() -> bool:  # bob acked the direct message (no retries give the block away)
        return any(m.state.value == "delivered" for m in await alice.messages(dm.conversation))

    await until(acked)
    assert await texts(bob, "#mesh") == []
    assert await texts(bob, "dm:" + alice_id.hex()) == []
    assert [n for n in shown if n.message is not None and not n.message.outgoing] == []
    assert bob.counter_totals().get("drop.blocked", 0) == 2

    # the block outlives a restart
    await bob.stop()
    stores["bob"].close()
    bob = await start("bob")
    hub.connect(transports["alice"], transports["bob"])
    assert bob.blocked() == {alice.identity.public.sign_public: "~alice"}
    await alice.send_text("#mesh", "still blocked after the restart")
    await until(lambda: _count(bob, "drop.blocked"))
    assert await texts(bob, "#mesh") == []

    # unblocked: the next message is stored
    await bob.unblock("alice")
    await alice.send_text("#mesh", "heard again")

    async def heard_again() -> bool:
        return await texts(bob, "#mesh") == ["heard again"]

    await until(heard_again)
    for node in (alice, bob, carol):
        await node.stop()
    for store in stores.values():
        store.close()


async def _count(node: Node, name: str) -> bool:
    return node.counter_totals().get(name, 0) >= 1
