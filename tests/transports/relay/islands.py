"""Islands of in-process nodes joined by an internet transport, for relay and DHT tests.

Each island is a few :class:`Node` objects with real stores, linked inside the island by the
in-memory transport; a gateway also runs an internet transport given by the test.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from meshchat.identity import Identity
from meshchat.node import Node, NodeOptions
from meshchat.router.flood import RouterConfig
from meshchat.store import Store
from meshchat.store.records import Contact, MessageState, Trust
from meshchat.transports.base import Transport
from meshchat.transports.memory import MemoryHub, MemoryTransport

STORE_KEY = bytes(range(32))


def open_store(path: Path) -> Store:
    """Open a test store (with a fixed store key where the store takes one)."""
    try:
        return Store.open(path, key=STORE_KEY)  # type: ignore[call-arg,unused-ignore]
    except TypeError:
        return Store.open(path)  # type: ignore[call-arg,unused-ignore]


@dataclass
class Member:
    name: str
    identity: Identity
    store_path: Path
    node: Node
    store: Store
    mem: MemoryTransport
    extra: list[Transport] = field(default_factory=list)

    @property
    def node_id(self) -> bytes:
        return self.identity.node_id


def node_options() -> NodeOptions:
    return NodeOptions(router=RouterConfig(link_rate=100_000, link_burst=200_000))


async def start_member(
    tmp_path: Path,
    hub: MemoryHub,
    name: str,
    extra: Callable[[Identity], list[Transport]] | None = None,
    identity: Identity | None = None,
) -> Member:
    identity = identity or Identity.generate()
    store_path = tmp_path / f"{name}.db"
    store = open_store(store_path)
    mem = hub.transport(identity.public)
    transports = extra(identity) if extra else []
    node = Node(identity, name, store, [mem, *transports], options=node_options())
    await node.start()
    return Member(name, identity, store_path, node, store, mem, transports)


async def stop_member(member: Member) -> None:
    await member.node.stop()
    member.store.close()


async def befriend(a: Member, b: Member, *, sealed: bool = True) -> None:
    """Make two members contacts: from their current cards (with signed prekeys, so direct
    messages are sealed and forward secret), or from bare keys (``sealed=False``: BOX)."""
    for x, y in ((a, b), (b, a)):
        if sealed:
            await x.node.add_card(await y.node.card(), y.name)
            continue
        ident = y.identity.public
        await x.node.add_contact(
            Contact(ident.node_id, ident.sign_public, ident.box_public, y.name, Trust.UNVERIFIED, 0)
        )


async def wait_for(predicate: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not await predicate():
            await asyncio.sleep(0.02)


async def state_of(member: Member, msg_id: bytes) -> MessageState | None:
    msg = await member.node.store.call(member.store.get_message, msg_id)
    return msg.state if msg is not None else None


async def texts(member: Member, other: Member) -> list[str]:
    conv = await member.node.resolve_conversation(other.node_id.hex())
    return [m.text for m in await member.node.messages(conv)]


async def delivered(member: Member, msg_id: bytes, timeout: float = 10.0) -> None:
    async def check() -> bool:
        return await state_of(member, msg_id) is MessageState.DELIVERED

    await wait_for(check, timeout)
