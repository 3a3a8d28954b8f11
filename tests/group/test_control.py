"""Control messages and their parts: round trips, any arrival order, bounded, typed errors."""

from __future__ import annotations

import contextlib
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshchat.errors import PacketError
from meshchat.group.control import (
    ASSEMBLY_HORIZON_MS,
    BLOBS_PER_SENDER,
    DROPPED,
    MAX_KNOWN_BYTES,
    MAX_STRANGER_BLOBS,
    MAX_STRANGER_BYTES,
    STRANGER_HORIZON_MS,
    Assembler,
    GroupUpdate,
    NotApplied,
    PartRefused,
    SenderKeyShare,
    decode_control,
    split,
)
from meshchat.group.roster import MAX_MEMBERS, Roster, new_group_id
from meshchat.identity import Identity
from meshchat.wire.payloads import ControlPart, decode_direct_body

SENDER = b"s" * 16
KEYS = (b"k" * 32, b"b" * 32)  # a known sender's (sign, box) keys


def big_update() -> GroupUpdate:
    admin = Identity.generate()
    members = [Identity.generate() for _ in range(MAX_MEMBERS - 1)]
    roster = Roster.build(
        admin, new_group_id(), 3, "big", [m.public for m in [admin, *members]], {admin.node_id}
    )
    prekeys = tuple((m.node_id, m.sign_prekey(bytes(32), 1_700_000_000_000)) for m in members)
    return GroupUpdate(roster, bytes(range(32)), prekeys)


def parts_of(blob: bytes) -> list[ControlPart]:
    return [ControlPart(bytes(16), b, i, n, c) for b, i, n, c in split(blob)]


def test_the_largest_update_crosses_in_parts_in_any_order() -> None:
    update = big_update()
    blob = update.encode()
    parts = parts_of(blob)
    assert 1 < len(parts) <= 24
    random.Random(3).shuffle(parts)
    assembler = Assembler()
    results = [assembler.add(SENDER, p, 0) for p in parts]
    assert results[:-1] == [None] * (len(parts) - 1)
    assert results[-1] == blob
    assert decode_control(blob) == update
    # A part travels as a direct-message body, told apart from a text message.
    assert decode_direct_body(parts[0].encode()) == parts[0]


def test_a_share_round_trips() -> None:
    share = SenderKeyShare(new_group_id(), 4, bytes(16), bytes(32), 7, bytes(32))
    assert decode_control(share.encode()) == share


def test_the_assembler_is_bounded_per_sender_and_in_time() -> None:
    assembler = Assembler()
    for i in range(10):
        first, *_ = parts_of(bytes([i]) * 2000)
        assert assembler.add(SENDER, first, 0, KEYS) is None
    assert len(assembler.dump()) == BLOBS_PER_SENDER
    # The sender's own older blobs went, and it is told which (their parts were acked).
    assert len(assembler.take_dropped()) == 10 - BLOBS_PER_SENDER
    assembler.expire(ASSEMBLY_HORIZON_MS + 1)
    assert assembler.dump() == []


def test_state_survives_dump_and_load() -> None:
    blob = bytes(range(256)) * 10
    parts = parts_of(blob)
    assembler = Assembler()
    for p in parts[:-1]:
        assembler.add(SENDER, p, 5, KEYS)
    again = Assembler.load(assembler.dump())
    assert again.add(SENDER, parts[-1], 6, KEYS) == blob


