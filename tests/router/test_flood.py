"""The flood router: dedupe, verification order, rate limits, TTL, relay choice, carrying."""

from __future__ import annotations

import itertools
import random
from dataclasses import replace

import pytest

from meshchat.identity import Identity
from meshchat.router import (
    Action,
    Carry,
    Deliver,
    Drop,
    FloodRouter,
    ManagedFlood,
    NaiveFlood,
    RelayPolicy,
    RouterConfig,
    Transmit,
    Uncarry,
)
from meshchat.wire import codec
from meshchat.wire.packet import (
    BROADCAST,
    MAX_AGE_MS,
    Destination,
    Packet,
    PacketKind,
    Suite,
)
from meshchat.wire.payloads import AckBody

NOW = 1_700_000_000_000
ME = Identity.from_seeds(b"\xa1" * 32, b"\xa2" * 32)
ALICE = Identity.from_seeds(b"\xb1" * 32, b"\xb2" * 32)
BOB = Identity.from_seeds(b"\xc1" * 32, b"\xc2" * 32)
CHANNEL = b"\xcc" * 16

_ids = itertools.count(1)


def _packet(
    origin: Identity = ALICE,
    destination: Destination = BROADCAST,
    *,
    kind: PacketKind = PacketKind.MESSAGE,
    payload: bytes = b"body",
    ttl: int = 6,
    created: int = NOW,
) -> tuple[Packet, bytes]:
    packet = codec.build(
        origin,
        kind,
        destination,
        Suite.SIGNED,
        payload,
        created,
        ttl,
        next(_ids).to_bytes(16, "big"),
    )
    return packet, codec.encode(packet)


def _router(
    *links: str,
    policy: RelayPolicy | None = None,
    config: RouterConfig | None = None,
    seed: int = 1,
) -> FloodRouter:
    router = FloodRouter(
        ME.node_id,
        ME.public.sign_public,
        config=config,
        policy=policy or NaiveFlood(),
        rng=random.Random(seed),
    )
    for link in links:
        assert router.link_up(link, NOW) == []
    return router


def _of(actions: list[Action], cls: type) -> list:  # type: ignore[type-arg]
    return [a for a in actions if isinstance(a, cls)]


def _transmits(actions: list[Action]) -> list[Transmit]:
    return _of(actions, Transmit)


# -- acceptance and delivery ------------------------------------------------------------------


def test_broadcast_is_delivered_and_relayed_to_other_links() -> None:
    router = _router("a", "b", "c")
    packet, frame = _packet()
    actions = router.receive("a", frame, NOW)
    [deliver] = _of(actions, Deliver)
    assert deliver.packet == packet
    assert deliver.link == "a"
    [tx] = _transmits(actions)
    assert tx.links == ("b", "c")
    assert tx.packet_id == packet.packet_id
    assert router.has_seen(packet.packet_id)
    assert router.counters["accepted"] == 1


def test_relayed_frame_has_one_hop_more_and_one_ttl_less() -> None:
    router = _router("a", "b")
    packet, frame = _packet(ttl=5)
    [tx] = _transmits(router.receive("a", frame, NOW))
    relayed = codec.decode(tx.frame, NOW)
    assert (relayed.ttl, relayed.hops) == (4, 1)
    assert replace(relayed, ttl=5, hops=0) == packet


def test_ttl_one_is_delivered_but_not_relayed() -> None:
    router = _router("a", "b")
    _, frame = _packet(ttl=1)
    actions = router.receive("a", frame, NOW)
    assert len(_of(actions, Deliver)) == 1
    assert _transmits(actions) == []
    assert router.next_deadline() is None
    assert router.counters["ttl-spent"] == 1


def test_channel_delivered_only_to_members_but_relayed_by_all() -> None:
    member, other = _router("a", "b"), _router("a", "b")
    member.channels.add(CHANNEL)
    _, frame = _packet(destination=Destination.channel(CHANNEL))
    got_member = member.receive("a", frame, NOW)
    got_other = other.receive("a", frame, NOW)
    assert len(_of(got_member, Deliver)) == 1
    assert _of(got_other, Deliver) == []
    assert len(_transmits(got_member)) == len(_transmits(got_other)) == 1


