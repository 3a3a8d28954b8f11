"""Relay policies: each one's wait, cancel and link choice, alone and inside a real router."""

from __future__ import annotations

import itertools
import math
import random

from hypothesis import given
from hypothesis import strategies as st

from meshchat.identity import Identity
from meshchat.router import Drop, FloodRouter, RouterConfig, Transmit
from meshchat.router.policy import (
    POLICIES,
    ContentionWindow,
    FirstCopy,
    ManagedFlood,
    NaiveFlood,
    RandomFanout,
    RelayPolicy,
)
from meshchat.wire import codec
from meshchat.wire.packet import BROADCAST, Packet, PacketKind, Suite

NOW = 1_700_000_000_000
ALICE = Identity.from_seeds(b"\xb1" * 32, b"\xb2" * 32)
ME = Identity.from_seeds(b"\xa1" * 32, b"\xa2" * 32)
_ids = itertools.count(1)


def _packet(ttl: int = 6) -> Packet:
    return codec.build(
        ALICE,
        PacketKind.MESSAGE,
        BROADCAST,
        Suite.SIGNED,
        b"hello",
        NOW,
        ttl,
        next(_ids).to_bytes(16, "big"),
    )


def _packet_relayed(frame: bytes) -> Packet:
    return codec.parse(frame).relayed()


def _event(rssi: float | None, degree: int = 10, seed: int = 1) -> FirstCopy:
    return FirstCopy(_packet(), "a", rssi, degree, random.Random(seed))


def _mean_wait(policy: RelayPolicy, rssi: float | None, runs: int = 200) -> float:
    waits = [policy.first_copy(_event(rssi, seed=s)) for s in range(runs)]
    assert all(w is not None for w in waits)
    return sum(w for w in waits if w is not None) / runs


# -- managed (meshchat's default) ---------------------------------------------------------


def test_managed_farther_receivers_wait_less() -> None:
    policy = ManagedFlood()
    edge, mid, near = (_mean_wait(policy, r) for r in (-96.0, -88.0, -70.0))
    assert edge < mid < near
    assert policy.base_ms <= edge <= policy.base_ms + policy.jitter_ms
    assert near >= policy.base_ms + 0.9 * policy.window(10)


def test_managed_wait_spreads_relays_by_area() -> None:
    # Half the sender's neighbours are nearer than d = r / sqrt(2): that node waits the base
    # plus half the window.
    policy = ManagedFlood(jitter_ms=0)
    rssi_half = policy.edge_dbm + 10 * policy.path_loss_exponent * math.log10(math.sqrt(2))
    wait = policy.first_copy(_event(rssi_half))
    assert wait is not None
    assert abs(wait - (policy.base_ms + policy.window(10) / 2)) <= 2


def test_managed_window_grows_with_links_up_to_its_cap() -> None:
    policy = ManagedFlood(window_ms=300, window_per_link_ms=6.0)
    assert policy.window(10) == 60.0
    assert policy.window(45) == 270.0
    assert policy.window(100) == 300.0
    assert ManagedFlood(window_ms=250, window_per_link_ms=None).window(10) == 250.0


@given(st.integers(0, 2000), st.integers(0, 2000))
def test_managed_window_is_bounded_and_monotone_in_links(a: int, b: int) -> None:
    policy = ManagedFlood()
    low, high = sorted((a, b))
    assert 0.0 <= policy.window(low) <= policy.window(high) <= policy.window_ms


def test_managed_farthest_receiver_goes_after_about_one_slot_at_any_density() -> None:
    # The j-th farthest of k receivers has about j of k of the sender's neighbours nearer, so
    # it waits about j slots of window_per_link_ms, whatever k: the first relay of a hop is
    # as quick in a crowd as in a village street.
    policy = ManagedFlood(jitter_ms=0)
    assert policy.window_per_link_ms is not None
    for degree in (8, 20, 45):
        share = 1.0 / degree  # the farthest receiver: one neighbour in `degree` is farther
        ratio = math.sqrt(1.0 - share)
        rssi = policy.edge_dbm - 10 * policy.path_loss_exponent * math.log10(ratio)
        wait = policy.first_copy(_event(rssi, degree=degree))
        assert wait is not None
        assert abs(wait - (policy.base(degree) + policy.window_per_link_ms)) <= 1


