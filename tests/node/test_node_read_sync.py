"""Read marks between two linked devices, real nodes on the in-memory medium: a conversation
read on one device is not unread on the other after they sync; a later message stays unread."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from meshchat.control import ControlServer, request
from meshchat.node import Node
from tests.node.test_node_sync import BOB, DM, T0, Make, link, mesh, until

__all__ = ["mesh"]  # the fixture, shared with test_node_sync


async def unread(node: Node) -> int:
    return {c.name: c.unread for c in await node.conversations()}.get(DM, 0)


async def synced_until(node: Node, other: Node, check: Callable[[], Awaitable[bool]]) -> None:
    """Start syncs from ``node`` to ``other`` (one at a time: a start while a session runs is
    ignored) until ``check`` holds."""

    async def done() -> bool:
        if await check():
            return True
        node.sync._met.clear()
        node.sync.met(other.identity.public)
        return False

    await until(done)


async def test_a_conversation_read_on_one_device_is_read_on_the_other(
    mesh: Make, tmp_path: Path
) -> None:
    phone, phone_store = await mesh("alice", history=5)
    laptop, _ = await mesh("alice-laptop")
    await link(phone, laptop)

    async def laptop_has_all() -> bool:
        return await unread(laptop) == 5

    await until(laptop_has_all)
    assert await unread(phone) == 5
    # read on the laptop through its control socket (``meshchat log --read``)
    server = ControlServer(laptop, tmp_path / "laptop.sock")
    await server.start()
    try:
        ask = {"op": "log", "conversation": DM, "read": True}
        reply = await asyncio.to_thread(request, tmp_path / "laptop.sock", ask)
    finally:
        await server.stop()
    assert reply["ok"] and len(reply["messages"]) == 5
    assert await unread(laptop) == 0

    async def read_on_phone() -> bool:
        return await unread(phone) == 0

    await synced_until(laptop, phone, read_on_phone)
    # a message that came later stays unread on both, after they sync again
    later = (99).to_bytes(16, "big")
    await phone.store.call(phone_store.add_incoming, DM, later, BOB, "bob", "later", T0 + 99, T0)
    assert await unread(phone) == 1

    async def later_on_laptop() -> bool:
        return len(await laptop.history(DM, 100)) == 6

    await synced_until(phone, laptop, later_on_laptop)
    assert await unread(laptop) == 1 and await unread(phone) == 1
    # read on the phone now: the laptop follows, and nothing moves back on the phone
    await phone.mark_read(DM)

    async def read_on_laptop() -> bool:
        return await unread(laptop) == 0

    await synced_until(phone, laptop, read_on_laptop)
    assert await unread(phone) == 0
