"""#mesh spam cannot fill the disk: a channel's incoming history keeps to its budget per
channel and per sender, noisiest and oldest first, while quiet senders keep their messages."""

from __future__ import annotations

import os
from pathlib import Path

from test_node_memory import wait_for

from meshchat.crypto.channel import ChannelKey
from meshchat.identity import Identity
from meshchat.node import Node, NodeOptions
from meshchat.store import Store
from meshchat.store.history import HistoryBudget
from meshchat.transports.memory import MemoryHub
from meshchat.wire import codec
from meshchat.wire.packet import Destination, PacketKind, Suite
from meshchat.wire.payloads import MessageBody

BUDGET = HistoryBudget(channel_bytes=256 * 1024, sender_bytes=96 * 1024)
MESH = Destination.channel(ChannelKey.public().channel_id)


def _post(who: Identity, text: str, now: int) -> bytes:
    body = MessageBody(os.urandom(16), text).encode()
    return codec.encode(codec.build(who, PacketKind.MESSAGE, MESH, Suite.SIGNED, body, now, 3))


def _db_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


async def _feed(node: Node, frames: list[bytes]) -> None:
    """Hand frames to the node in chunks it can queue, each chunk once accepted."""
    for start in range(0, len(frames), 100):
        want = node.engine.router.counters.get("accepted", 0) + len(frames[start : start + 100])
        for frame in frames[start : start + 100]:
            node.inject(frame)

        async def taken(want: int = want) -> bool:
            return node.engine.router.counters.get("accepted", 0) >= want

        await wait_for(taken, 30.0)


async def test_four_spammers_keep_the_database_within_the_channel_budget(tmp_path: Path) -> None:
    path = tmp_path / "bob.db"
    store = Store.open(path, key=os.urandom(32))
    transport = MemoryHub().transport(Identity.generate().public)
    node = Node(Identity.generate(), "bob", store, [transport], options=NodeOptions(history=BUDGET))
    await node.start()
    try:
        alice = Identity.generate()
        now = node.clock()
        await _feed(node, [_post(alice, "hello from a quiet sender", now)])
        empty = _db_bytes(path)
        spammers = [Identity.generate() for _ in range(4)]
        junk = "x" * 900
        frames = [_post(spammers[i % 4], f"{i} {junk}", now) for i in range(2400)]
        await _feed(node, frames)

        async def stored() -> bool:
            history = await node.messages("#mesh", 100_000)
            return any(m.text.startswith("2399 ") for m in history)

        await wait_for(stored)
        history = await node.messages("#mesh", 100_000)
        texts = [m.text for m in history]
        assert "hello from a quiet sender" in texts  # the quiet sender keeps its message
        assert 100 < len(history) < 400  # about 256 KiB of ~1.1 KB rows
        by_sender: dict[bytes, int] = {}
        for m in history:
            by_sender[m.sender] = by_sender.get(m.sender, 0) + 1
        assert max(by_sender.values()) * 1000 <= BUDGET.sender_bytes
    finally:
        await node.stop()
        store.close()
    # 2.4 MB of spam went in; the file keeps to the budget (plus the empty store and slack)
    grown = _db_bytes(path) - empty
    assert grown < 2 * BUDGET.channel_bytes, grown
