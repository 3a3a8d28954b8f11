"""Replays after the short dedupe horizon: packets are accepted for 7 days, so the router must
remember them for as long (bounded memory, kept across restarts)."""

from __future__ import annotations

import os
import random

from meshchat.identity import Identity
from meshchat.router import Drop, FloodRouter, NaiveFlood, RouterConfig, Transmit
from meshchat.router.replay import ReplayFilter
from meshchat.wire import codec
from meshchat.wire.packet import BROADCAST, MAX_AGE_MS, Destination, PacketKind, Suite

NOW = 1_700_000_000_000
HOUR = 3600_000
ME = Identity.from_seeds(b"\xa1" * 32, b"\xa2" * 32)
ALICE = Identity.from_seeds(b"\xb1" * 32, b"\xb2" * 32)
MESH = Destination.channel(b"\xcc" * 16)


def _router(seed: int = 1) -> FloodRouter:
    router = FloodRouter(
        ME.node_id, ME.public.sign_public, policy=NaiveFlood(), rng=random.Random(seed)
    )
    router.link_up("a", NOW)
    router.link_up("b", NOW)
    return router


def _frame(created: int = NOW, dest: Destination = MESH) -> bytes:
    packet = codec.build(ALICE, PacketKind.MESSAGE, dest, Suite.SIGNED, b"hi", created, 6)
    return codec.encode(packet)


def _relayed(actions: list[object]) -> bool:
    return any(isinstance(a, Transmit) for a in actions)


def _duplicate(actions: list[object]) -> bool:
    return any(isinstance(a, Drop) and a.reason == "duplicate" for a in actions)


def test_a_replay_after_the_old_one_hour_horizon_is_a_duplicate() -> None:
    router = _router()
    frame = _frame()
    assert _relayed(router.receive("a", frame, NOW))
    for later in (2 * HOUR, 3 * 24 * HOUR, MAX_AGE_MS - 60_000):
        router.tick(NOW + later)
        replay = router.receive("b", frame, NOW + later)
        assert _duplicate(replay), later
        assert not _relayed(replay)


def test_a_replay_after_a_restart_is_a_duplicate() -> None:
    router = _router()
    frames = [_frame(NOW - i * HOUR, BROADCAST) for i in range(50)]
    for frame in frames:
        router.receive("a", frame, NOW)
    puts, drops = router.take_replay_updates(NOW)
    assert puts and not drops
    restarted = _router(seed=2)
    restarted.load_replay_state(puts, NOW + 10 * HOUR)
    for frame in frames:
        assert _duplicate(restarted.receive("b", frame, NOW + 10 * HOUR))


def test_an_unrelated_packet_is_not_a_duplicate() -> None:
    router = _router()
    for i in range(200):
        router.receive("a", _frame(NOW - i * 60_000), NOW)
    router.tick(NOW + 2 * HOUR)
    fresh = [_frame(NOW - i * 60_000) for i in range(200)]
    assert not any(_duplicate(router.receive("b", f, NOW + 2 * HOUR)) for f in fresh)


def test_filter_memory_is_bounded_and_expired_buckets_are_dropped() -> None:
    rng = random.Random(3)
    replay = ReplayFilter(rng, bucket_ms=HOUR, capacity=1000)
    for i in range(20_000):
        replay.add(os.urandom(16), NOW + (i % 50) * 60_000)
    assert replay.memory_bytes() <= replay.max_memory_bytes()
    puts, _ = replay.take_updates(NOW)
    assert puts
    replay.expire(NOW + MAX_AGE_MS + 10 * HOUR)
    assert replay.memory_bytes() == 0
    _, drops = replay.take_updates(NOW + MAX_AGE_MS + 10 * HOUR)
    assert set(drops) == set(puts)


def test_false_positive_rate_at_capacity_is_about_one_in_a_million() -> None:
    replay = ReplayFilter(random.Random(4), bucket_ms=HOUR, capacity=4096)
    for _ in range(4096):
        replay.add(os.urandom(16), NOW)
    false = sum(replay.contains(os.urandom(16), NOW) for _ in range(20_000))
    assert false <= 1
    assert replay.false_positive_rate() < 2e-6


def test_router_config_can_turn_the_long_horizon_off() -> None:
    router = FloodRouter(
        ME.node_id, ME.public.sign_public, config=RouterConfig(replay_horizon=False)
    )
    router.link_up("a", NOW)
    frame = _frame()
    router.receive("a", frame, NOW)
    router.tick(NOW + 2 * HOUR)
    assert not _duplicate(router.receive("a", frame, NOW + 2 * HOUR))


def test_a_fresh_packet_is_never_taken_for_a_replay_by_a_false_positive() -> None:
    """Filters that answer "seen" to everything (every bit set) cannot stop a fresh packet:
    while the exact set is complete for the packet's lifetime so far, it alone decides."""
    later = NOW + 2 * HOUR
    fresh, old = later - 60_000, later - 70 * 60_000
    saturated = ReplayFilter(random.Random(5))
    saturated.add(os.urandom(16), fresh)
    saturated.add(os.urandom(16), old)
    puts, _ = saturated.take_updates(later)
    size = len(next(iter(puts.values()))) - 34  # a header of 34 bytes, then the bits
    all_ones = {key: blob[:34] + b"\xff" * size for key, blob in puts.items()}
    router = _router()
    router.receive("a", _frame(NOW - HOUR), NOW)  # up and listening since NOW
    router.load_replay_state(all_ones, later)
    assert not _duplicate(router.receive("a", _frame(fresh), later))
    # a packet more than an hour old is looked up in the filters (and here, falsely, found)
    assert _duplicate(router.receive("a", _frame(old), later))
