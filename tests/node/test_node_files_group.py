"""Group files pulled from every member that holds them: the sender may go away once one member
has the file, and a member serving forged chunks only wastes bandwidth."""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path

import pytest

from meshchat.files.wire import Piece
from meshchat.node._filestate import State
from meshchat.store.records import Trust
from meshchat.transports.memory import MemoryHub
from tests.node.test_node_files import Peer, befriend, make_peer, received, wait_for


async def _group(tmp_path: Path, hub: MemoryHub, trust: dict[str, Trust]) -> list[Peer]:
    """ann and a group of the others (each linked to every other), ann's contacts with the
    trust given (verified: auto-accepts ann's files; unverified: asks first)."""
    peers = [await make_peer(tmp_path, hub, n) for n in ("ann", *trust)]
    ann = peers[0]
    for other in peers[1:]:
        await befriend(ann, other, trust[other.name])
    for i, a in enumerate(peers):
        for b in peers[i + 1 :]:
            hub.connect(a.transport, b.transport)
    await ann.node.create_group("team", list(trust))

    async def joined() -> bool:
        return all(p.node.groups() for p in peers[1:])

    await wait_for(joined)
    return peers


async def _asking(peer: Peer) -> bool:
    return any(t.state is State.ASKING for t in await peer.node.files.transfers())


async def test_members_complete_from_a_member_after_the_sender_went_offline(
    tmp_path: Path,
) -> None:
    hub = MemoryHub()
    trust = {"ben": Trust.VERIFIED, "cat": Trust.UNVERIFIED, "dan": Trust.UNVERIFIED}
    peers = await _group(tmp_path, hub, trust)
    ann, ben, cat, dan = peers
    try:
        data = os.urandom(300_000)
        source = tmp_path / "flyer.bin"
        source.write_bytes(data)
        sent = await ann.node.files.send("+team", source)

        async def ben_has_it() -> bool:
            return bool(await received(ben)) and await _asking(cat) and await _asking(dan)

        await wait_for(ben_has_it)
        # the sender goes offline; cat and dan say yes only now
        await ann.node.stop()
        ann.store.close()
        started = time.monotonic()
        await cat.node.files.accept(sent.root.hex()[:12])
        await dan.node.files.accept(sent.root.hex()[:12])

        async def both() -> bool:
            return bool(await received(cat)) and bool(await received(dan))

        await wait_for(both, timeout=20)
        elapsed = time.monotonic() - started
        for p in (cat, dan):
            (path,) = await received(p)
            assert path.read_bytes() == data
        # ben served them (it holds the whole file); what dan or cat held was shared too
        assert ben.node.files.seeder.served > 0
        served = {p.name: p.node.files.seeder.served for p in (ben, cat, dan)}
        print(f"group: cat and dan done in {elapsed:.2f} s after the sender left; {served=}")
    finally:
        for p in peers[1:]:
            await p.node.stop()
            p.store.close()


async def test_a_member_serving_forged_chunks_does_not_stop_the_download(
    tmp_path: Path,
) -> None:
    hub = MemoryHub()
    trust = {"ben": Trust.VERIFIED, "cat": Trust.UNVERIFIED}
    peers = await _group(tmp_path, hub, trust)
    ann, ben, cat = peers
    try:
        files = ben.node.files
        honest_chunk = files._chunk

        def forged(root: bytes, index: int) -> Piece | None:
            piece = honest_chunk(root, index)
            if piece is None:
                return None
            data = bytearray(piece.data)
            data[-1] ^= 0xFF
            return replace(piece, data=bytes(data))

        files._chunk = forged  # type: ignore[method-assign]
        data = os.urandom(200_000)
        source = tmp_path / "map.bin"
        source.write_bytes(data)
        sent = await ann.node.files.send("+team", source)

        async def ben_has_it() -> bool:
            return bool(await received(ben)) and await _asking(cat)

        await wait_for(ben_has_it)
        await cat.node.files.accept(sent.root.hex()[:12])

        async def done() -> bool:
            return bool(await received(cat))

        await wait_for(done, timeout=20)
        (path,) = await received(cat)
        assert path.read_bytes() == data
        # ben was asked, and what it sent was refused
        forged = cat.node.counters.get("files.drop.bad-hash", 0)
        assert forged >= 1
        print(f"forged: {forged} refused; ann served {ann.node.files.seeder.served}")
        assert not await received(cat, State.FAILED)
    finally:
        for p in peers:
            await p.node.stop()
            p.store.close()


