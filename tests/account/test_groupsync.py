"""Group-membership blobs (26 GroupHeld, 27 GroupJoin, 28 GroupLeft): round trips; anything
else is a typed error, never a crash."""

from __future__ import annotations

import contextlib

import cbor2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshchat.account.groupsync import GroupHeld, GroupJoin, GroupLeft
from meshchat.account.wire import blob_kind
from meshchat.errors import PacketError
from meshchat.group.roster import Roster, new_group_id
from meshchat.identity import Identity

ADMIN = Identity.generate()
MEMBER = Identity.generate()
ROSTER = Roster.build(
    ADMIN, new_group_id(), 3, "crew", [ADMIN.public, MEMBER.public], {ADMIN.public.node_id}
)


def test_held_and_join_round_trip_and_name_their_kinds() -> None:
    held = GroupHeld(ROSTER).encode()
    assert blob_kind(held) == 26
    assert GroupHeld.decode(held).roster == ROSTER
    join = GroupJoin(ROSTER.group_id).encode()
    assert blob_kind(join) == 27
    assert GroupJoin.decode(join).group_id == ROSTER.group_id


@given(st.binary(min_size=16, max_size=16))
def test_every_join_and_left_round_trips(group_id: bytes) -> None:
    assert GroupJoin.decode(GroupJoin(group_id).encode()).group_id == group_id
    assert GroupLeft.decode(GroupLeft(group_id).encode()).group_id == group_id
    with pytest.raises(PacketError):
        GroupLeft.decode(GroupJoin(group_id).encode())  # the kind is checked


@pytest.mark.parametrize(
    "blob",
    [
        b"",
        cbor2.dumps([27]),
        cbor2.dumps([27, b"short"]),
        cbor2.dumps([27, "x" * 16]),
        cbor2.dumps([26, b"x" * 16]),
        cbor2.dumps([26, ROSTER.encode(), 1]),
        cbor2.dumps([27, ROSTER.encode()]),
        cbor2.dumps([26, b"\x00" * 10_000]),
        cbor2.dumps({26: 1}),
    ],
)
def test_malformed_blobs_are_packet_errors(blob: bytes) -> None:
    with pytest.raises(PacketError):
        GroupHeld.decode(blob)
    with pytest.raises(PacketError):
        GroupJoin.decode(blob)
    with pytest.raises(PacketError):
        GroupLeft.decode(blob)


@given(st.binary(max_size=600))
def test_fuzzed_blobs_give_typed_errors_only(data: bytes) -> None:
    for decode in (GroupHeld.decode, GroupJoin.decode, GroupLeft.decode):
        with contextlib.suppress(PacketError):
            decode(data)


@given(st.integers(0, 400), st.integers(0, 255))
def test_flipped_held_bytes_decode_canonically_or_are_refused(at: int, value: int) -> None:
    blob = bytearray(GroupHeld(ROSTER).encode())
    blob[at % len(blob)] = value
    try:
        held = GroupHeld.decode(bytes(blob))
    except PacketError:
        return
    assert held.encode() == bytes(blob)
