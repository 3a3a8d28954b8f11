"""Receipts between a meshchat node's bitchat gateway and bitchat peers on one virtual air
(bumble): our DM to carol becomes DELIVERED in the store (what ``meshchat log --json`` and the
UI show) when her phone acknowledges it; reading carol's conversation answers each of her
messages with one READ_RECEIPT; receipts from another peer, for unknown ids, or malformed,
change nothing and crash nothing.

The bitchat peers are built from the project's codec (:class:`BitchatCentral` with
:class:`BitchatMesh`), the other side of a GATT link from the gateway's peripheral, as in
``test_bitchat_gateway.py``.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path

import pytest

from meshchat.bridges._ratelimit import TokenBucket
from meshchat.bridges.bitchat.central import BitchatCentral
from meshchat.bridges.bitchat.dm import DELIVERED, READ_RECEIPT
from meshchat.bridges.bitchat.mesh import BitchatMesh, Decision, Private, Read, Send
from meshchat.bridges.bitchat.public import BitchatIdentity
from meshchat.bridges.bitchat.receipts import Receipt
from meshchat.bridges.marks import bitchat_dm_conversation
from meshchat.control import ControlServer, request
from meshchat.errors import BridgeReason
from meshchat.identity import Identity
from meshchat.node import Node, NodeNotice
from meshchat.node._bitchat import BitchatGateway
from meshchat.store import MessageState, Store
from meshchat.transports.ble.virtual import RangedLink
from meshchat.transports.memory import MemoryHub
from meshchat.tui.controller import ChatController
from tests.transports.ble.bleak_bumble import virtual_device


async def until(check: Callable[[], bool | Awaitable[bool]], timeout: float = 6.0) -> None:
    async with asyncio.timeout(timeout):
        while True:
            result = check()
            if result if isinstance(result, bool) else await result:
                return
            await asyncio.sleep(0.02)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class NoAcks(BitchatMesh):
    """A bitchat phone whose delivery acks are lost: it never answers a private message."""

    def receive(self, frame: bytes, now_ms: int) -> list[Decision]:
        decisions = super().receive(frame, now_ms)
        if any(isinstance(d, Private) for d in decisions):
            return [d for d in decisions if not isinstance(d, Send)]
        return decisions


@dataclass
class Phone:
    central: BitchatCentral
    got: list[Decision] = field(default_factory=list)

    @property
    def peer_id(self) -> bytes:
        return self.central.mesh.identity.peer_id

    def privates(self) -> list[str]:
        return [d.message.message_id for d in self.got if isinstance(d, Private)]

    def reads(self) -> list[str]:
        return [d.message_id for d in self.got if isinstance(d, Read)]

    async def send(self, to: bytes, payload: bytes) -> None:
        await self.central.send_frames(tuple(self.central.mesh.send_payload(to, payload, now_ms())))


@dataclass
class Gate:
    node: Node
    gateway: BitchatGateway
    air: RangedLink
    notices: list[NodeNotice] = field(default_factory=list)

    @property
    def peer_id(self) -> bytes:
        return self.gateway.identity.peer_id

    def counter(self, name: str) -> int:
        return self.gateway.counters.get(name, 0)

    async def phone(self, name: str, mesh_type: type[BitchatMesh] = BitchatMesh) -> Phone:
        device = virtual_device(self.air, name)
        await device.power_on()
        got: list[Decision] = []
        mesh = mesh_type(BitchatIdentity.generate(), name)
        phone = Phone(BitchatCentral(device, mesh, on_direct=got.append, clock_ms=now_ms), got)
        await phone.central.start()
        ours = self.gateway.gatt.mesh  # type: ignore[union-attr]
        await until(lambda: ours.peers.get(phone.peer_id) is not None, 15.0)
        await until(lambda: phone.central.mesh.peers.get(self.peer_id) is not None, 15.0)
        return phone

    async def state(self, conversation: str, msg_id: bytes) -> MessageState:
        shown = await self.node.messages(conversation)
        return next(m.state for m in shown if m.msg_id == msg_id)

    async def delivered(self, conversation: str, msg_id: bytes) -> bool:
        return await self.state(conversation, msg_id) is MessageState.DELIVERED


@pytest.fixture(params=[True], ids=["receipts-on"])
async def gate(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Gate]:
    identity = Identity.generate()
    store = Store.open(tmp_path / "alice.db", key=os.urandom(32))
    node = Node(identity, "alice", store, [MemoryHub().transport(identity.public)])
    await node.start()
    air = RangedLink()
    device = virtual_device(air, "alice-gw")
    gateway = BitchatGateway(node, device=device, read_receipts=request.param)
    await gateway.start()
    made = Gate(node, gateway, air)
    node.subscribe(made.notices.append)
    try:
        yield made
    finally:
        await gateway.stop()
        await node.stop()
        store.close()


async def test_our_dm_becomes_delivered_when_the_phone_acknowledges_it(
    gate: Gate, tmp_path: Path
) -> None:
    carol = await gate.phone("carol")
    conversation = bitchat_dm_conversation(carol.peer_id)
    sent = await gate.node.send_text(conversation, "alice to carol")
    assert sent.state is MessageState.SENT
    await until(lambda: len(carol.privates()) == 1)
    await until(lambda: gate.counter("dm_delivered") == 1)
    await until(lambda: gate.delivered(conversation, sent.msg_id), 3.0)
    states = [(n.msg_id, n.state) for n in gate.notices if n.kind == "state"]
    assert states == [(sent.msg_id, MessageState.DELIVERED)]  # the UI redraws it
    # what `meshchat log --json` reads through the control socket
    server = ControlServer(gate.node, tmp_path / "alice.sock")
    await server.start()
    try:
        ask = {"op": "log", "conversation": conversation}
        log = await asyncio.to_thread(request, tmp_path / "alice.sock", ask)
    finally:
        await server.stop()
    shown = [(m["text"], m["state"]) for m in log["messages"] if m["outgoing"]]
    assert shown == [("alice to carol", "delivered")]
    # a read receipt proves delivery too; the store has no "read" state, so it is counted
    await carol.send(gate.peer_id, Receipt(READ_RECEIPT, carol.privates()[0]).encode())
    await until(lambda: gate.counter("dm_read") == 1)
    assert await gate.state(conversation, sent.msg_id) is MessageState.DELIVERED
    assert gate.counter("dm_receipt_unmatched") == 0


async def test_reading_the_conversation_sends_one_read_receipt_per_message(gate: Gate) -> None:
    carol = await gate.phone("carol")
    conversation = bitchat_dm_conversation(carol.peer_id)
    sent_ids = []
    for text in ("one", "two"):
        message_id, frames = carol.central.mesh.send_private(gate.peer_id, text, now_ms())
        sent_ids.append(message_id)
        await carol.central.send_frames(tuple(frames))
    await until(lambda: gate.counter("dm_received") == 2)
    assert carol.reads() == []  # received is not read
    await gate.node.mark_read(conversation)
    await until(lambda: carol.reads() == sent_ids)
    await gate.node.mark_read(conversation)  # read again: nothing new is owed
    message_id, frames = carol.central.mesh.send_private(gate.peer_id, "three", now_ms())
    await carol.central.send_frames(tuple(frames))
    await until(lambda: gate.counter("dm_received") == 3)
    await gate.node.mark_read(conversation)
    await until(lambda: len(carol.reads()) == 3)
    await asyncio.sleep(0.3)
    assert carol.reads() == [*sent_ids, message_id]  # once each
    assert gate.counter("read_sent") == 3


async def test_receipts_from_another_peer_unknown_or_malformed_change_nothing(
    gate: Gate,
) -> None:
    """carol's phone never acknowledges; mallory, who has a session with the gateway and
    knows the id of our message to carol, says it was delivered and read: it stays SENT.
    Malformed receipts are refused by reason. carol's own receipt then marks it."""
    carol = await gate.phone("carol", NoAcks)
    mallory = await gate.phone("mallory")
    own, hello = mallory.central.mesh.send_private(gate.peer_id, "hi", now_ms())
    await mallory.central.send_frames(tuple(hello))  # handshake: mallory has a session
    await until(lambda: gate.counter("dm_received") == 1)
    conversation = bitchat_dm_conversation(carol.peer_id)
    sent = await gate.node.send_text(conversation, "for carol only")
    await until(lambda: len(carol.privates()) == 1)
    target = carol.privates()[0]
    refused = gate.gateway.gatt.refused  # type: ignore[union-attr]
    await mallory.send(gate.peer_id, Receipt(DELIVERED, target).encode())
    await mallory.send(gate.peer_id, Receipt(READ_RECEIPT, target).encode())
    await carol.send(gate.peer_id, Receipt(DELIVERED, "no-such-message").encode())
    await mallory.send(gate.peer_id, Receipt(DELIVERED, own).encode())  # her own, incoming
    await until(lambda: gate.counter("dm_receipt_unmatched") == 4)
    await mallory.send(gate.peer_id, bytes([DELIVERED]) + b"x" * 300)
    await mallory.send(gate.peer_id, bytes([READ_RECEIPT]) + b"\xff")
    await mallory.send(gate.peer_id, bytes([DELIVERED]))
    await until(lambda: refused[BridgeReason.OVERSIZED] == 1)
    await until(lambda: refused[BridgeReason.BAD_FIELD] == 2)
    assert await gate.state(conversation, sent.msg_id) is MessageState.SENT
    assert gate.counter("dm_delivered") == gate.counter("dm_read") == 0
    await carol.send(gate.peer_id, Receipt(DELIVERED, target).encode())
    await until(lambda: gate.counter("dm_delivered") == 1)
    assert await gate.state(conversation, sent.msg_id) is MessageState.DELIVERED