async def test_completed_files_served_are_bounded_oldest_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("meshchat.node._fileshare.MAX_SHARED", 1)
    hub = MemoryHub()
    ann, ben = [await make_peer(tmp_path, hub, n) for n in ("ann", "ben")]
    try:
        await befriend(ann, ben)
        hub.connect(ann.transport, ben.transport)
        roots = []
        for k in range(2):
            source = tmp_path / f"f{k}.bin"
            source.write_bytes(os.urandom(20_000))
            roots.append((await ann.node.files.send("ben", source)).root)

            async def served(root: bytes = roots[-1]) -> bool:
                return ben.node.files.seeder.holder(root) is not None

            await wait_for(served)  # a completed download is served on
        assert ben.node.files.seeder.holder(roots[0]) is None  # the older one no more
        assert len(await received(ben)) == 2
    finally:
        for p in (ann, ben):
            await p.node.stop()
            p.store.close()


async def _ben_restarts_after_completing(
    tmp_path: Path, peers: list[Peer], data: bytes, change_saved: bool = False
) -> bytes:
    """ann sends ``data`` to the group; once ben holds it (and cat is asked), ben restarts
    (same keys, store and transfers file; its saved copy changed first if ``change_saved``),
    ann goes offline and cat says yes. Returns the file's root."""
    from meshchat.node import Node

    ann, ben, cat = peers
    source = tmp_path / "leaflet.bin"
    source.write_bytes(data)
    sent = await ann.node.files.send("+team", source)

    async def ben_has_it() -> bool:
        return bool(await received(ben)) and await _asking(cat)

    await wait_for(ben_has_it)
    if change_saved:
        (saved,) = await received(ben)
        saved.write_bytes(os.urandom(len(data)))
    options = ben.node.options
    await ben.node.stop()
    hub = ben.transport.hub
    transport = hub.transport(ben.node.identity.public)
    node = Node(ben.node.identity, "ben", ben.store, [transport], options=options)
    await node.start()
    peers[1] = Peer(node, transport, ben.store, "ben", ben.home)
    for other in (ann, cat):
        hub.connect(other.transport, transport)
    await ann.node.stop()
    await cat.node.files.accept(sent.root.hex()[:12])
    return sent.root


async def test_a_member_restarted_after_completing_still_serves_the_file(tmp_path: Path) -> None:
    hub = MemoryHub()
    peers = await _group(tmp_path, hub, {"ben": Trust.VERIFIED, "cat": Trust.UNVERIFIED})
    try:
        data = os.urandom(100_000)
        await _ben_restarts_after_completing(tmp_path, peers, data)
        _, ben, cat = peers

        async def done() -> bool:
            return bool(await received(cat))

        await wait_for(done, timeout=20)
        (path,) = await received(cat)
        assert path.read_bytes() == data
        assert ben.node.files.seeder.served > 0
        # the first request waited for the file to be hashed again and was served, rather
        # than told "missing" and asked again after cat's timeout
        assert ben.node.counters.get("files.told-missing", 0) == 0
    finally:
        for p in peers[1:]:
            await p.node.stop()
        for p in peers:
            p.store.close()


async def test_a_restarted_member_whose_copy_changed_tells_the_waiting_askers(
    tmp_path: Path,
) -> None:
    hub = MemoryHub()
    peers = await _group(tmp_path, hub, {"ben": Trust.VERIFIED, "cat": Trust.UNVERIFIED})
    try:
        await _ben_restarts_after_completing(tmp_path, peers, os.urandom(100_000), True)
        _, ben, cat = peers

        async def told() -> bool:
            counters = ben.node.counters
            return bool(counters.get("files.reshare-failed") and counters.get("files.told-missing"))

        await wait_for(told, timeout=20)  # the requests that waited are answered, not kept
        assert ben.node.counters["files.reshare-failed"] == 1
        assert ben.node.files.sharing.waiting == 0
        assert ben.node.files.seeder.served == 0
        assert not await received(cat)
    finally:
        for p in peers[1:]:
            await p.node.stop()
        for p in peers:
            p.store.close()


async def test_a_channel_file_is_pulled_from_a_linked_node_after_the_sender_left(
    tmp_path: Path,
) -> None:
    hub = MemoryHub()
    peers = [await make_peer(tmp_path, hub, n) for n in ("ann", "ben", "cat")]
    ann, ben, cat = peers
    try:
        await befriend(ann, ben, Trust.VERIFIED)  # ben takes ann's files at once; cat asks
        for i, a in enumerate(peers):
            for b in peers[i + 1 :]:
                hub.connect(a.transport, b.transport)
        for p in peers:
            await p.node.join("#square", "a shared passphrase")
        data = os.urandom(60_000)
        source = tmp_path / "route.bin"
        source.write_bytes(data)
        sent = await ann.node.files.send("#square", source)

        async def ben_has_it() -> bool:
            return bool(await received(ben)) and await _asking(cat)

        await wait_for(ben_has_it)
        await ann.node.stop()
        await cat.node.files.accept(sent.root.hex()[:12])

        async def done() -> bool:
            return bool(await received(cat))

        await wait_for(done, timeout=20)
        (path,) = await received(cat)
        assert path.read_bytes() == data
        assert ben.node.files.seeder.served > 0
    finally:
        for p in peers:
            if p is not ann:
                await p.node.stop()
            p.store.close()
