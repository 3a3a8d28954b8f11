"""Files on my other devices: a file I send from one device shows on my other device, through
its carbon or history sync, and that device fetches it (from my device that holds it)."""

from __future__ import annotations

import os
from pathlib import Path

from meshchat.node._filestate import State
from meshchat.store.records import Trust
from meshchat.transports.memory import MemoryHub
from tests.node.test_node_files import Peer, befriend, make_peer, received, wait_for
from tests.node.test_node_sync import link


async def _done(peer: Peer) -> list[Path]:
    return await received(peer, State.DONE)


async def test_a_file_i_sent_reaches_my_other_device_which_fetches_it(
    tmp_path: Path,
) -> None:
    hub = MemoryHub()
    a1 = await make_peer(tmp_path, hub, "alice")
    bob = await make_peer(tmp_path, hub, "bob")
    a2 = await make_peer(tmp_path, hub, "alice-laptop")
    peers = (a1, bob, a2)
    try:
        await befriend(a1, bob, Trust.VERIFIED)
        hub.connect(a1.transport, bob.transport)
        before = os.urandom(80_000)
        first = tmp_path / "before-linking.bin"
        first.write_bytes(before)
        await a1.node.files.send("bob", first)

        async def bob_has_it() -> bool:
            return bool(await _done(bob))

        await wait_for(bob_has_it)
        # the laptop is linked now: the announcement reaches it by history sync
        hub.connect(a1.transport, a2.transport)
        await link(a1.node, a2.node)

        async def synced() -> bool:
            return bool(await _done(a2))

        await wait_for(synced, timeout=20)
        (path,) = await _done(a2)
        assert path.read_bytes() == before
        # a file sent after linking reaches it too (its carbon, or the next sync)
        after = os.urandom(50_000)
        second = tmp_path / "after-linking.bin"
        second.write_bytes(after)
        await a1.node.files.send("bob", second)

        async def both() -> bool:
            return len(await _done(a2)) == 2

        await wait_for(both, timeout=20)
        assert sorted(p.read_bytes() for p in await _done(a2)) == sorted([before, after])
        # it pulled from my device that holds it, not from bob
        assert a1.node.files.seeder.served > 0 and bob.node.files.seeder.served == 0
    finally:
        for p in peers:
            await p.node.stop()
            p.store.close()