async def test_opening_the_conversation_in_the_ui_sends_read_receipts(gate: Gate) -> None:
    """The UI marks a conversation read when it opens it and when a message arrives while it
    is open: each of carol's messages gets its read receipt then, not before."""
    carol = await gate.phone("carol")
    conversation = bitchat_dm_conversation(carol.peer_id)
    first, frames = carol.central.mesh.send_private(gate.peer_id, "are you there?", now_ms())
    await carol.central.send_frames(tuple(frames))
    await until(lambda: gate.counter("dm_received") == 1)
    ctl = ChatController(gate.node, redraw=lambda: None, on_quit=lambda: None, tz=UTC)
    await ctl.start()
    try:
        await ctl.idle()
        assert carol.reads() == []  # listed, not opened
        await ctl.open(conversation)
        await until(lambda: carol.reads() == [first])
        second, frames = carol.central.mesh.send_private(gate.peer_id, "hello?", now_ms())
        await carol.central.send_frames(tuple(frames))
        await until(lambda: carol.reads() == [first, second])
    finally:
        await ctl.close()


async def test_read_receipts_over_the_rate_wait_for_the_next_read(gate: Gate) -> None:
    carol = await gate.phone("carol")
    conversation = bitchat_dm_conversation(carol.peer_id)
    ids = []
    for text in ("a", "b", "c"):
        message_id, frames = carol.central.mesh.send_private(gate.peer_id, text, now_ms())
        ids.append(message_id)
        await carol.central.send_frames(tuple(frames))
    await until(lambda: gate.counter("dm_received") == 3)
    gate.gateway.direct._read_out = TokenBucket(2, 3600.0)  # two, then none for an hour
    await gate.node.mark_read(conversation)
    await until(lambda: carol.reads() == ids[:2])
    assert gate.counter("read_limited") == 1
    gate.gateway.direct._read_out = TokenBucket(2, 3600.0)  # the hour has passed
    await gate.node.mark_read(conversation)
    await until(lambda: carol.reads() == ids)


@pytest.mark.parametrize("gate", [False], ids=["receipts-off"], indirect=True)
async def test_with_read_receipts_off_reading_sends_none(gate: Gate) -> None:
    carol = await gate.phone("carol")
    _, frames = carol.central.mesh.send_private(gate.peer_id, "secret", now_ms())
    await carol.central.send_frames(tuple(frames))
    await until(lambda: gate.counter("dm_received") == 1)
    await gate.node.mark_read(bitchat_dm_conversation(carol.peer_id))
    await asyncio.sleep(0.5)
    assert carol.reads() == [] and gate.counter("read_sent") == 0
    sent = await gate.node.send_text(bitchat_dm_conversation(carol.peer_id), "still acked")
    await until(lambda: gate.delivered(bitchat_dm_conversation(carol.peer_id), sent.msg_id))
