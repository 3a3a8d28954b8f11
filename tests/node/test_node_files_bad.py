"""Bad input to a node's files, over the in-memory transport with real stores: pieces for no
transfer, a flood of requests from one peer, a transfer that never completes, a full disk.
Each time the legitimate traffic still gets through."""

from __future__ import annotations

import gc
import os
import subprocess
import time
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from test_node_files import Peer, befriend, make_peer, received, wait_for

from meshchat.files import FileKind, new_key, prepare_file
from meshchat.files.announce import announce_text
from meshchat.files.serve import ServeLimits
from meshchat.files.transfer import Limits
from meshchat.files.wire import Piece, Request
from meshchat.node._filestate import State
from meshchat.node._types import FileOptions
from meshchat.store.records import MessageState
from meshchat.transports.memory import MemoryHub


async def _send_body(peer: Peer, to: bytes, body: bytes) -> None:
    node = peer.node
    await node.submit(lambda: node.effects.run(node.engine.files.send(to, body, node.clock())))


async def _text_latency(sender: Peer, to: str) -> float:
    start = time.monotonic()
    sent = await sender.node.send_text(to, "still here?")

    async def delivered() -> bool:
        msg = await sender.node.store.call(sender.store.get_message, sent.msg_id)
        return msg is not None and msg.state is MessageState.DELIVERED

    await wait_for(delivered)
    return time.monotonic() - start


@pytest.fixture
async def trio(tmp_path: Path) -> AsyncIterator[tuple[MemoryHub, Peer, Peer, Peer]]:
    hub = MemoryHub()
    peers = [await make_peer(tmp_path, hub, n) for n in ("alice", "bob", "mallory")]
    alice, bob, mallory = peers
    await befriend(alice, bob)
    hub.connect(alice.transport, bob.transport)
    hub.connect(mallory.transport, bob.transport)
    yield hub, alice, bob, mallory
    for p in peers:
        await p.node.stop()
        p.store.close()


async def test_pieces_for_no_transfer_are_dropped_and_counted(
    trio: tuple[MemoryHub, Peer, Peer, Peer],
) -> None:
    _, alice, bob, mallory = trio
    bob_id = bob.node.identity.node_id
    for i in range(200):
        await _send_body(mallory, bob_id, Piece(os.urandom(32), 0, i, os.urandom(1552)).encode())
    await _send_body(mallory, bob_id, b"\x85\x02not a body")

    async def counted() -> bool:
        counters = bob.node.counters
        return (
            counters.get("files.drop.unknown-transfer", 0) == 200
            and counters.get("files.drop.malformed", 0) == 1
        )

    await wait_for(counted)
    assert not (bob.home / "downloads").exists()  # nothing written
    print(f"text after 200 stray pieces: {await _text_latency(alice, 'bob') * 1000:.0f} ms")


async def test_a_flood_of_requests_from_one_peer_is_paced_with_bounded_memory(
    tmp_path: Path,
) -> None:
    hub = MemoryHub()
    # bob serves any one peer 200 chunks a second (a small allowance, so that the flood
    # outruns it on this machine)
    files = FileOptions(
        downloads=str(tmp_path / "bob" / "downloads"),
        state=str(tmp_path / "bob" / "t.json"),
        serve=ServeLimits(rate=200, burst=32, total_rate=400, total_burst=64),
    )
    bob = await make_peer(tmp_path, hub, "bob", files)
    alice = await make_peer(tmp_path, hub, "alice")
    mallory = await make_peer(tmp_path, hub, "mallory")
    try:
        await befriend(alice, bob)
        await befriend(mallory, bob)  # a contact: a stranger is not served a direct file
        hub.connect(alice.transport, bob.transport)
        hub.connect(mallory.transport, bob.transport)
        data = os.urandom(300_000)
        source = tmp_path / "wanted.bin"
        source.write_bytes(data)
        sent = await bob.node.files.send("alice", source)
        bob_id = bob.node.identity.node_id
        request = Request(sent.root, 0, tuple(range(32))).encode()
        seeder = bob.node.files.seeder
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.take_snapshot()
        started = time.monotonic()
        for _ in range(2_000):  # 64,000 chunks asked for
            await _send_body(mallory, bob_id, request)
        flood_s = time.monotonic() - started
        latency = await _text_latency(alice, "bob")
        gc.collect()
        after = tracemalloc.take_snapshot()
        tracemalloc.stop()
        growth = sum(s.size_diff for s in after.compare_to(before, "filename"))
        elapsed = time.monotonic() - started
        print(
            f"2,000 requests in {flood_s:.1f} s: {seeder.served} chunks served, "
            f"{seeder.limited} refused, {seeder.waiting} waiting, memory +{growth // 1024} KiB; "
            f"a text during the flood: {latency * 1000:.0f} ms"
        )
        assert seeder.served <= 64 + 400 * elapsed  # the allowance, whatever is asked
        # every request was refused by the seeder, or dropped whole (32 chunks) by bob's inbox
        # before it, when mallory's lane was full
        shed = 32 * bob.node.counters.get("drop.inbox-full", 0)
        assert seeder.limited + shed >= 64_000 - seeder.served - 2 * 32 - 2 * 32
        # at most a burst waits per asker: mallory, and alice's own download
        assert seeder.waiting <= 2 * 32 and seeder.peers_tracked <= 2
        assert growth < 4 << 20, growth

        # alice, who was offered the file, still gets it whole
        async def done() -> bool:
            return bool(await received(alice))

        await wait_for(done, 60)
        (path,) = await received(alice)
        assert path.read_bytes() == data
    finally:
        for p in (alice, bob, mallory):
            await p.node.stop()
            p.store.close()


