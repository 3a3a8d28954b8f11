"""Store-and-forward under junk, on nodes with real stores: a message a relay carries for an
absent node still reaches it after a stranger sent junk packets to made-up node ids, dated 9
minutes ahead (the attack that lost it before)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from test_channel_spam import _feed
from test_node_memory import befriend, make_peer, wait_for

from meshchat.identity import Identity
from meshchat.store.records import MessageState
from meshchat.transports.memory import MemoryHub
from meshchat.wire import codec
from meshchat.wire.packet import Destination, PacketKind, Suite

NINE_MINUTES = 9 * 60 * 1000


@pytest.mark.parametrize("junk_count", [70, 5100])
async def test_a_carried_message_survives_junk_and_is_delivered(
    tmp_path: Path, junk_count: int
) -> None:
    """70 junk packets (more than one re-offer batch of 64) crowded the message out of what a
    new neighbour is offered; 5,100 (more than the 5,000 carried) evicted it."""
    hub = MemoryHub()
    alice, bob, carol = [await make_peer(tmp_path, hub, n) for n in ("alice", "bob", "carol")]
    try:
        await befriend(alice, carol)
        sent = await alice.node.send_text("carol", "carried for you")
        hub.connect(alice.transport, bob.transport)

        async def bob_carries() -> bool:
            return bob.node.engine.router.carried_count == 1

        await wait_for(bob_carries)
        hub.disconnect(alice.transport, bob.transport)  # alice leaves: only bob has it
        mallory = Identity.generate()
        now = bob.node.clock()
        junk = [
            codec.encode(
                codec.build(
                    mallory,
                    PacketKind.MESSAGE,
                    Destination.node(os.urandom(16)),
                    Suite.BOX,
                    os.urandom(64),
                    now + NINE_MINUTES,
                    6,
                )
            )
            for _ in range(junk_count)
        ]
        await _feed(bob.node, junk)
        started = time.monotonic()
        hub.connect(bob.transport, carol.transport)

        async def carol_has() -> bool:
            conv = await carol.node.resolve_conversation("alice")
            return len(await carol.node.messages(conv)) == 1

        await wait_for(carol_has)
        latency = time.monotonic() - started
        print(f"delivered {latency:.2f} s after carol appeared")
        hub.connect(alice.transport, bob.transport)

        async def delivered() -> bool:
            m = await alice.node.store.call(alice.store.get_message, sent.msg_id)
            return m is not None and m.state is MessageState.DELIVERED

        await wait_for(delivered)
    finally:
        for p in (alice, bob, carol):
            await p.node.stop()
            p.store.close()
