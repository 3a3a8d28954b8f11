"""The node's group commit: frames queued together are stored in one transaction, and nothing
they cause leaves the node before that transaction is on disk."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from meshchat.crypto.box import BoxSuite
from meshchat.crypto.channel import PUBLIC_CHANNEL
from meshchat.identity import Identity
from meshchat.node import MAX_BATCH, Node, NodeOptions
from meshchat.router.flood import RouterConfig
from meshchat.store import COMMITS_KEPT, Store
from meshchat.transports.base import Link
from meshchat.transports.memory import MemoryHub, MemoryLink
from meshchat.wire import Destination, PacketKind, Suite, build, codec, encode
from meshchat.wire.fastparse import peek_packet_id
from meshchat.wire.payloads import MessageBody

KEY = bytes(range(32))


class CountingStore(Store):
    """The real store, counting the group transactions the node opens."""

    commits = 0

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        with super().transaction():
            yield
        type(self).commits += 1


class End:
    """A bare link end (no node): records what reaches it, and what was on disk by then."""

    def __init__(self, reader: Store | None = None) -> None:
        self.frames: list[bytes] = []
        self.durable_when_sent: list[bool] = []
        self.reader = reader

    def link_up(self, link: Link) -> None:
        pass

    def link_down(self, link: Link) -> None:
        pass

    def frame_received(self, link: Link, frame: bytes) -> None:
        self.frames.append(frame)

    def sent(self, frame: bytes) -> None:
        """G lets ``frame`` go to this end (where a TCP link hands it to the kernel)."""
        if self.reader is not None:
            # A second connection sees committed data only.
            held = {c.packet_id for c in self.reader.carried(int(time.time() * 1000))}
            self.durable_when_sent.append(peek_packet_id(frame) in held)


@dataclass
class Setup:
    node: Node
    store: Store
    reader: Store
    a_link: MemoryLink
    #: G's end of the link from A
    g_from_a: MemoryLink
    b_end: End
    a_id: Identity
    b_id: Identity
    hub: MemoryHub


@pytest.fixture(params=["tmp", "tmpfs"])
async def gateway(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Setup]:
    """Node G between two bare ends: A -> G -> B; its store in the test's directory, or on
    tmpfs, where commits are fast and the worker's writes run on the loop thread."""
    if request.param == "tmpfs":
        tmp_path = Path(tempfile.mkdtemp(dir="/dev/shm"))
        request.addfinalizer(lambda: shutil.rmtree(tmp_path, ignore_errors=True))
    hub = MemoryHub()
    a_id, b_id, g_id = Identity.generate(), Identity.generate(), Identity.generate()
    CountingStore.commits = 0
    store = CountingStore.open(tmp_path / "g.db", key=KEY)
    for i in range(COMMITS_KEPT):  # a store in use: it knows what a commit costs here
        store.set_setting(f"warm{i}", "1")
    g_mem = hub.transport(g_id.public)
    options = NodeOptions(
        announce=False,
        router=RouterConfig(
            link_rate=100_000, link_burst=200_000, max_carried_per_destination=1024
        ),
    )
    node = Node(g_id, "g", store, [g_mem], options=options)
    await node.start()
    reader = Store.open(tmp_path / "g.db", key=KEY)
    a_end, b_end = hub.transport(a_id.public), hub.transport(b_id.public)
    b_counter = End(reader)
    await a_end.start(End())
    await b_end.start(b_counter)
    a_link, g_from_a = hub.connect(a_end, g_mem)
    g_to_b, _ = hub.connect(g_mem, b_end)
    send = g_to_b.send

    def send_checked(frame: bytes) -> bool:
        b_counter.sent(frame)  # what was on disk at the moment G let the frame go
        return send(frame)

    g_to_b.send = send_checked  # type: ignore[method-assign]
    async with asyncio.timeout(5):
        while len(node.links) < 2:
            await asyncio.sleep(0.01)
    yield Setup(node, store, reader, a_link, g_from_a, b_counter, a_id, b_id, hub)
    await node.stop()
    reader.close()
    store.close()


def frames_for(sender: Identity, recipient: Identity, count: int) -> list[bytes]:
    box = BoxSuite(sender)
    now = int(time.time() * 1000)
    return [
        encode(
            build(
                sender,
                PacketKind.MESSAGE,
                Destination.node(recipient.node_id),
                Suite.BOX,
                box.seal(
                    recipient.public.box_public, MessageBody(os.urandom(16), f"m{i}").encode()
                ),
                now,
                8,
            )
        )
        for i in range(count)
    ]


async def wait_frames(end: End, count: int) -> None:
    async with asyncio.timeout(10):
        while len(end.frames) < count:
            await asyncio.sleep(0.01)


