"""Nodes linked over Bluetooth LE: bumble's virtual controllers, real GATT, real fragmentation.

Three radios in a line (A and C out of range of each other), so every message from A to C is
relayed by B over two GATT links; then a mixed mesh where A-B is BLE and B-C is a LAN (TCP)
link.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from meshchat.identity import Identity
from meshchat.node import Node
from meshchat.store import Store
from meshchat.store.records import Contact, MessageState, Trust
from meshchat.transports.base import Transport
from meshchat.transports.ble import BleTransport
from meshchat.transports.ble.virtual import RangedLink, fast_options, make_virtual_backends
from meshchat.transports.lan import LanTransport
from meshchat.wire.payloads import MAX_TEXT_BYTES


async def wait_for(predicate: Callable[[], Awaitable[bool]], timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not await predicate():
            await asyncio.sleep(0.05)


class Mesh:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.nodes: dict[str, Node] = {}
        self.stores: list[Store] = []

    async def add(self, name: str, identity: Identity, transports: list[Transport]) -> Node:
        store = Store.open(self.tmp_path / f"{name}.db", key=os.urandom(32))
        self.stores.append(store)
        node = Node(identity, name, store, transports)
        await node.start()
        self.nodes[name] = node
        return node

    async def befriend(self, a: str, b: str) -> None:
        for x, y in ((a, b), (b, a)):
            ident = self.nodes[y].identity.public
            await self.nodes[x].add_contact(
                Contact(ident.node_id, ident.sign_public, ident.box_public, y, Trust.UNVERIFIED, 0)
            )

    async def close(self) -> None:
        for node in self.nodes.values():
            await node.stop()
        for store in self.stores:
            store.close()

    async def delivered(self, sender: str, msg_id: bytes) -> bool:
        node = self.nodes[sender]
        message = await node.store.call(node.store.store.get_message, msg_id)
        return message is not None and message.state is MessageState.DELIVERED

    async def texts(self, receiver: str, sender: str) -> list[str]:
        node = self.nodes[receiver]
        conversation = await node.resolve_conversation(sender)
        return [m.text for m in await node.messages(conversation)]


def ble_line(
    mtu: int, rate_limit: float | None = None
) -> tuple[RangedLink, list[BleTransport], list[Identity]]:
    air = RangedLink()
    backends = make_virtual_backends(3, link=air, mtu=mtu, rate_limit=rate_limit)
    air.set_in_range(backends[0], backends[2], False)
    identities = [Identity.generate() for _ in range(3)]
    transports = [
        BleTransport(identity, backend, options=fast_options())
        for identity, backend in zip(identities, backends, strict=True)
    ]
    return air, transports, identities


@pytest.mark.parametrize("mtu", [23, 247, 517])
async def test_direct_message_crosses_two_gatt_links_and_is_acked(tmp_path: Path, mtu: int) -> None:
    _, transports, identities = ble_line(mtu)
    mesh = Mesh(tmp_path)
    try:
        for name, identity, transport in zip("abc", identities, transports, strict=True):
            await mesh.add(name, identity, [transport])
        await mesh.befriend("a", "c")

        async def line_formed() -> bool:
            return (
                len(mesh.nodes["b"].links) == 2
                and len(mesh.nodes["a"].links) == 1
                and len(mesh.nodes["c"].links) == 1
            )

        await wait_for(line_formed)
        # A and C never see each other: A's only neighbour is B.
        assert [i.node_id for i in mesh.nodes["a"].neighbours()] == [identities[1].node_id]
        # The longest text makes a packet of many fragments at a small MTU.
        text = "x" * MAX_TEXT_BYTES
        sent = await mesh.nodes["a"].send_text("c", text)
        await wait_for(lambda: mesh.delivered("a", sent.msg_id))
        assert await mesh.texts("c", "a") == [text]
    finally:
        await mesh.close()


async def test_link_dropped_mid_frame_then_message_arrives_by_retry(tmp_path: Path) -> None:
    # 20 kB/s per connection, about what a crowded real radio gives: a 1.1 kB packet in
    # 24-byte fragments takes ~70 ms per hop, so the cut lands mid-frame.
    air, transports, identities = ble_line(23, rate_limit=20_000)
    mesh = Mesh(tmp_path)
    try:
        for name, identity, transport in zip("abc", identities, transports, strict=True):
            await mesh.add(name, identity, [transport])
        await mesh.befriend("a", "c")

        async def line_formed() -> bool:
            return len(mesh.nodes["b"].links) == 2

        await wait_for(line_formed)
        backends = [t.backend for t in transports]
        sent = await mesh.nodes["a"].send_text("c", "y" * MAX_TEXT_BYTES)
        # Cut A-B while the fragments are in flight, and bring it back a moment later.
        await asyncio.sleep(0.02)
        air.set_in_range(backends[0], backends[1], False)
        await asyncio.sleep(0.5)
        assert await mesh.texts("c", "a") == []  # no partial frame became a message
        assert mesh.nodes["b"].engine.router.carried_count == 0  # B never got the whole packet
        air.set_in_range(backends[0], backends[1], True)
        await wait_for(lambda: mesh.delivered("a", sent.msg_id), timeout=40)
        assert await mesh.texts("c", "a") == ["y" * MAX_TEXT_BYTES]
    finally:
        await mesh.close()


async def test_mixed_mesh_ble_then_lan(tmp_path: Path) -> None:
    air = RangedLink()
    backend_a, backend_b = make_virtual_backends(2, link=air, mtu=247)
    ids = {n: Identity.generate() for n in "abc"}
    lan_b = LanTransport(ids["b"], host="127.0.0.1", discovery=False)
    mesh = Mesh(tmp_path)
    try:
        await mesh.add("a", ids["a"], [BleTransport(ids["a"], backend_a, options=fast_options())])
        await mesh.add(
            "b", ids["b"], [BleTransport(ids["b"], backend_b, options=fast_options()), lan_b]
        )
        assert lan_b.listening_port is not None
        lan_c = LanTransport(
            ids["c"],
            host="127.0.0.1",
            discovery=False,
            static_peers=[("127.0.0.1", lan_b.listening_port)],
        )
        await mesh.add("c", ids["c"], [lan_c])
        await mesh.befriend("a", "c")

        async def formed() -> bool:
            kinds = sorted(link.transport for link in mesh.nodes["b"].links.values())
            return kinds == ["ble", "lan"]

        await wait_for(formed)
        sent = await mesh.nodes["a"].send_text("c", "over the air, then the wire")
        await wait_for(lambda: mesh.delivered("a", sent.msg_id))
        assert await mesh.texts("c", "a") == ["over the air, then the wire"]
        reply = await mesh.nodes["c"].send_text("a", "and back")
        await wait_for(lambda: mesh.delivered("c", reply.msg_id))
    finally:
        await mesh.close()
