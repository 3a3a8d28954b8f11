"""File frames on a BLE link: a second, lower-priority queue (``Link.send_bulk``), so text
and acks leave before file chunks queued earlier, in both GATT directions."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ble_world import World, link, linked

from meshchat.wire.packet import MAX_PACKET_SIZE

CHUNK = 1600  # about a sealed file piece in its packet


async def test_text_overtakes_file_frames_queued_before_it(
    ble_world: Callable[..., World],
) -> None:
    world = ble_world(2, mtu=247, rate_limit=200_000)
    await world.start()
    await linked(world, (0, 1))
    a, b = world.nodes
    for sender, receiver in ((a, b), (b, a)):  # the central's writes, the peripheral's notifies
        out = link(sender, receiver)
        before = len(receiver.recorder.frames)
        bulk = [bytes([n]) * CHUNK for n in range(20)]
        for frame in bulk:
            assert out.send_bulk(frame)
        # queued after every file frame, in the same turn: nothing has been written yet
        assert out.send(b"text")
        assert out.send(b"ack")
        want = before + 22
        await receiver.recorder.until(lambda r=receiver.recorder, n=want: len(r.frames) == n)
        got = receiver.recorder.payloads()[before:]
        assert got[:2] == [b"text", b"ack"]
        assert got[2:] == bulk  # file frames keep their own order


async def test_text_queued_mid_transfer_waits_for_at_most_one_file_frame(
    ble_world: Callable[..., World],
) -> None:
    world = ble_world(2, mtu=247, rate_limit=100_000)
    await world.start()
    await linked(world, (0, 1))
    a, b = world.nodes
    ab = link(a, b)
    bulk = [n.to_bytes(2, "big") * (CHUNK // 2) for n in range(30)]
    for frame in bulk:
        assert ab.send_bulk(frame)
    await b.recorder.until(lambda: len(b.recorder.frames) >= 3)
    seen = len(b.recorder.frames)
    assert ab.send(b"typed meanwhile")
    await b.recorder.until(lambda: b"typed meanwhile" in b.recorder.payloads())
    at = b.recorder.payloads().index(b"typed meanwhile")
    # behind the file frame on the air when it was typed (and one the radio may still hold)
    assert at <= seen + 2
    await b.recorder.until(lambda: len(b.recorder.frames) == 31)
    assert [f for f in b.recorder.payloads() if f != b"typed meanwhile"] == bulk


async def test_file_frames_are_bounded_apart_from_text(
    ble_world: Callable[..., World],
) -> None:
    world = ble_world(2, mtu=247, rate_limit=20_000)
    await world.start()
    await linked(world, (0, 1))
    a, b = world.nodes
    ab = link(a, b)
    limits = ab.session.limits
    accepted = 0
    while ab.send_bulk(bytes(MAX_PACKET_SIZE)):
        accepted += 1
        assert accepted <= limits.bulk_frames + 1
    assert accepted >= limits.bulk_bytes // MAX_PACKET_SIZE
    assert ab.session.buffered_bytes <= limits.bulk_bytes + MAX_PACKET_SIZE + 64
    assert not ab.send_bulk(b"")
    assert not ab.send_bulk(bytes(MAX_PACKET_SIZE + 1))
    # a full file queue leaves room for text, which still leaves first
    assert ab.send(b"still room for text")
    await b.recorder.until(lambda: b"still room for text" in b.recorder.payloads())
    assert b.recorder.payloads().index(b"still room for text") <= 1
    await asyncio.sleep(0)
