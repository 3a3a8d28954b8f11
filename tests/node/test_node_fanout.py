"""Fan-out with real nodes and stores: one message to an account of two devices, one of them
offline; the per-device rows survive a restart, which sends only the copies still owed."""

from __future__ import annotations

import os
from pathlib import Path

from meshchat.control import history_json
from meshchat.identity import Identity, PublicIdentity
from meshchat.node import Node
from meshchat.store import Store
from meshchat.store.records import Contact, MessageState, Trust
from meshchat.transports.memory import MemoryHub, MemoryTransport
from tests.engine.test_fanout import Accounts
from tests.node.test_node_memory import wait_for


class Device:
    def __init__(self, tmp_path: Path, hub: MemoryHub, name: str) -> None:
        self.name = name
        self.identity = Identity.generate()
        self.store = Store.open(tmp_path / f"{name}.db", key=os.urandom(32))
        self.transport: MemoryTransport = hub.transport(self.identity.public)
        self.node = Node(self.identity, name, self.store, [self.transport])

    async def start(self, bob: tuple[PublicIdentity, ...]) -> None:
        self.node.engine.directory = Accounts(self.identity.node_id, [bob])
        await self.node.start()

    async def restart(self, hub: MemoryHub, bob: tuple[PublicIdentity, ...]) -> None:
        await self.node.stop()
        self.transport = hub.transport(self.identity.public)
        self.node = Node(self.identity, self.name, self.store, [self.transport])
        await self.start(bob)


async def test_delivered_by_one_device_the_other_still_gets_its_copy_after_a_restart(
    tmp_path: Path,
) -> None:
    hub = MemoryHub()
    alice, b1, b2 = (Device(tmp_path, hub, n) for n in ("alice", "b1", "b2"))
    bob = (b1.identity.public, b2.identity.public)
    for device in (alice, b1, b2):
        await device.start(bob)
    for x in (alice, b1, b2):
        for y in (alice, b1, b2):
            if x is not y:
                i = y.identity.public
                contact = Contact(
                    i.node_id, i.sign_public, i.box_public, y.name, Trust.UNVERIFIED, 0
                )
                await x.node.add_contact(contact)
    try:
        hub.connect(alice.transport, b1.transport)  # b2 is offline
        sent = await alice.node.send_text("b1", "for every device of bob")
        msg_id = sent.msg_id

        async def delivered() -> bool:
            m = await alice.node.store.call(alice.store.get_message, msg_id)
            return m is not None and m.state is MessageState.DELIVERED

        await wait_for(delivered)
        rows = (await alice.node.deliveries([msg_id]))[msg_id]
        states = {d.device: d.state for d in rows}
        assert states[b1.identity.node_id] is MessageState.DELIVERED
        assert states[b2.identity.node_id] in (MessageState.QUEUED, MessageState.SENT)
        assert [e.msg_id for e in await alice.node.store.call(alice.store.pending_outbox, 0)] == [
            msg_id
        ]
        # log --json lists which devices have it
        shown = history_json(
            await alice.node.history(sent.conversation), await alice.node.deliveries([msg_id])
        )
        assert {(d["device"], d["state"]) for d in shown[-1]["devices"]} == {
            (b1.identity.node_id.hex(), "delivered"),
            (b2.identity.node_id.hex(), states[b2.identity.node_id].value),
        }

        # alice restarts; b2 comes online next to her: only b2's copy is sent again
        await alice.restart(hub, bob)
        hub.connect(alice.transport, b2.transport)
        assert [i.device for i in alice.node.engine.outbox.copies(msg_id)] == [b2.identity.node_id]

        async def b2_has() -> bool:
            conv = "dm:" + alice.identity.node_id.hex()
            return [m.msg_id for m in await b2.node.messages(conv)] == [msg_id]

        await wait_for(b2_has)

        async def all_done() -> bool:
            pending = await alice.node.store.call(alice.store.pending_outbox, 0)
            return pending == [] and not alice.node.engine.outbox.copies(msg_id)

        await wait_for(all_done)
        b1_has = await b1.node.messages("dm:" + alice.identity.node_id.hex())
        assert [m.msg_id for m in b1_has] == [msg_id]  # once, under the one id
        rows = (await alice.node.deliveries([msg_id]))[msg_id]
        assert {d.state for d in rows} == {MessageState.DELIVERED}
    finally:
        for device in (alice, b1, b2):
            await device.node.stop()
            device.store.close()


async def test_a_restart_owing_no_device_a_copy_ends_the_outbox_row(tmp_path: Path) -> None:
    """b1 acked; b2 was revoked before alice restarted: nothing is owed, the row ends, the
    message stays delivered (before, the row lingered, counted as queued, until it expired)."""
    hub = MemoryHub()
    alice, b1, b2 = (Device(tmp_path, hub, n) for n in ("alice", "b1", "b2"))
    bob = (b1.identity.public, b2.identity.public)
    for device in (alice, b1):
        await device.start(bob)
    for x, y in ((alice, b1), (b1, alice), (alice, b2)):
        i = y.identity.public
        contact = Contact(i.node_id, i.sign_public, i.box_public, y.name, Trust.UNVERIFIED, 0)
        await x.node.add_contact(contact)
    try:
        hub.connect(alice.transport, b1.transport)
        msg_id = (await alice.node.send_text("b1", "before the revocation")).msg_id

        async def delivered() -> bool:
            m = await alice.node.store.call(alice.store.get_message, msg_id)
            return m is not None and m.state is MessageState.DELIVERED

        await wait_for(delivered)
        assert [e.msg_id for e in alice.store.pending_outbox(0)] == [msg_id]  # b2 owed
        await alice.restart(hub, bob[:1])  # b2 is off bob's list now
        assert alice.store.pending_outbox(0) == []
        assert not alice.node.engine.outbox.copies(msg_id)
        message = alice.store.get_message(msg_id)
        assert message is not None and message.state is MessageState.DELIVERED
    finally:
        for device in (alice, b1, b2):
            await device.node.stop()
            device.store.close()
