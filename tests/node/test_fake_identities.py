"""A flood of announcements from made-up identities: every table keyed by a peer-chosen id
stays bounded, and memory stops growing once the bounds are reached."""

from __future__ import annotations

import gc
import os
import tracemalloc
from pathlib import Path

from test_channel_spam import _feed

from meshchat.identity import Identity
from meshchat.node import Node, NodeOptions
from meshchat.node._types import MAX_HEARD
from meshchat.router import RouterConfig
from meshchat.store import Store
from meshchat.transports.memory import MemoryHub
from meshchat.wire import codec
from meshchat.wire.packet import BROADCAST, PacketKind, Suite
from meshchat.wire.payloads import AnnounceBody

BOUND = 300
_BOUNDED = True


def _announces(count: int, now: int) -> list[bytes]:
    frames = []
    for i in range(count):
        fake = Identity.generate()
        body = AnnounceBody(fake.public.box_public, f"fake{i}", None, i % 2).encode()
        packet = codec.build(fake, PacketKind.ANNOUNCE, BROADCAST, Suite.SIGNED, body, now, 3)
        frames.append(codec.encode(packet))
    return frames


async def test_fake_identities_do_not_grow_the_node_without_bound(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "n.db", key=os.urandom(32), max_peers=BOUND)
    transport = MemoryHub().transport(Identity.generate().public)
    # the seen set is bounded on its own (65,536 ids by default): here small, to be full early
    router = RouterConfig(seen_capacity=BOUND)
    options = NodeOptions(router=router, max_announced=BOUND if _BOUNDED else 10**9)
    node = Node(Identity.generate(), "n", store, [transport], options=options)
    await node.start()
    try:
        now = node.clock()
        tracemalloc.start()
        await _feed(node, _announces(MAX_HEARD + 100, now))  # every bound reached
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        await _feed(node, _announces(4 * BOUND, now))
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        hood = node.neighbourhood
        assert len(node.announced_peers()) <= BOUND
        assert len(hood.gateways(10**12)) <= BOUND
        assert len(hood.local_nodes(0)) <= MAX_HEARD + len(node.links)
        # 1,200 more identities cost nothing that stays, as every table is full and evicts
        # (what is left is allocator slack: ~70 KB here; unbounded, ~280 KB: 230 B per id)
        assert grown < 150_000, grown
    finally:
        await node.stop()
        store.close()
