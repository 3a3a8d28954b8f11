"""Store-and-forward under junk: carried packets are bounded per link, per destination and
overall, and strangers' junk never evicts what a node carries for its contacts.

The attack these tests replay (found on live daemons): junk packets to made-up node ids,
dated 9 minutes ahead (inside the accepted clock skew), from one stranger link, evicted the
message a node was carrying for an absent contact.
"""

from __future__ import annotations

import os
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshchat.errors import UsageError
from meshchat.identity import Identity
from meshchat.router import Carry, FloodRouter, NaiveFlood, RouterConfig, Transmit, Uncarry
from meshchat.router.carry import CarriedEntry, CarriedSet
from meshchat.wire import codec
from meshchat.wire.packet import Destination, PacketKind, Suite
from meshchat.wire.payloads import AckBody

NOW = 1_700_000_000_000
ME = Identity.from_seeds(b"\xa1" * 32, b"\xa2" * 32)
ALICE = Identity.from_seeds(b"\xb1" * 32, b"\xb2" * 32)
BOB = Identity.from_seeds(b"\xc1" * 32, b"\xc2" * 32)
MALLORY = Identity.from_seeds(b"\xd1" * 32, b"\xd2" * 32)
NINE_MINUTES = 9 * 60 * 1000


def _router(config: RouterConfig | None = None) -> FloodRouter:
    router = FloodRouter(
        ME.node_id, ME.public.sign_public, config=config, policy=NaiveFlood(), rng=random.Random(1)
    )
    for link in ("friend", "junk", "other"):
        router.link_up(link, NOW)
    return router


def _frame(origin: Identity, dest: bytes, created: int) -> tuple[bytes, bytes]:
    packet = codec.build(
        origin, PacketKind.MESSAGE, Destination.node(dest), Suite.BOX, b"x" * 40, created, 6
    )
    return packet.packet_id, codec.encode(packet)


def _junk(router: FloodRouter, count: int, now: int, link: str = "junk") -> int:
    """``count`` junk packets to made-up node ids dated 9 minutes ahead; returns the clock."""
    for _ in range(count):
        now += 6  # under the link's rate limit, so every packet is accepted
        _, frame = _frame(MALLORY, os.urandom(16), now + NINE_MINUTES)
        router.receive(link, frame, now)
    return now


def test_junk_from_strangers_does_not_evict_a_message_carried_for_an_absent_contact() -> None:
    router = _router()
    router.contacts.add(BOB.node_id)
    packet_id, frame = _frame(ALICE, BOB.node_id, NOW - 3600_000)
    actions = router.receive("friend", frame, NOW)
    assert any(isinstance(a, Carry) for a in actions)
    now = _junk(router, 5100, NOW)
    assert packet_id in router.carried_ids()
    # Bob comes back: his message is among the first offered to him.
    offered = router.link_up("bob", now)
    assert any(isinstance(a, Transmit) and a.packet_id == packet_id for a in offered)


def test_junk_from_one_link_evicts_only_its_own_packets() -> None:
    router = _router()
    kept = [_frame(ALICE, os.urandom(16), NOW - 60_000) for _ in range(10)]
    for _, frame in kept:
        router.receive("friend", frame, NOW)
    _junk(router, 5100, NOW)
    carried = router.carried_ids()
    assert all(pid in carried for pid, _ in kept)
    assert router.carried_count <= router.config.max_carried_per_link + len(kept)


def test_a_packet_acked_later_is_not_evicted_for_its_conversation() -> None:
    """After a destination acked once, what the node carries for it outranks junk."""
    router = _router(RouterConfig(max_carried=200, max_carried_per_link=150))
    first_id, first = _frame(ALICE, BOB.node_id, NOW)
    router.receive("friend", first, NOW)
    ack = codec.build(
        BOB,
        PacketKind.ACK,
        Destination.node(ALICE.node_id),
        Suite.SIGNED,
        AckBody(first_id, os.urandom(16), BOB.public.box_public).encode(),
        NOW,
        6,
    )
    assert any(isinstance(a, Uncarry) for a in router.receive("other", codec.encode(ack), NOW))
    second_id, second = _frame(ALICE, BOB.node_id, NOW - 3600_000)
    router.receive("friend", second, NOW + 1)
    now = _junk(router, 100, NOW + 2, link="junk")
    _junk(router, 100, now, link="other")
    assert second_id in router.carried_ids()
    assert router.carried_count <= 200


