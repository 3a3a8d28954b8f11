"""A #mesh packet replayed to a node after it restarted is a duplicate: shown once, and not
flooded again (the router's dedupe horizon is kept in the store across restarts)."""

from __future__ import annotations

import os
from pathlib import Path

from test_node_memory import make_peer, wait_for

from meshchat.crypto.channel import ChannelKey
from meshchat.identity import Identity
from meshchat.node import Node
from meshchat.store import Store
from meshchat.transports.memory import MemoryHub
from meshchat.wire import codec
from meshchat.wire.packet import Destination, PacketKind, Suite
from meshchat.wire.payloads import MessageBody


async def test_replay_after_restart_is_not_reflooded(tmp_path: Path) -> None:
    hub = MemoryHub()
    carol = await make_peer(tmp_path, hub, "carol")
    identity, key = Identity.generate(), os.urandom(32)

    async def start_bob() -> tuple[Node, Store]:
        store = Store.open(tmp_path / "bob.db", key=key)
        transport = hub.transport(identity.public)
        node = Node(identity, "bob", store, [transport])
        await node.start()
        hub.connect(transport, carol.transport)
        return node, store

    mallory = Identity.generate()
    body = MessageBody(os.urandom(16), "hello #mesh").encode()
    packet = codec.build(
        mallory,
        PacketKind.MESSAGE,
        Destination.channel(ChannelKey.public().channel_id),
        Suite.SIGNED,
        body,
        carol.node.clock(),
        6,
    )
    frame = codec.encode(packet)
    bob, bob_store = await start_bob()
    try:
        bob.inject(frame)

        async def carol_got_it() -> bool:
            return len(await carol.node.messages("#mesh")) == 1

        await wait_for(carol_got_it)
        assert bob.engine.router.counters.get("relay.sent", 0) == 1
    finally:
        await bob.stop()
        bob_store.close()
    duplicates = carol.node.engine.router.counters.get("drop.duplicate", 0)

    bob, bob_store = await start_bob()
    try:
        bob.inject(frame)

        async def handled() -> bool:
            return bob.engine.router.counters.get("drop.duplicate", 0) == 1

        await wait_for(handled)
        assert bob.engine.router.counters.get("relay.sent", 0) == 0
        assert len(await bob.messages("#mesh")) == 1
        # carol never heard the replay again (a re-flood would be a duplicate there)
        assert carol.node.engine.router.counters.get("drop.duplicate", 0) == duplicates
    finally:
        await bob.stop()
        bob_store.close()
        await carol.node.stop()
        carol.store.close()
