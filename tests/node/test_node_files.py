"""Files between nodes with real stores over the in-memory transport: announced in a message,
pulled in pieces, saved byte-identical; the node's bad-input bounds."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from meshchat.files.announce import parse_text
from meshchat.identity import Identity
from meshchat.node import Node, NodeOptions
from meshchat.node._filestate import State
from meshchat.node._types import FileOptions
from meshchat.store import Store
from meshchat.store.records import Contact, Trust
from meshchat.transports.memory import MemoryHub, MemoryTransport


@dataclass
class Peer:
    node: Node
    transport: MemoryTransport
    store: Store
    name: str
    home: Path


async def make_peer(
    tmp_path: Path, hub: MemoryHub, name: str, files: FileOptions | None = None
) -> Peer:
    home = tmp_path / name
    home.mkdir(exist_ok=True)
    identity = Identity.generate()
    store = Store.open(home / "db", key=os.urandom(32))
    transport = hub.transport(identity.public)
    files = files or FileOptions(downloads=str(home / "downloads"), state=str(home / "t.json"))
    node = Node(identity, name, store, [transport], options=NodeOptions(files=files))
    await node.start()
    return Peer(node, transport, store, name, home)


async def befriend(a: Peer, b: Peer, trust: Trust = Trust.VERIFIED) -> None:
    for x, y in ((a, b), (b, a)):
        ident = y.node.identity.public
        await x.node.add_contact(
            Contact(ident.node_id, ident.sign_public, ident.box_public, y.name, trust, 0)
        )


async def wait_for(predicate: Callable[[], Awaitable[bool]], timeout: float = 15.0) -> None:
    async with asyncio.timeout(timeout):
        while not await predicate():
            await asyncio.sleep(0.02)


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[tuple[MemoryHub, Peer, Peer]]:
    hub = MemoryHub()
    alice = await make_peer(tmp_path, hub, "alice")
    bob = await make_peer(tmp_path, hub, "bob")
    yield hub, alice, bob
    for p in (alice, bob):
        await p.node.stop()
        p.store.close()


async def received(peer: Peer, state: State = State.DONE) -> list[Path]:
    return [Path(t.path) for t in await peer.node.files.transfers() if t.state is state]


async def test_a_file_to_a_verified_contact_arrives_byte_identical(
    pair: tuple[MemoryHub, Peer, Peer], tmp_path: Path
) -> None:
    hub, alice, bob = pair
    await befriend(alice, bob)
    hub.connect(alice.transport, bob.transport)
    data = os.urandom(200_000)
    source = tmp_path / "report.pdf"
    source.write_bytes(data)
    sent = await alice.node.files.send("bob", source, caption="the report")

    async def done() -> bool:
        return bool(await received(bob))

    await wait_for(done)
    (path,) = await received(bob)
    assert path.read_bytes() == data
    assert path.name == "report.pdf" and path.parent == bob.home / "downloads"
    # the announcement is a message of the conversation, in its history
    conversation = await bob.node.resolve_conversation("alice")
    (message,) = await bob.node.history(conversation)
    announced = parse_text(message.text)
    assert announced is not None and announced.manifest.root == sent.root
    assert announced.manifest.caption == "the report"
    # nothing is left in the partial folder
    assert not list((bob.home / "downloads" / ".meshchat-partial").iterdir())


async def test_an_unverified_sender_is_asked_about_until_accepted(
    pair: tuple[MemoryHub, Peer, Peer], tmp_path: Path
) -> None:
    hub, alice, bob = pair
    await befriend(alice, bob, Trust.UNVERIFIED)
    hub.connect(alice.transport, bob.transport)
    source = tmp_path / "photo.png"
    source.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(5000))
    from meshchat.files.manifest import FileKind

    sent = await alice.node.files.send("bob", source, kind=FileKind.IMAGE)

    async def asking() -> bool:
        return any(t.state is State.ASKING for t in await bob.node.files.transfers())

    await wait_for(asking)
    assert not (bob.home / "downloads" / "photo.png").exists()
    await bob.node.files.accept(sent.root.hex()[:8])

    async def done() -> bool:
        return bool(await received(bob))

    await wait_for(done)
    assert (bob.home / "downloads" / "photo.png").read_bytes() == source.read_bytes()


async def test_a_file_to_a_group_reaches_every_member(tmp_path: Path) -> None:
    hub = MemoryHub()
    peers = [await make_peer(tmp_path, hub, n) for n in ("ann", "ben", "cat", "dan")]
    try:
        ann = peers[0]
        for other in peers[1:]:
            await befriend(ann, other)
            hub.connect(ann.transport, other.transport)
        await ann.node.create_group("team", ["ben", "cat", "dan"])

        async def joined() -> bool:
            return all(p.node.groups() for p in peers[1:])

        await wait_for(joined)
        data = os.urandom(60_000)
        source = tmp_path / "map.bin"
        source.write_bytes(data)
        await ann.node.files.send("+team", source)

        async def everyone() -> bool:
            return all([bool(await received(p)) for p in peers[1:]])

        await wait_for(everyone)
        for p in peers[1:]:
            (path,) = await received(p)
            assert path.read_bytes() == data
    finally:
        for p in peers:
            await p.node.stop()
            p.store.close()


async def test_a_download_resumes_after_the_receiver_restarts(tmp_path: Path) -> None:
    hub = MemoryHub()
    alice = await make_peer(tmp_path, hub, "alice")
    bob = await make_peer(tmp_path, hub, "bob")
    await befriend(alice, bob)
    hub.connect(alice.transport, bob.transport)
    data = os.urandom(1_500_000)
    source = tmp_path / "big.bin"
    source.write_bytes(data)
    await alice.node.files.send("bob", source)

    async def halfway() -> bool:
        (t,) = await bob.node.files.transfers() or [None]
        return t is not None and t.progress is not None and t.progress.held > 300_000

    await wait_for(halfway)
    # bob stops mid-transfer (its store and keys kept), then comes back
    identity = bob.node.identity
    await bob.node.stop()
    bob.store.close()
    bob2_store = Store.open(bob.home / "db2", key=os.urandom(32))
    files = FileOptions(downloads=str(bob.home / "downloads"), state=str(bob.home / "t.json"))
    transport = hub.transport(identity.public)
    node = Node(identity, "bob", bob2_store, [transport], options=NodeOptions(files=files))
    await node.start()
    bob2 = Peer(node, transport, bob2_store, "bob", bob.home)
    try:
        ident = alice.node.identity.public
        await node.add_contact(
            Contact(ident.node_id, ident.sign_public, ident.box_public, "alice", Trust.VERIFIED, 0)
        )
        resumed = [t for t in await node.files.transfers() if t.state is State.ACTIVE]
        assert resumed and resumed[0].progress is not None
        held_at_start = resumed[0].progress.held
        assert held_at_start > 300_000  # taken back from the partial file, not pulled again
        hub.connect(alice.transport, transport)

        async def done() -> bool:
            return bool(await received(bob2))

        await wait_for(done)
        (path,) = await received(bob2)
        assert path.read_bytes() == data
    finally:
        for p in (alice, bob2):
            await p.node.stop()
            p.store.close()


async def test_a_file_over_the_limit_of_the_links_to_its_sender_is_refused(
    tmp_path: Path,
) -> None:
    from meshchat.errors import TransferError, TransferReason
    from meshchat.files.policy import FilePolicy

    hub = MemoryHub()
    alice = await make_peer(tmp_path, hub, "alice")
    home = tmp_path / "bob"
    # bob's only links are in-memory ("other" media): at most 100 kB from a sender so reached
    # (and over any medium, so that bob also refuses to send more)
    k = 100_000
    small = FilePolicy(ble=k, lan=k, relay=k, dht=k, other=k, auto_accept=k)
    files = FileOptions(downloads=str(home / "downloads"), state=str(home / "t.json"), policy=small)
    bob = await make_peer(tmp_path, hub, "bob", files)
    try:
        await befriend(alice, bob)
        hub.connect(alice.transport, bob.transport)
        source = tmp_path / "big.bin"
        source.write_bytes(os.urandom(200_000))
        await alice.node.files.send("bob", source)

        async def refused() -> bool:
            return [t.state for t in await bob.node.files.transfers()] == [State.REFUSED]

        await wait_for(refused)
        (t,) = await bob.node.files.transfers()
        assert "over the 100000-byte limit" in t.error
        assert not (home / "downloads").exists()
        # and a sender refuses to announce a file over the largest limit it has
        with pytest.raises(TransferError) as caught:
            await bob.node.files.send("alice", source)
        assert caught.value.reason is TransferReason.TOO_LARGE
    finally:
        for p in (alice, bob):
            await p.node.stop()
            p.store.close()