def test_carried_packets_per_destination_are_bounded() -> None:
    router = _router()
    victim = os.urandom(16)
    now = NOW
    for _ in range(1000):
        now += 6
        _, frame = _frame(MALLORY, victim, now)
        router.receive("junk", frame, now)
    assert router.carried_count <= router.config.max_carried_per_destination


def test_a_future_timestamp_is_clamped_for_the_expiry() -> None:
    router = _router()
    _, frame = _frame(MALLORY, os.urandom(16), NOW + NINE_MINUTES)
    carry = next(a for a in router.receive("junk", frame, NOW) if isinstance(a, Carry))
    assert carry.expires_ms == NOW + router.config.carry_ms


def test_bounds_must_be_positive() -> None:
    with pytest.raises(UsageError):
        _router(RouterConfig(max_carried_per_link=0))


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 4), st.integers(0, 2)), min_size=1, max_size=30),
    st.sets(st.integers(0, 4)),
    st.sets(st.integers(0, 2)),
    st.tuples(st.integers(0, 4), st.integers(0, 2)),
    st.booleans(),
)
def test_the_victim_is_the_oldest_of_the_lowest_rank(
    pairs: list[tuple[int, int]],
    contacts: set[int],
    known: set[int],
    newcomer: tuple[int, int],
    by_destination: bool,
) -> None:
    """Whichever bound is reached (the destination's or the link's), the victim is the
    oldest entry of the lowest rank in that pool, if it ranks no higher than the newcomer
    (the scan of a destination's pool may stop early; the choice must not change)."""

    def key(n: int, size: int) -> bytes:
        return bytes([n + 1]) * size

    keys = {key(c, 32) for c in contacts}
    dests = {key(k, 16) for k in known}

    def rank(entry: CarriedEntry) -> int:
        if entry.origin in keys:
            return 2
        return 1 if entry.recipient in dests else 0

    size = len(pairs)
    carried = CarriedSet(
        10_000,
        10_000 if by_destination else size,
        size if by_destination else 10_000,
        rank,
    )
    dest_n = newcomer[1]
    entries = [
        CarriedEntry(b"f", 0, key(dest_n if by_destination else d, 16), key(o, 32), "l")
        for o, d in pairs
    ]
    for i, entry in enumerate(entries):
        carried.add(i.to_bytes(16, "big"), entry)
    new = CarriedEntry(b"f", 0, key(dest_n, 16), key(newcomer[0], 32), "l")
    lowest = min(rank(e) for e in entries)
    oldest = next(i for i, e in enumerate(entries) if rank(e) == lowest)
    expected = ([oldest.to_bytes(16, "big")], True) if lowest <= rank(new) else ([], False)
    assert carried.make_room(new) == expected


def test_a_full_destination_pool_is_not_scanned_to_its_end() -> None:
    """Sealed messages to this node's own tags are carried like any others (so that no one
    can tell which tags are ours), so a busy conversation fills its tag's pool; then every
    new copy chooses a victim there. All of them rank alike (the destination's rank), so
    the oldest is the victim: found at once, not after ranking the whole pool."""
    calls: list[int] = []
    tag = b"\x07" * 16

    def rank(entry: CarriedEntry) -> int:
        calls.append(1)
        return 1 if entry.recipient == tag else 0

    carried = CarriedSet(10_000, 10_000, 128, rank)
    for i in range(128):
        carried.add(i.to_bytes(16, "big"), CarriedEntry(b"f", 0, tag, os.urandom(32), "l"))
    calls.clear()
    victims, keep = carried.make_room(CarriedEntry(b"f", 0, tag, os.urandom(32), "l"))
    assert (victims, keep) == ([(0).to_bytes(16, "big")], True)
    assert len(calls) <= 3