async def test_a_transfer_that_never_completes_expires_and_its_partial_data_is_erased(
    tmp_path: Path,
) -> None:
    hub = MemoryHub()
    alice = await make_peer(tmp_path, hub, "alice")
    home = tmp_path / "bob"
    files = FileOptions(
        downloads=str(home / "downloads"),
        state=str(home / "t.json"),
        # one piece in flight at a time, so the sender stops answering mid-file even on a
        # fast machine (with the node's window a 400 kB file crossed between two polls)
        limits=Limits(idle_ms=2_000, request_timeout_ms=500, window=1, per_source=1),
    )
    bob = await make_peer(tmp_path, hub, "bob", files)
    try:
        await befriend(alice, bob)
        hub.connect(alice.transport, bob.transport)
        source = tmp_path / "half.bin"
        source.write_bytes(os.urandom(2_000_000))
        sent = await alice.node.files.send("bob", source)

        async def some() -> bool:
            t = await bob.node.files.transfers()
            return bool(t) and t[0].progress is not None and t[0].progress.held > 50_000

        await wait_for(some)
        alice.node.files.seeder.remove(sent.root)  # the sender stops answering
        partial = home / "downloads" / ".meshchat-partial"
        assert list(partial.iterdir())

        async def failed() -> bool:
            return [t.state for t in await bob.node.files.transfers()] == [State.FAILED]

        await wait_for(failed)
        (t,) = await bob.node.files.transfers()
        assert t.error == "expired"
        assert list(partial.iterdir()) == []  # .part and .hashes erased
        assert sorted(p.name for p in (home / "downloads").iterdir()) == [".meshchat-partial"]
    finally:
        for p in (alice, bob):
            await p.node.stop()
            p.store.close()


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "tiny"
    folder.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(folder)], check=True)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


async def test_a_full_disk_fails_the_transfer_clearly_and_leaves_nothing_corrupt(
    tmp_path: Path, tiny_disk: Path
) -> None:
    hub = MemoryHub()
    alice = await make_peer(tmp_path, hub, "alice")
    home = tmp_path / "bob"
    files = FileOptions(downloads=str(tiny_disk), state=str(home / "t.json"))
    bob = await make_peer(tmp_path, hub, "bob", files)
    try:
        await befriend(alice, bob)
        hub.connect(alice.transport, bob.transport)
        source = tmp_path / "too big.bin"
        source.write_bytes(os.urandom(600_000))  # more than the 256 KiB the disk has
        await alice.node.files.send("bob", source)

        async def failed() -> bool:
            return [t.state for t in await bob.node.files.transfers()] == [State.FAILED]

        await wait_for(failed)
        (t,) = await bob.node.files.transfers()
        assert "no space" in t.error.lower() or "no-space" in t.error
        assert not (tiny_disk / "too big.bin").exists()
        assert list((tiny_disk / ".meshchat-partial").iterdir()) == []  # partial erased
        # the node goes on: a small file still arrives, and text
        small = tmp_path / "small.txt"
        small.write_bytes(b"fits")
        await alice.node.files.send("bob", small)

        async def arrived() -> bool:
            return bool(await received(bob))

        await wait_for(arrived)
        assert (tiny_disk / "small.txt").read_bytes() == b"fits"
        await _text_latency(alice, "bob")
    finally:
        for p in (alice, bob):
            await p.node.stop()
            p.store.close()


async def test_a_channel_announcement_claiming_a_verified_contact_is_not_auto_accepted(
    trio: tuple[MemoryHub, Peer, Peer, Peer], tmp_path: Path
) -> None:
    _, alice, bob, mallory = trio  # bob verified alice; mallory is a stranger to him
    for p in (alice, bob, mallory):
        await p.node.join("#square", "a shared passphrase")
    source = tmp_path / "bait.bin"
    source.write_bytes(os.urandom(2000))
    manifest, _ = prepare_file(
        source, kind=FileKind.FILE, media_type="application/octet-stream", key=new_key()
    )
    # mallory's announcement names alice's node id as where to get the file
    await mallory.node.send_text("#square", announce_text(manifest, alice.node.identity.node_id))

    async def heard() -> bool:
        return bool(await bob.node.files.transfers())

    await wait_for(heard)
    (t,) = await bob.node.files.transfers()
    assert t.state is State.ASKING  # not taken on alice's word: mallory signed it
    # while alice's own announcement in the channel is taken at once
    await alice.node.files.send("#square", source)

    async def taken() -> bool:
        return [x.state for x in await bob.node.files.transfers()].count(State.DONE) == 1

    await wait_for(taken)
