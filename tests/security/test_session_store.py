"""Sessions live in the (encrypted) store: a node restarted mid-conversation carries on."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from meshchat.identity import Identity
from meshchat.node import Node
from meshchat.store import Store
from meshchat.store.records import MessageState
from meshchat.transports.memory import MemoryHub, MemoryTransport
from meshchat.wire.packet import Suite


class Device:
    def __init__(self, tmp_path: Path, hub: MemoryHub, name: str) -> None:
        self.identity = Identity.generate()
        self.name = name
        self.path = tmp_path / f"{name}.db"
        self.key = os.urandom(32)
        self.hub = hub
        self.suites: list[Suite] = []

    async def start(self) -> None:
        self.store = Store.open(self.path, key=self.key)
        self.transport = MemoryTransport(self.hub, self.identity.public)
        self.node = Node(self.identity, self.name, self.store, [self.transport])
        await self.node.start()

    async def stop(self) -> None:
        await self.node.stop()
        self.store.close()


async def _wait(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while not await predicate():
            await asyncio.sleep(0.02)


async def _send(sender: Device, to: str, text: str) -> None:
    sent = await sender.node.send_text(to, text)

    async def delivered() -> bool:
        msg = await sender.node.store.call(sender.store.get_message, sent.msg_id)
        return msg is not None and msg.state is MessageState.DELIVERED

    await _wait(delivered)


async def test_sealed_conversation_survives_a_restart(tmp_path: Path) -> None:
    hub = MemoryHub()
    alice, bob = Device(tmp_path, hub, "alice"), Device(tmp_path, hub, "bob")
    await alice.start()
    await bob.start()
    try:
        await alice.node.add_card(await bob.node.card())
        await bob.node.add_card(await alice.node.card())
        hub.connect(alice.transport, bob.transport)
        await _send(alice, "bob", "one")
        await _send(bob, "alice", "two")
        record = bob.node.engine.direct.records[alice.identity.node_id]
        assert record.current is not None  # the sealed suite carried the conversation
        stored = bob.store.states("session")
        assert alice.identity.node_id in stored
        assert bob.store.get_state("prekeys", b"") is not None

        await bob.stop()
        await bob.start()
        restored = bob.node.engine.direct.records[alice.identity.node_id]
        assert restored.blob() == record.blob()
        hub.connect(alice.transport, bob.transport)
        await _send(alice, "bob", "three")
        await _send(bob, "alice", "four")
        conv = await bob.node.resolve_conversation("alice")
        assert [m.text for m in await bob.node.messages(conv)] == ["one", "two", "three", "four"]
        conv = await alice.node.resolve_conversation("bob")
        assert [m.text for m in await alice.node.messages(conv)] == ["one", "two", "three", "four"]
        assert bob.node.counters.get("rejected", 0) == 0
    finally:
        await alice.stop()
        await bob.stop()