def test_strangers_half_blobs_never_displace_a_known_senders_nor_are_stored() -> None:
    assembler = Assembler()
    blob = bytes(range(256)) * 6
    known_parts = parts_of(blob)
    assert assembler.add(SENDER, known_parts[0], 0, KEYS) is None
    for n in range(10 * MAX_STRANGER_BLOBS):
        first, *_ = parts_of(n.to_bytes(4, "big") * 400)
        with contextlib.suppress(PartRefused):
            assembler.add(n.to_bytes(16, "big"), first, 1)
    held = assembler._partial
    strangers = [p for p in held.values() if p.known is None]
    assert len(strangers) <= MAX_STRANGER_BLOBS
    assert sum(p.size for p in strangers) <= MAX_STRANGER_BYTES
    assert [entry[0] for entry in assembler.dump()] == [SENDER]  # only the known one stored
    assert assembler.take_dropped() == []
    # The known sender's blob completes, however many strangers came.
    results = [assembler.add(SENDER, p, 2, KEYS) for p in known_parts[1:]]
    assert results[-1] == blob
    # Strangers' blobs are forgotten after a short horizon.
    assembler.expire(1 + STRANGER_HORIZON_MS + 1)
    assert assembler._partial == {}


def test_known_senders_share_a_byte_budget_and_the_heaviest_gives_way() -> None:
    assembler = Assembler()
    heavy, light = b"h" * 16, b"l" * 16
    big = parts_of(bytes(900) * 20)  # 18 KB in 20 parts
    for p in big[:-1]:
        assembler.add(heavy, p, 0, KEYS)
    for p in parts_of(bytes(range(200)) * 90)[:-1]:  # 18 KB more from another sender
        assembler.add(light, p, 1, (b"L" * 32, b"B" * 32))
    stored = sum(len(c) for e in assembler.dump() for _, c in e[4])  # type: ignore[union-attr]
    assert stored <= MAX_KNOWN_BYTES
    assert [d[2] for d in assembler.take_dropped()] == [big[0].blob_id]


def test_a_part_that_does_not_fit_is_refused() -> None:
    assembler = Assembler()
    first, second, *_ = parts_of(bytes(3000))
    assembler.add(SENDER, first, 0, KEYS)
    with pytest.raises(PartRefused):
        assembler.add(SENDER, ControlPart(bytes(16), first.blob_id, 1, 9, second.chunk), 0, KEYS)


def test_not_applied_round_trips() -> None:
    message = NotApplied(bytes(range(16)), DROPPED)
    assert decode_control(message.encode()) == message
    with pytest.raises(PacketError):
        decode_control(NotApplied(bytes(16), 9).encode())


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=3000))
def test_decoding_arbitrary_blobs_never_crashes(data: bytes) -> None:
    with contextlib.suppress(PacketError):
        decode_control(data)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(st.binary(max_size=40), st.integers(-5, 30), st.none()), min_size=0, max_size=7
    )
)
def test_decoding_arbitrary_arrays_never_crashes(items: list[object]) -> None:
    import cbor2

    for data in (cbor2.dumps(items), cbor2.dumps([1, *items]), cbor2.dumps([2, *items])):
        with contextlib.suppress(PacketError):
            decode_control(data)
        with contextlib.suppress(PacketError):
            decode_direct_body(data)


def test_bad_parts_are_refused() -> None:
    with pytest.raises(PacketError):
        ControlPart(bytes(16), bytes(16), 3, 3, b"x")
    with pytest.raises(PacketError):
        ControlPart(bytes(16), bytes(16), 0, 25, b"x")
    with pytest.raises(PacketError):
        ControlPart(bytes(16), bytes(16), 0, 1, b"")


def test_a_blob_being_completed_is_not_the_one_given_up() -> None:
    assembler = Assembler()
    other, admin = b"o" * 16, b"a" * 16
    hoard = parts_of(bytes(900) * 17)  # 15.3 KB held by another known peer
    for p in hoard[:-1]:
        assembler.add(other, p, 0, (b"O" * 32, b"P" * 32))
    update = bytes(range(256)) * 84  # 21.5 KB: the largest blob there is
    parts = parts_of(update)
    results = [assembler.add(admin, p, 1, KEYS) for p in parts]
    assert results[-1] == update
    assert [d[2] for d in assembler.take_dropped()] == [hoard[0].blob_id]