def test_managed_without_rssi_waits_uniformly() -> None:
    policy = ManagedFlood()
    waits = [policy.first_copy(_event(None, seed=s)) for s in range(300)]
    assert all(w is not None and 0 <= w <= policy.window_without_rssi_ms for w in waits)
    assert len(set(waits)) > policy.window_without_rssi_ms // 2


def test_managed_sparse_node_relays_at_once() -> None:
    assert ManagedFlood(min_degree=2).first_copy(_event(-60.0, degree=2)) == 0
    wait = ManagedFlood(min_degree=2).first_copy(_event(-60.0, degree=3))
    assert wait is not None and wait > 0


def test_managed_cancels_after_threshold_copies_or_one_from_beside() -> None:
    policy = ManagedFlood(threshold=2, beside_ratio=0.45, dense_uncovered=None)
    far, beside = -93.0, -80.0  # about 0.76 and 0.23 of the range away
    dense = policy.dense_degree
    assert not policy.copy_heard(1, far, dense)
    assert policy.copy_heard(2, far, dense)
    assert policy.copy_heard(1, beside, dense)
    # without a signal (point-to-point links) the default never stands down ...
    assert not any(policy.copy_heard(n, None, dense) for n in range(1, 50))
    # ... unless counter suppression is asked for
    assert ManagedFlood(threshold_without_rssi=3).copy_heard(3, None, dense)
    assert not ManagedFlood(threshold_without_rssi=3).copy_heard(2, None, dense)
    assert not ManagedFlood(beside_ratio=None).copy_heard(1, beside, dense)
    assert policy.choose_links(["a", "b"], random.Random(1)) == ["a", "b"]


def test_managed_sparse_patch_waits_longer_and_needs_more_copies() -> None:
    policy = ManagedFlood(
        jitter_ms=0, dense_degree=25, threshold=2, sparse_threshold=3, dense_uncovered=None
    )
    assert policy.base(24) == policy.base_ms > policy.base(25) == policy.dense_base_ms
    edge = policy.edge_dbm  # the farthest receivers: no neighbour of the sender is farther
    assert policy.first_copy(_event(edge, degree=24)) == policy.base_ms
    assert policy.first_copy(_event(edge, degree=25)) == policy.dense_base_ms
    far = -93.0
    assert not policy.copy_heard(2, far, 24)
    assert policy.copy_heard(3, far, 24)
    assert policy.copy_heard(2, far, 25)


def _rssi_at(policy: ManagedFlood, ratio: float) -> float:
    """The RSSI of a copy from a relay ``ratio * r`` away (the policy's path-loss model)."""
    return policy.edge_dbm - 10 * policy.path_loss_exponent * math.log10(ratio)


def test_managed_uncovered_share_is_the_area_outside_the_relays_range() -> None:
    policy = ManagedFlood()
    at = [policy.uncovered_after(1.0, _rssi_at(policy, d)) for d in (0.01, 0.6, 1.0)]
    # Two discs of radius r: 0.6 r apart they share 62% of their area, r apart 39%.
    assert at[0] < 0.01
    assert abs(at[1] - 0.376) < 0.005
    assert abs(at[2] - 0.609) < 0.005
    # A copy estimated beyond the range was still heard: it counts as from the edge.
    assert policy.uncovered_after(1.0, _rssi_at(policy, 1.8)) == at[2]
    # Copies combine as independent: each leaves its share of what the others left.
    assert abs(policy.uncovered_after(0.5, _rssi_at(policy, 1.0)) - 0.5 * at[2]) < 1e-12
    # Point-to-point links (no signal) cover nothing the node can reckon with.
    assert policy.uncovered_after(0.7, None) == 0.7
    assert policy.uncovered_after(0.7, math.nan) == 0.7
    for other in (NaiveFlood(), ContentionWindow(), RandomFanout()):
        assert other.uncovered_after(0.7, -60.0) == 0.7


