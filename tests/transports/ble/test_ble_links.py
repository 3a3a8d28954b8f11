"""BLE transports over bumble virtual radios: frames, relaying, caps, duplicates, loss."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import Callable

import pytest
from ble_world import FAST, Recorder, World, link, linked

from meshchat.transports.base import Link
from meshchat.wire.packet import MAX_PACKET_SIZE

SIZES = [1, 2, 15, 16, 17, 100, 239, 240, 241, 511, 512, 513, 1000, 2047, MAX_PACKET_SIZE]


@pytest.mark.parametrize(("mtu", "value_size"), [(23, 20), (247, 244), (517, 512)])
async def test_frames_up_to_max_size_cross_intact_both_ways(
    ble_world: Callable[..., World], mtu: int, value_size: int
) -> None:
    world = ble_world(2, mtu=mtu)
    await world.start()
    await linked(world, (0, 1))
    a, b = world.nodes
    ab, ba = link(a, b), link(b, a)
    assert ab.session.connection.mtu == mtu
    assert ab.session.connection.max_value_size == ba.session.connection.max_value_size
    assert ab.session.connection.max_value_size == value_size
    rng = random.Random(mtu)
    frames = [rng.randbytes(size) for size in SIZES]
    for frame in frames:
        assert ab.send(frame)
        assert ba.send(frame[::-1])
    await b.recorder.until(lambda: len(b.recorder.frames) == len(frames))
    await a.recorder.until(lambda: len(a.recorder.frames) == len(frames))
    assert b.recorder.payloads() == frames
    assert a.recorder.payloads() == [f[::-1] for f in frames]
    assert {lk.link_id for lk, _ in b.recorder.frames} == {ba.link_id}
    assert not ab.send(b"x" * (MAX_PACKET_SIZE + 1))
    assert not ab.send(b"")
    for node in world.nodes:
        session = link(node, b if node is a else a).session
        assert session.framing_errors == 0
        assert session.reassembly.rejected == 0


class Relay(Recorder):
    """Forwards every frame to all its other links: the transport-level part of a relay."""

    def frame_received(self, link: Link, frame: bytes) -> None:
        super().frame_received(link, frame)
        for other in self.live:
            if other is not link:
                assert other.send(frame)


async def test_line_of_three_relays_through_the_middle(ble_world: Callable[..., World]) -> None:
    world = ble_world(3, apart=[(0, 2)])
    a, b, c = world.nodes
    b.recorder = Relay("B")
    await world.start()
    await linked(world, (0, 1), (1, 2))
    await asyncio.sleep(0.5)  # give A and C every chance to find each other: they must not
    assert [lk.peer for lk in a.recorder.ups] == [b.identity.public]
    assert [lk.peer for lk in c.recorder.ups] == [b.identity.public]
    message = random.Random(3).randbytes(MAX_PACKET_SIZE)
    assert link(a, b).send(message)
    await c.recorder.until(lambda: message in c.recorder.payloads())
    assert link(c, b).send(b"ack:" + message[:32])
    await a.recorder.until(lambda: b"ack:" + message[:32] in a.recorder.payloads())
    assert b.recorder.payloads() == [message, b"ack:" + message[:32]]


async def test_link_dropped_mid_frame_delivers_nothing_then_reconnects(
    ble_world: Callable[..., World],
) -> None:
    world = ble_world(2, mtu=23, rate_limit=4000)
    await world.start()
    await linked(world, (0, 1))
    a, b = world.nodes
    ab, ba = link(a, b), link(b, a)
    frame = random.Random(5).randbytes(MAX_PACKET_SIZE)  # ~0.5 s of fragments at this rate
    assert ab.send(frame)
    await b.recorder.until(lambda: ba.session.buffered_bytes > 200)
    world.link.set_in_range(a.backend, b.backend, False)
    await a.recorder.until(lambda: ab in a.recorder.downs)
    await b.recorder.until(lambda: ba in b.recorder.downs)
    await asyncio.sleep(0.7)  # the rest of the frame's time on air
    assert b.recorder.frames == []
    assert ba.session.buffered_bytes == 0
    assert not ab.send(b"after the link went down")
    # Back in range: the nodes find each other again and the link works.
    world.link.set_in_range(a.backend, b.backend, True)
    await linked(world, (0, 1))
    again = link(a, b)
    assert again is not ab and again.link_id != ab.link_id
    assert again.send(b"hello again")
    await b.recorder.until(lambda: b"hello again" in b.recorder.payloads())
    assert b.recorder.payloads() == [b"hello again"]
    for node in (a, b):
        assert len(node.recorder.live) == 1
        assert len(node.recorder.ups) - len(node.recorder.downs) == 1


async def test_sends_are_bounded_on_a_slow_link(ble_world: Callable[..., World]) -> None:
    limits = dataclasses.replace(FAST.limits, queue_frames=8, queue_bytes=12 * 1024)
    world = ble_world(
        2, mtu=247, rate_limit=50_000, options=dataclasses.replace(FAST, limits=limits)
    )
    await world.start()
    await linked(world, (0, 1))
    a, b = world.nodes
    ab = link(a, b)
    frame = bytes(2000)
    accepted = 0
    while ab.send(frame[:-4] + accepted.to_bytes(4, "big")):
        accepted += 1
        assert ab.session.buffered_bytes <= 12 * 1024
    assert 5 <= accepted <= 8 + 1  # the queue's bound (plus the frame being written)
    assert ab.session.dropped_frames == 1
    await b.recorder.until(lambda: len(b.recorder.frames) == accepted)
    assert [int.from_bytes(f[-4:], "big") for f in b.recorder.payloads()] == list(range(accepted))
    await asyncio.sleep(0.05)
    assert ab.session.buffered_bytes == 0
    assert ab.send(frame)


async def test_link_cap_is_never_exceeded(ble_world: Callable[..., World]) -> None:
    world = ble_world(4, max_links=[2, 7, 7, 7])
    hub, *others = world.nodes
    await world.start()
    peak = 0
    for _ in range(40):
        await asyncio.sleep(0.05)
        peak = max(peak, len(hub.transport.sessions))
    assert peak <= 2
    await hub.recorder.until(lambda: len(hub.recorder.live) == 2)
    for x in others:
        for y in others:
            if x is not y:
                await x.recorder.until(lambda x=x, y=y: x.link_to(y) is not None)
    assert len(hub.recorder.live) == 2


async def test_one_link_per_pair_even_when_both_dial(ble_world: Callable[..., World]) -> None:
    eager = dataclasses.replace(FAST, dial_grace=0.0)  # both sides dial as soon as they see
    world = ble_world(2, options=eager)
    await world.start()
    await linked(world, (0, 1))
    await asyncio.sleep(1.0)
    a, b = world.nodes
    for node, other in ((a, b), (b, a)):
        assert len(node.recorder.live) == 1
        assert len(node.transport.sessions) == 1
        assert node.link_to(other) is not None
        assert len(node.recorder.ups) - len(node.recorder.downs) == 1
    ab, ba = link(a, b), link(b, a)
    assert ab.initiator != ba.initiator
    assert ab.send(b"one") and ba.send(b"two")
    await b.recorder.until(lambda: b"one" in b.recorder.payloads())
    await a.recorder.until(lambda: b"two" in a.recorder.payloads())


async def test_rssi_floor_keeps_weak_nodes_out(ble_world: Callable[..., World]) -> None:
    world = ble_world(2, rssi_floor=-40)  # the virtual radio reports -50 dBm
    await world.start()
    await asyncio.sleep(1.0)
    for node in world.nodes:
        assert node.transport.dials == 0
        assert node.recorder.events == []


async def test_stop_reports_every_link_down_once(ble_world: Callable[..., World]) -> None:
    world = ble_world(3)
    await world.start()
    await linked(world, (0, 1), (0, 2), (1, 2))
    a, b, c = world.nodes
    await a.transport.stop()
    assert sorted(lk.link_id for lk in a.recorder.downs) == sorted(
        lk.link_id for lk in a.recorder.ups
    )
    assert a.recorder.live == []
    await b.recorder.until(lambda: b.link_to(a) is None)
    await c.recorder.until(lambda: c.link_to(a) is None)
    assert b.link_to(c) is not None
    assert not a.transport.status().up