def test_own_packet_not_delivered_nor_relayed() -> None:
    router = _router("a", "b")
    packet, frame = _packet(origin=ME)
    actions = router.receive("a", frame, NOW)
    assert actions == [Drop("own-packet", "a", packet.packet_id)]


def test_direct_message_for_us_delivered_and_not_relayed_or_carried() -> None:
    router = _router("a", "b")
    packet, frame = _packet(destination=Destination.node(ME.node_id))
    actions = router.receive("a", frame, NOW)
    assert actions == [Deliver(packet, "a")]
    assert router.next_deadline() is None
    assert router.carried_count == 0


def test_originate_sends_on_every_link_and_marks_seen() -> None:
    router = _router("a", "b")
    packet, frame = _packet(origin=ME)
    assert router.originate(packet, NOW) == [Transmit(frame, ("a", "b"), packet.packet_id)]
    # Our own packet echoed back by a neighbour is a duplicate.
    assert router.receive("b", frame, NOW) == [Drop("duplicate", "b", packet.packet_id)]


def test_originate_without_links() -> None:
    router = _router()
    packet, _ = _packet(origin=ME)
    assert router.originate(packet, NOW) == [Drop("no-links", None, packet.packet_id)]
    assert router.has_seen(packet.packet_id)


# -- rejection --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (b"", "malformed"),
        (b"\xff\x00", "malformed"),
        (b"\x00" * 3000, "oversized"),
        (b"\x18\x01", "not-canonical"),
    ],
)
def test_malformed_frames_dropped_with_reason(frame: bytes, reason: str) -> None:
    router = _router("a", "b")
    assert router.receive("a", frame, NOW) == [Drop(reason, "a")]
    assert router.counters[f"drop.{reason}"] == 1


def test_expired_and_future_packets_dropped_and_not_marked_seen() -> None:
    router = _router("a", "b")
    old, old_frame = _packet(created=NOW - MAX_AGE_MS - 1)
    new, new_frame = _packet(created=NOW + 3_600_000)
    assert router.receive("a", old_frame, NOW) == [Drop("expired", "a", old.packet_id)]
    assert router.receive("a", new_frame, NOW) == [Drop("from-future", "a", new.packet_id)]
    assert not router.has_seen(old.packet_id)
    assert not router.has_seen(new.packet_id)


def test_forgery_does_not_shadow_the_genuine_packet() -> None:
    router = _router("a", "b")
    genuine, frame = _packet()
    forged = replace(genuine, payload=b"evil")  # same packet id, signature no longer valid
    actions = router.receive("b", codec.encode(forged), NOW)
    assert actions == [Drop("bad-signature", "b", genuine.packet_id)]
    assert not router.has_seen(genuine.packet_id)
    actions = router.receive("a", frame, NOW)
    assert [d.packet for d in _of(actions, Deliver)] == [genuine]


def test_verification_can_be_turned_off() -> None:
    router = _router("a", config=RouterConfig(verify_signatures=False))
    genuine, _ = _packet()
    forged = replace(genuine, payload=b"evil")
    assert len(_of(router.receive("a", codec.encode(forged), NOW), Deliver)) == 1


# -- dedupe and relay choice ------------------------------------------------------------------


def test_duplicate_dropped() -> None:
    router = _router("a", "b")
    packet, frame = _packet()
    router.receive("a", frame, NOW)
    assert router.receive("b", frame, NOW) == [Drop("duplicate", "b", packet.packet_id)]
    assert router.receive("a", frame, NOW + 1) == [Drop("duplicate", "a", packet.packet_id)]
    assert router.counters["drop.duplicate"] == 2
    assert router.counters["accepted"] == 1


