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
    Assembler,
    GroupUpdate,
    SenderKeyShare,
    decode_control,
    split,
)
from meshchat.group.roster import MAX_MEMBERS, Roster, new_group_id
from meshchat.identity import Identity
from meshchat.wire.payloads import ControlPart, decode_direct_body

SENDER = b"s" * 16


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
        assert assembler.add(SENDER, first, 0) is None
    assert len(assembler.dump()) == 4
    assembler.expire(ASSEMBLY_HORIZON_MS + 1)
    assert assembler.dump() == []


def test_state_survives_dump_and_load() -> None:
    blob = bytes(range(256)) * 10
    parts = parts_of(blob)
    assembler = Assembler()
    for p in parts[:-1]:
        assembler.add(SENDER, p, 5)
    again = Assembler.load(assembler.dump())
    assert again.add(SENDER, parts[-1], 6) == blob


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
