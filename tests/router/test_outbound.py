"""Outbound shares: one neighbour's frames cannot make us exceed another's allowance for us."""

from __future__ import annotations

import itertools
import random

from meshchat.identity import Identity
from meshchat.router import FloodRouter, NaiveFlood, RouterConfig, Transmit
from meshchat.router.actions import Action
from meshchat.router.outbound import OutboundShares
from meshchat.router.ratelimit import TokenBucket
from meshchat.wire import codec
from meshchat.wire.packet import BROADCAST, Destination, Packet, PacketKind, Suite
from meshchat.wire.payloads import AckBody

NOW = 1_700_000_000_000
ME = Identity.from_seeds(b"\xa1" * 32, b"\xa2" * 32)
MALLORY = Identity.from_seeds(b"\xb1" * 32, b"\xb2" * 32)
BOB = Identity.from_seeds(b"\xc1" * 32, b"\xc2" * 32)
_ids = itertools.count(1)


def _admitted(shares: OutboundShares, link: str, cause: str | None, n: int, now: int) -> int:
    return sum(shares.admit(link, cause, now) for _ in range(n))


def test_own_frames_are_never_refused() -> None:
    shares = OutboundShares(200, 400)
    assert _admitted(shares, "b", None, 2000, NOW) == 2000


def test_one_cause_gets_half_of_a_link() -> None:
    shares = OutboundShares(200, 400)
    sent = sum(_admitted(shares, "b", "m", 50, NOW + t) for t in range(0, 10_000, 10))
    # the cause's burst (200) and 100 frames a second for 10 s; the total would allow 160/s
    assert 1_150 <= sent <= 1_210


def test_third_parties_share_the_total_and_leave_the_reserve() -> None:
    shares = OutboundShares(200, 400)
    strangers = [f"s{k}" for k in range(20)]
    sent = 0
    for t in range(0, 5_000, 5):  # twenty links, each far over its share, for 5 s
        sent += sum(shares.admit("b", cause, NOW + t) for cause in strangers)
    # the total's burst above the reserve (320 - 80) and 160 a second
    assert 1_000 <= sent <= 1_045
    assert not shares.admit("b", "s0", NOW + 5_000)
    # what is left serves the link's own traffic and ours
    assert shares.admit("b", "b", NOW + 5_000)
    assert shares.admit("b", None, NOW + 5_000)


def test_a_forgotten_link_starts_afresh() -> None:
    shares = OutboundShares(200, 400)
    _admitted(shares, "b", "m", 500, NOW)
    assert not shares.admit("b", "m", NOW)
    shares.forget("m")
    assert shares.admit("b", "m", NOW)


def _ack(to: Identity, now_ms: int) -> Packet:
    body = AckBody(next(_ids).to_bytes(16, "big"), b"m" * 16, ME.public.box_public)
    return codec.build(
        ME,
        PacketKind.ACK,
        Destination.node(to.node_id),
        Suite.SIGNED,
        body.encode(),
        now_ms,
        6,
        next(_ids).to_bytes(16, "big"),
    )


def _message(origin: Identity, now_ms: int) -> bytes:
    packet = codec.build(
        origin,
        PacketKind.MESSAGE,
        BROADCAST,
        Suite.SIGNED,
        b"hello",
        now_ms,
        6,
        next(_ids).to_bytes(16, "big"),
    )
    return codec.encode(packet)


def _flood_through(config: RouterConfig) -> tuple[int, int, int]:
    """Mallory sends us 200 messages a second on link m (its whole allowance) for 10 s; Bob
    sends 2 a second on link b. We relay each and ack each, charging the ack to the link the
    message came by. Returns (frames Bob's allowance for us refused, acks of Bob's messages
    sent to Bob, of how many)."""
    router = FloodRouter(
        ME.node_id,
        ME.public.sign_public,
        config=config,
        policy=NaiveFlood(),
        rng=random.Random(1),
    )
    for link in ("m", "b", "c"):
        router.link_up(link, NOW)
    bobs_allowance = TokenBucket(config.link_rate, config.link_burst, NOW)
    refused = bobs_acks_sent = bobs_messages = 0

    def to_bob(actions: list[Action], now_ms: int, bobs_ack: bytes | None = None) -> None:
        nonlocal refused, bobs_acks_sent
        for action in actions:
            if isinstance(action, Transmit) and "b" in action.links:
                if not bobs_allowance.take(now_ms):
                    refused += 1
                if bobs_ack is not None and action.packet_id == bobs_ack:
                    bobs_acks_sent += 1

    for t in range(0, 10_000, 5):
        now = NOW + t
        for source, origin in (("m", MALLORY), ("b", BOB)):
            if source == "b" and t % 500:
                continue
            to_bob(router.receive(source, _message(origin, now), now), now)
            to_bob(router.tick(now), now)
            ack = _ack(origin, now)
            bobs = ack.packet_id if source == "b" else None
            bobs_messages += bobs is not None
            to_bob(router.originate(ack, now, source), now, bobs)
    return refused, bobs_acks_sent, bobs_messages


def test_a_neighbours_flood_does_not_crowd_out_anothers_acks() -> None:
    refused, acked, messages = _flood_through(RouterConfig())
    assert refused == 0
    assert acked == messages == 20


def test_without_shares_the_flood_overruns_the_other_neighbour() -> None:
    unlimited = RouterConfig(outbound_total_share=1e6, outbound_cause_share=1e6)
    refused, _, _ = _flood_through(unlimited)
    assert refused > 1_000  # two frames to Bob for each of Mallory's: 400/s against 200/s


def test_frames_from_the_internet_share_one_cause() -> None:
    router = FloodRouter(
        ME.node_id, ME.public.sign_public, policy=NaiveFlood(), rng=random.Random(1)
    )
    router.link_up("b", NOW)
    relayed = 0
    for _ in range(400):  # a relay's burst injected at once by an internet transport
        for action in router.receive(None, _message(MALLORY, NOW), NOW):
            relayed += isinstance(action, Transmit) and "b" in action.links
    assert relayed == 200  # half of b's allowance (its burst), not all 400
    assert router.counters["drop.outbound-share"] == 200