def _delayed_router(*links: str, threshold: int | None = 3) -> FloodRouter:
    # Frames here carry no RSSI (point-to-point links): the wait and the stand-down rule are
    # the policy's "without RSSI" ones; counter suppression is switched on to test it.
    policy = ManagedFlood(window_without_rssi_ms=1000, threshold_without_rssi=threshold)
    router = _router(*links, policy=policy, seed=7)
    return router


def test_relay_skips_links_that_already_sent_a_copy() -> None:
    router = _delayed_router("a", "b", "c", "d")
    packet, frame = _packet()
    actions = router.receive("a", frame, NOW)
    assert _transmits(actions) == []  # waiting for its jitter
    deadline = router.next_deadline()
    assert deadline is not None and NOW < deadline <= NOW + 1000
    assert router.receive("c", frame, NOW + 1) == [Drop("duplicate", "c", packet.packet_id)]
    assert router.tick(deadline - 1) == []
    [tx] = _transmits(router.tick(deadline))
    assert tx.links == ("b", "d")
    assert router.next_deadline() is None


def test_managed_flood_suppressed_after_threshold_copies() -> None:
    router = _delayed_router("a", "b", "c", "d", "e", threshold=3)
    _, frame = _packet()
    router.receive("a", frame, NOW)
    for link in ("b", "c", "d"):
        router.receive(link, frame, NOW + 1)
    assert _transmits(router.tick(NOW + 2000)) == []
    assert router.counters["relay.suppressed"] == 1


def test_default_managed_flood_never_stands_down_on_point_to_point_links() -> None:
    router = _delayed_router("a", "b", "c", "d", "e", threshold=None)
    _, frame = _packet()
    router.receive("a", frame, NOW)
    for link in ("b", "c", "d"):
        router.receive(link, frame, NOW + 1)
    [tx] = _transmits(router.tick(NOW + 2000))
    assert tx.links == ("e",)  # only the link that has not sent us the packet
    assert ManagedFlood().threshold_without_rssi is None


def test_managed_flood_relays_below_threshold() -> None:
    router = _delayed_router("a", "b", "c", "d", "e", threshold=3)
    _, frame = _packet()
    router.receive("a", frame, NOW)
    for link in ("b", "c"):
        router.receive(link, frame, NOW + 1)
    [tx] = _transmits(router.tick(NOW + 2000))
    assert tx.links == ("d", "e")


def test_a_forged_copy_never_replaces_what_is_relayed() -> None:
    # A copy with the same packet id but other content (and a bigger TTL, to look fresher)
    # must not change the frame this node relays: relays send only what they verified.
    router = _delayed_router("a", "b", "c", "d", threshold=5)
    genuine, frame = _packet(ttl=3)
    router.receive("a", frame, NOW)
    forged = replace(genuine, ttl=12, payload=b"forged")
    router.receive("b", codec.encode(forged), NOW + 1)
    [tx] = _transmits(router.tick(NOW + 2000))
    relayed = codec.decode(tx.frame, NOW)  # still carries a valid signature
    assert replace(relayed, ttl=genuine.ttl, hops=genuine.hops) == genuine


def _relay_after_copy(first: tuple[int, int], copy: tuple[int, int]) -> tuple[Packet, Packet]:
    """The packet as first heard (ttl, hops) and as relayed after a later copy (ttl, hops)."""
    router = _delayed_router("a", "b", "c", "d", threshold=5)
    genuine, _ = _packet(ttl=first[0])
    genuine = replace(genuine, hops=first[1])
    router.receive("a", codec.encode(genuine), NOW)
    router.receive("b", codec.encode(replace(genuine, ttl=copy[0], hops=copy[1])), NOW + 1)
    [tx] = _transmits(router.tick(NOW + 2000))
    relayed = codec.decode(tx.frame, NOW)
    assert replace(relayed, ttl=genuine.ttl, hops=genuine.hops) == genuine
    return genuine, relayed


def test_a_copy_that_came_a_shorter_way_raises_the_ttl_of_the_waiting_relay() -> None:
    # The first copy came the long way round (ttl 3 left); one heard while waiting came
    # straight (ttl 9, one hop): the relay goes on with the better one, as naive flooding's
    # would, so pruning does not shorten the flood.
    _, relayed = _relay_after_copy((3, 7), (9, 1))
    assert (relayed.ttl, relayed.hops) == (8, 2)