async def test_a_burst_of_frames_is_one_commit_and_durable_before_it_is_relayed(
    gateway: Setup,
) -> None:
    frames = frames_for(gateway.a_id, gateway.b_id, 40)
    await asyncio.sleep(0.2)  # let start-up writes settle
    before = CountingStore.commits
    for frame in frames:
        gateway.a_link.send(frame)
    await wait_frames(gateway.b_end, len(frames))
    relayed = {peek_packet_id(f) for f in gateway.b_end.frames}
    assert relayed == {peek_packet_id(f) for f in frames}
    # Every packet was carried (on disk, seen by another connection) before B got it.
    assert gateway.b_end.durable_when_sent == [True] * len(frames)
    # The burst was queued at once: far fewer commits than frames (one, give or take a tick).
    assert CountingStore.commits - before <= 3
    if gateway.store.path.is_relative_to("/dev/shm"):
        assert gateway.node.store.ways["loop"] > 0  # the writes ran on the loop thread


async def test_groups_are_bounded(gateway: Setup) -> None:
    count = MAX_BATCH + 50
    frames = frames_for(gateway.a_id, gateway.b_id, count)
    await asyncio.sleep(0.2)
    before = CountingStore.commits
    for frame in frames:
        gateway.a_link.send(frame)
    await wait_frames(gateway.b_end, count)
    assert all(gateway.b_end.durable_when_sent)
    assert CountingStore.commits - before >= 2


async def test_a_command_queued_behind_frames_is_answered_after_them(gateway: Setup) -> None:
    frames = frames_for(gateway.a_id, gateway.b_id, 30)
    for frame in frames[:15]:
        gateway.a_link.send(frame)
    await asyncio.sleep(0)  # the first frames are queued before the command
    joined = asyncio.create_task(gateway.node.join("#later"))
    for frame in frames[15:]:
        gateway.a_link.send(frame)
    channel = await asyncio.wait_for(joined, 5)
    assert channel.name == "#later"
    assert "#later" in gateway.node.channel_ids()
    await wait_frames(gateway.b_end, len(frames))
    assert all(gateway.b_end.durable_when_sent)


async def test_frames_queued_before_their_link_went_down_are_still_handled(
    gateway: Setup,
) -> None:
    frames = frames_for(gateway.a_id, gateway.b_id, 20)
    link = gateway.g_from_a
    for frame in frames:
        gateway.node.frame_received(link, frame)
    gateway.hub.unlink(link)  # its link-down is queued behind the frames
    await wait_frames(gateway.b_end, len(frames))
    async with asyncio.timeout(5):
        while link.link_id in gateway.node.links:
            await asyncio.sleep(0.01)
    # Once the link-down is handled, a late frame on that link is ignored.
    late = frames_for(gateway.a_id, gateway.b_id, 1)[0]
    gateway.node.frame_received(link, late)
    await asyncio.sleep(0.2)
    assert len(gateway.b_end.frames) == len(frames)


async def test_commands_are_not_batched_the_announce_after_a_link_up_goes_first(
    tmp_path: Path,
) -> None:
    """Timers and housekeeping still run after every item that is not a frame: a link-up
    queued just before a user command has its announce out before the command's message."""
    hub = MemoryHub()
    g_id, b_id = Identity.generate(), Identity.generate()
    store = Store.open(tmp_path / "g.db", key=KEY)
    g_mem = hub.transport(g_id.public)
    node = Node(g_id, "g", store, [g_mem])
    await node.start()
    try:
        b_end_transport, b_end = hub.transport(b_id.public), End()
        await b_end_transport.start(b_end)
        hub.connect(g_mem, b_end_transport)  # queues the link-up
        await node.send_text(PUBLIC_CHANNEL, "right after the link came up")
        await wait_frames(b_end, 2)
        kinds = [codec.parse(f).kind for f in b_end.frames[:2]]
        assert kinds == [PacketKind.ANNOUNCE, PacketKind.MESSAGE]
    finally:
        await node.stop()
        store.close()


async def test_a_sent_message_is_one_commit_and_stored_before_its_packet_leaves(
    gateway: Setup,
) -> None:
    await asyncio.sleep(0.2)
    before = CountingStore.commits
    message = await gateway.node.send_text(PUBLIC_CHANNEL, "stored first")
    assert CountingStore.commits - before == 1  # the message, its state and its first try
    await wait_frames(gateway.b_end, 1)
    stored = gateway.reader.get_message(message.msg_id)
    assert stored is not None and stored.text == "stored first"


async def test_a_message_the_store_refuses_is_never_sent(
    gateway: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    from meshchat.errors import StoreError

    def refuse(*args: object, **kwargs: object) -> None:
        raise StoreError("disk full")

    await asyncio.sleep(0.2)
    monkeypatch.setattr(gateway.store, "add_outgoing", refuse)
    with pytest.raises(StoreError, match="disk full"):
        await gateway.node.send_text(PUBLIC_CHANNEL, "never stored")
    await asyncio.sleep(0.3)
    assert gateway.b_end.frames == []
    assert len(gateway.node.engine.outbox) == 0