def test_managed_dense_node_stands_down_by_area_not_by_count() -> None:
    policy = ManagedFlood(dense_degree=25, dense_uncovered=0.45, beside_ratio=0.6)
    edge, mid = _rssi_at(policy, 1.0), _rssi_at(policy, 0.7)
    one_edge = policy.uncovered_after(1.0, edge)
    one_mid = policy.uncovered_after(1.0, mid)
    # One relay heard from the edge of range leaves 61% uncovered: keep waiting; a second
    # one leaves 37%: stand down.
    assert not policy.copy_heard(1, edge, 25, one_edge)
    assert policy.copy_heard(2, edge, 25, policy.uncovered_after(one_edge, edge))
    # One relay from 0.7 r already covers enough (44% left), where a count of two copies
    # and "beside" at 0.6 r would have waited for another.
    assert policy.copy_heard(1, mid, 25, one_mid)
    assert not ManagedFlood(dense_uncovered=None, beside_ratio=0.6).copy_heard(1, mid, 25, one_mid)
    # Below dense_degree links the count of copies still decides.
    assert not policy.copy_heard(1, mid, 24, one_mid)
    assert not policy.copy_heard(2, edge, 24, 0.0)
    assert policy.copy_heard(3, edge, 24, 1.0)


@given(
    st.integers(0, 200),
    st.integers(0, 200),
    st.floats(-120.0, -30.0),
    st.integers(1, 20),
)
def test_managed_more_links_never_mean_a_longer_base_or_more_copies(
    a: int, b: int, rssi: float, copies: int
) -> None:
    # Monotone in density: a node in a denser patch never needs more copies to stand down,
    # and the farthest receiver never waits longer there (its slot is the same at any density).
    policy = ManagedFlood(jitter_ms=0)
    low, high = sorted((a, b))
    uncovered = 1.0
    for _ in range(copies):
        uncovered = policy.uncovered_after(uncovered, rssi)
    assert policy.copy_heard(copies, rssi, low, uncovered) <= policy.copy_heard(
        copies, rssi, high, uncovered
    )
    if low > policy.min_degree:
        edge = policy.edge_dbm
        w_low, w_high = (policy.first_copy(_event(edge, degree=d)) for d in (low, high))
        assert w_low is not None and w_high is not None and w_high <= w_low


@given(st.floats(allow_nan=True, allow_infinity=True) | st.none(), st.integers(0, 500))
def test_policies_wait_a_bounded_time_for_any_signal(rssi: float | None, degree: int) -> None:
    for policy in POLICIES.values():
        wait = policy.first_copy(_event(rssi, degree=degree))
        assert wait is not None
        assert 0 <= wait <= 2000


# -- naive, Meshtastic-style, bitchat-style ------------------------------------------------


def test_naive_relays_at_once_and_never_cancels() -> None:
    policy = NaiveFlood()
    assert policy.first_copy(_event(-50.0)) == 0
    assert not policy.copy_heard(100, -40.0, 10)


def test_contention_window_is_smaller_for_weak_signals() -> None:
    policy = ContentionWindow()
    weak = [policy.first_copy(_event(-100.0, seed=s)) for s in range(200)]
    strong = [policy.first_copy(_event(-40.0, seed=s)) for s in range(200)]
    assert max(w for w in weak if w is not None) < 2**policy.cw_min * policy.slot_ms
    assert max(w for w in strong if w is not None) >= 2**policy.cw_min * policy.slot_ms
    assert all(w is not None and w < 2**policy.cw_max * policy.slot_ms for w in strong)


def test_contention_window_cancels_on_first_copy() -> None:
    policy = ContentionWindow()
    assert policy.copy_heard(1, None, 10)
    assert not policy.copy_heard(0, None, 10)


def test_random_fanout_picks_about_log2_links() -> None:
    policy = RandomFanout()
    links = [f"l{i}" for i in range(16)]
    chosen = policy.choose_links(links, random.Random(3))
    assert len(chosen) == 4 and len(set(chosen)) == 4 and set(chosen) <= set(links)
    assert policy.choose_links(["a", "b"], random.Random(3)) == ["a", "b"]
    assert len(policy.choose_links(links[:5], random.Random(3))) == 3
    assert not policy.copy_heard(50, None, 10)


def test_registry_names_every_strategy() -> None:
    assert set(POLICIES) == {"naive", "managed", "meshtastic", "bitchat", "coverage"}
    assert all(name == policy.name for name, policy in POLICIES.items())


# -- inside the router ---------------------------------------------------------------------