def test_a_copy_with_less_ttl_changes_nothing() -> None:
    _, relayed = _relay_after_copy((9, 1), (3, 6))
    assert (relayed.ttl, relayed.hops) == (8, 2)


def test_a_raised_ttl_is_still_clamped_by_the_hop_count() -> None:
    # ttl + hops never exceeds MAX_TTL, whatever a copy claims.
    _, relayed = _relay_after_copy((3, 1), (16, 9))
    assert relayed.ttl + relayed.hops <= 16 and relayed.hops == 10


def test_no_transmit_when_every_link_already_has_it() -> None:
    router = _delayed_router("a", "b")
    _, frame = _packet()
    router.receive("a", frame, NOW)
    router.receive("b", frame, NOW + 1)
    assert _transmits(router.tick(NOW + 2000)) == []


def test_link_down_is_not_relayed_to() -> None:
    router = _delayed_router("a", "b", "c")
    _, frame = _packet()
    router.receive("a", frame, NOW)
    router.link_down("c", NOW)
    assert router.links == ["a", "b"]
    [tx] = _transmits(router.tick(NOW + 2000))
    assert tx.links == ("b",)


def test_pending_relays_are_bounded() -> None:
    router = _router(
        "a", "b", "c", "d", policy=ManagedFlood(jitter_ms=1000), config=RouterConfig(max_pending=2)
    )
    drops = []
    for _ in range(10):
        _, frame = _packet()
        drops += [a for a in router.receive("a", frame, NOW) if isinstance(a, Drop)]
    assert 1 <= len(drops) <= 8
    assert all(d.reason == "pending-full" for d in drops)
    assert len(router._pending) <= 2


# -- rate limiting ----------------------------------------------------------------------------


def test_rate_limit_is_per_link() -> None:
    router = _router("a", "b", "c", config=RouterConfig(link_rate=1, link_burst=3))
    frames = [_packet()[1] for _ in range(6)]
    results = [router.receive("a", f, NOW) for f in frames[:4]]
    assert all(_of(r, Deliver) for r in results[:3])
    assert results[3] == [Drop("rate-limited", "a")]
    assert _of(router.receive("b", frames[4], NOW), Deliver)  # another link has its own bucket
    assert router.receive("a", frames[5], NOW + 500) == [Drop("rate-limited", "a")]
    assert _of(router.receive("a", frames[3], NOW + 1000), Deliver)
    assert router.counters["drop.rate-limited"] == 2


def test_rate_limit_applies_before_parsing() -> None:
    router = _router("a", config=RouterConfig(link_rate=1, link_burst=2))
    router.receive("a", b"junk", NOW)
    router.receive("a", b"junk", NOW)
    _, frame = _packet()
    assert router.receive("a", frame, NOW) == [Drop("rate-limited", "a")]


def test_local_source_is_not_rate_limited() -> None:
    router = _router("a", config=RouterConfig(link_rate=1, link_burst=1))
    for _ in range(5):
        assert _of(router.receive(None, _packet()[1], NOW), Deliver)


# -- store-and-forward ------------------------------------------------------------------------


def test_direct_message_for_another_node_is_carried_and_reoffered() -> None:
    router = _router("a", "b")
    packet, frame = _packet(destination=Destination.node(BOB.node_id))
    actions = router.receive("a", frame, NOW)
    assert _of(actions, Deliver) == []
    [carry] = _of(actions, Carry)
    [tx] = _transmits(actions)
    assert carry.packet == packet.relayed()
    assert carry.frame == tx.frame
    assert carry.expires_ms == NOW + MAX_AGE_MS
    assert router.carried_count == 1
    # A neighbour that appears later is offered the carried packet.
    assert router.link_up("new", NOW + 5000) == [Transmit(carry.frame, ("new",), packet.packet_id)]


def test_ack_seen_uncarries() -> None:
    router = _router("a", "b")
    packet, frame = _packet(destination=Destination.node(BOB.node_id))
    router.receive("a", frame, NOW)
    ack_body = AckBody(packet.packet_id, b"\x01" * 16, BOB.public.box_public).encode()
    ack_packet, ack = _packet(
        BOB, Destination.node(ALICE.node_id), kind=PacketKind.ACK, payload=ack_body
    )
    actions = router.receive("b", ack, NOW + 10)
    assert Uncarry(packet.packet_id) in actions
    # The ack itself is a direct packet for another node, so it is carried in turn.
    [carry] = _of(actions, Carry)
    assert carry.packet.packet_id == ack_packet.packet_id
    assert router.carried_count == 1
    offered = [t.packet_id for t in _transmits(router.link_up("new", NOW + 20))]
    assert offered == [ack_packet.packet_id]


def test_packet_whose_ack_was_seen_is_not_carried() -> None:
    router = _router("a", "b")
    packet, frame = _packet(destination=Destination.node(BOB.node_id))
    ack_body = AckBody(packet.packet_id, b"\x01" * 16, BOB.public.box_public).encode()
    _, ack = _packet(BOB, Destination.node(ALICE.node_id), kind=PacketKind.ACK, payload=ack_body)
    router.receive("b", ack, NOW)
    carried_before = router.carried_count  # the ack
    actions = router.receive("a", frame, NOW + 10)
    assert _of(actions, Carry) == []
    assert len(_transmits(actions)) == 1  # still relayed, just not kept
    assert router.carried_count == carried_before


def test_ack_for_us_is_delivered() -> None:
    router = _router("a", "b")
    ack_body = AckBody(b"\x09" * 16, b"\x01" * 16, BOB.public.box_public).encode()
    packet, ack = _packet(BOB, Destination.node(ME.node_id), kind=PacketKind.ACK, payload=ack_body)
    assert router.receive("a", ack, NOW) == [Deliver(packet, "a")]


def test_carried_packets_expire() -> None:
    router = _router("a", "b", config=RouterConfig(carry_ms=60_000))
    packet, frame = _packet(destination=Destination.node(BOB.node_id))
    router.receive("a", frame, NOW)
    assert router.tick(NOW + 59_999) == []
    assert router.tick(NOW + 60_000) == [Uncarry(packet.packet_id)]
    assert router.carried_count == 0


def test_carried_packets_are_bounded() -> None:
    router = _router("a", "b", config=RouterConfig(max_carried=3))
    ids = []
    uncarried = []
    for i in range(5):
        packet, frame = _packet(destination=Destination.node(BOB.node_id), created=NOW + i)
        ids.append(packet.packet_id)
        uncarried += _of(router.receive("a", frame, NOW + i), Uncarry)
    assert router.carried_count == 3
    assert [u.packet_id for u in uncarried] == ids[:2]  # the soonest to expire go first


def test_reoffer_is_batched_newest_first() -> None:
    router = _router("a", "b", config=RouterConfig(reoffer_batch=2))
    ids = []
    for i in range(4):
        packet, frame = _packet(destination=Destination.node(BOB.node_id), created=NOW + i)
        ids.append(packet.packet_id)
        router.receive("a", frame, NOW + i)
    offered = [t.packet_id for t in _transmits(router.link_up("new", NOW + 10))]
    assert offered == [ids[3], ids[2]]


def test_restore_carried() -> None:
    router = _router()
    packet, frame = _packet(destination=Destination.node(BOB.node_id))
    router.restore_carried(frame, NOW + 1000, NOW)
    router.restore_carried(b"junk", NOW + 1000, NOW)
    router.restore_carried(_packet()[1], NOW - 1, NOW)  # already expired
    assert router.carried_count == 1
    assert router.has_seen(packet.packet_id)
    assert router.link_up("a", NOW) == [Transmit(frame, ("a",), packet.packet_id)]


# -- bounds and determinism -------------------------------------------------------------------