def _router(policy: RelayPolicy, *links: str) -> FloodRouter:
    router = FloodRouter(
        ME.node_id,
        ME.public.sign_public,
        config=RouterConfig(),
        policy=policy,
        rng=random.Random(5),
    )
    for link in links:
        router.link_up(link, NOW)
    return router


def test_router_with_contention_window_stands_down_when_a_relay_is_heard() -> None:
    router = _router(ContentionWindow(), "a", "b", "c")
    frame = codec.encode(_packet())
    router.receive("a", frame, NOW, rssi=-40.0)  # strong: a wide window
    deadline = router.next_deadline()
    assert deadline is not None
    router.receive("b", frame, NOW + 1, rssi=-90.0)
    assert [a for a in router.tick(deadline) if isinstance(a, Transmit)] == []
    assert router.counters["relay.suppressed"] == 1


def test_router_with_managed_flood_in_a_crowd_stands_down_on_one_near_relay() -> None:
    # 30 links (a crowd): a relay heard from 0.7 r covers enough of our range, so ours is
    # cancelled; the same copy heard with 10 links (the count decides there) is not enough.
    policy = ManagedFlood()
    near = _rssi_at(policy, 0.7)
    outcomes = []
    for degree in (30, 10):
        router = _router(policy, *(f"l{i}" for i in range(degree)))
        frame = codec.encode(_packet())
        router.receive("l0", frame, NOW, rssi=_rssi_at(policy, 0.3))  # near the sender: waits
        router.receive("l1", codec.encode(_packet_relayed(frame)), NOW + 1, rssi=near)
        sent = [a for a in router.tick(NOW + 5000) if isinstance(a, Transmit)]
        outcomes.append(len(sent))
    assert outcomes == [0, 1]


def test_router_with_managed_flood_in_a_crowd_combines_far_relays() -> None:
    # Two relays from the edge of range leave 37% of a crowded node's range uncovered (one
    # leaves 61%): the second cancels, the first alone does not.
    policy = ManagedFlood()
    edge = _rssi_at(policy, 1.0)
    for copies, expected in ((1, 1), (2, 0)):
        router = _router(policy, *(f"l{i}" for i in range(30)))
        frame = codec.encode(_packet())
        router.receive("l0", frame, NOW, rssi=_rssi_at(policy, 0.3))
        for i in range(copies):
            router.receive(f"l{i + 1}", frame, NOW + 1 + i, rssi=edge)
        sent = [a for a in router.tick(NOW + 5000) if isinstance(a, Transmit)]
        assert len(sent) == expected


def test_router_with_fanout_sends_on_a_random_subset() -> None:
    links = [f"l{i}" for i in range(9)]
    router = _router(RandomFanout(), *links)
    router.receive("l0", codec.encode(_packet()), NOW)
    deadline = router.next_deadline()
    assert deadline is not None
    [tx] = [a for a in router.tick(deadline) if isinstance(a, Transmit)]
    assert len(tx.links) == 3  # ceil(log2(8 candidates))
    assert "l0" not in tx.links


def test_router_recognises_duplicates_before_parsing_them() -> None:
    router = _router(ManagedFlood(threshold_without_rssi=2), "a", "b", "c", "d")
    packet = _packet()
    frame = codec.encode(packet)
    router.receive("a", frame, NOW, rssi=-60.0)
    # A copy relayed one hop further differs in ttl/hops but carries the same id.
    relayed = codec.encode(packet.relayed())
    assert router.receive("b", relayed, NOW + 1) == [Drop("duplicate", "b", packet.packet_id)]
    assert router.receive("c", relayed, NOW + 2) == [Drop("duplicate", "c", packet.packet_id)]
    assert [a for a in router.tick(NOW + 5000) if isinstance(a, Transmit)] == []
    assert router.counters["drop.duplicate"] == 2
    # A truncated frame that starts like a seen packet counts as a copy (a replay of the
    # genuine frame would do the same); other garbage still goes to the parser.
    [replay] = router.receive("d", b"\x8b" + frame[1:20], NOW + 3)
    assert isinstance(replay, Drop) and replay.reason == "duplicate"
    [garbage] = router.receive("d", b"\x00" * 30, NOW + 4)
    assert isinstance(garbage, Drop) and garbage.reason != "duplicate"