def test_seen_memory_bounded_under_a_flood_of_distinct_ids() -> None:
    capacity = 1000
    config = RouterConfig(
        seen_capacity=capacity, verify_signatures=False, link_rate=1e9, link_burst=1e9
    )
    router = _router("a", config=config)
    template, _ = _packet(ttl=1)
    for n in range(20_000):
        frame = codec.encode(replace(template, packet_id=n.to_bytes(16, "big")))
        router.receive("a", frame, NOW)
        assert router.seen_count <= capacity
    assert router.seen_count == capacity
    assert router.counters["accepted"] == 20_000


def test_seen_entries_expire_on_tick() -> None:
    router = _router("a", config=RouterConfig(seen_ttl_ms=1000))
    packet, frame = _packet(ttl=1)
    router.receive("a", frame, NOW)
    router.tick(NOW + 999)
    assert router.has_seen(packet.packet_id)
    router.tick(NOW + 1000)
    assert not router.has_seen(packet.packet_id)


def _script() -> list[tuple[str, str, bytes, int]]:
    """A fixed sequence of inputs: receives, duplicates, ticks and link changes."""
    steps: list[tuple[str, str, bytes, int]] = []
    t = NOW
    frames = [_packet()[1] for _ in range(15)]
    frames += [_packet(destination=Destination.node(BOB.node_id))[1] for _ in range(5)]
    for i, frame in enumerate(frames):
        t += 7
        steps.append(("receive", "abcd"[i % 4], frame, t))
        steps.append(("receive", "abcd"[(i + 1) % 4], frame, t + 3))
        if i % 3 == 0:
            steps.append(("tick", "", b"", t + 20))
        if i == 10:
            steps.append(("down", "c", b"", t))
        if i == 12:
            steps.append(("up", "e", b"", t))
    steps.append(("tick", "", b"", t + 10_000))
    return steps


def _run(seed: int, steps: list[tuple[str, str, bytes, int]]) -> list[list[Action]]:
    router = _router("a", "b", "c", "d", policy=ManagedFlood(), seed=seed)
    out: list[list[Action]] = []
    for op, link, frame, t in steps:
        if op == "receive":
            out.append(router.receive(link, frame, t))
        elif op == "tick":
            out.append(router.tick(t))
        elif op == "down":
            out.append(router.link_down(link, t))
        else:
            out.append(router.link_up(link, t))
    return out


def test_same_seed_and_inputs_give_identical_actions() -> None:
    steps = _script()
    first = _run(42, steps)
    assert first == _run(42, steps)
    assert sum(len(_transmits(a)) for a in first) > 0
    # The seed matters (jitter order), so the equality above is not trivial.
    timings = {
        tuple(i for i, a in enumerate(_run(seed, steps)) if _transmits(a)) for seed in range(5)
    }
    assert len(timings) > 1


# -- found while testing ----------------------------------------------------------------------


def test_frame_after_link_down_does_not_revive_the_link() -> None:
    router = _router("a", "b")
    router.link_down("b", NOW)
    _, frame = _packet()
    router.receive("b", frame, NOW + 1)
    assert router.links == ["a"]
    packet, _ = _packet(origin=ME)
    [tx] = router.originate(packet, NOW + 2)
    assert isinstance(tx, Transmit) and tx.links == ("a",)


def test_ack_forged_by_a_third_node_does_not_uncarry() -> None:
    mallory = Identity.from_seeds(b"\xd1" * 32, b"\xd2" * 32)
    router = _router("a", "b")
    packet, frame = _packet(destination=Destination.node(BOB.node_id))
    router.receive("a", frame, NOW)
    body = AckBody(packet.packet_id, b"\x01" * 16, BOB.public.box_public).encode()
    _, forged = _packet(mallory, Destination.node(ALICE.node_id), kind=PacketKind.ACK, payload=body)
    actions = router.receive("b", forged, NOW + 10)
    assert Uncarry(packet.packet_id) not in actions
    offered = [t.packet_id for t in _transmits(router.link_up("new", NOW + 20))]
    assert packet.packet_id in offered
