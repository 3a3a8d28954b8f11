"""Carbons' codec: round trips, and every other input a typed error (never a crash)."""

from __future__ import annotations

import cbor2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshchat.account.carbon import KIND_CARBON, MAX_CARBON_BYTES, Carbon, Direction
from meshchat.causal import MAX_PARENTS
from meshchat.errors import PacketError
from meshchat.wire.payloads import MAX_TEXT_BYTES, MessageBody

ids = st.binary(min_size=16, max_size=16)
bodies = st.lists(
    ids, min_size=1, max_size=1 + MAX_PARENTS // 2, unique=True
).flatmap(
    lambda named: st.builds(
        MessageBody,
        msg_id=st.just(named[0]),  # never among its own parents
        text=st.text(max_size=200).filter(lambda t: len(t.encode()) <= MAX_TEXT_BYTES),
        sent_ms=st.integers(0, 2**62),
        parents=st.just(tuple(named[1:])),
    )
)
carbons = st.builds(
    Carbon, peer_account=ids, direction=st.sampled_from(Direction), sender=ids, body=bodies
)


@given(carbons)
def test_round_trip(carbon: Carbon) -> None:
    data = carbon.encode()
    assert len(data) <= MAX_CARBON_BYTES
    assert Carbon.decode(data) == carbon
    assert carbon.conversation == "dm:" + carbon.peer_account.hex()


@given(st.binary(max_size=3000))
def test_arbitrary_bytes_are_refused_with_a_packet_error(data: bytes) -> None:
    try:
        carbon = Carbon.decode(data)
    except PacketError:
        return
    assert carbon.encode() == data  # only a canonical carbon decodes


@given(carbons, st.integers(0, 10_000), st.integers(0, 255))
def test_a_flipped_byte_is_refused_or_still_canonical(carbon: Carbon, at: int, value: int) -> None:
    data = bytearray(carbon.encode())
    data[at % len(data)] = value
    try:
        got = Carbon.decode(bytes(data))
    except PacketError:
        return
    assert got.encode() == bytes(data)


def _raw(*fields: object) -> bytes:
    return cbor2.dumps(list(fields), canonical=True)


BODY = MessageBody(b"\x01" * 16, "hi", 5).encode()


@pytest.mark.parametrize(
    "data",
    [
        _raw(17, b"\x02" * 16, 0, b"\x03" * 16, BODY),  # another kind
        _raw(KIND_CARBON, b"\x02" * 15, 0, b"\x03" * 16, BODY),  # short account
        _raw(KIND_CARBON, b"\x02" * 16, 2, b"\x03" * 16, BODY),  # no such direction
        _raw(KIND_CARBON, b"\x02" * 16, 0, b"\x03" * 17, BODY),  # long sender
        _raw(KIND_CARBON, b"\x02" * 16, 0, b"\x03" * 16, "text"),  # body not bytes
        _raw(KIND_CARBON, b"\x02" * 16, 0, b"\x03" * 16, b"\x80"),  # body not a message
        _raw(KIND_CARBON, b"\x02" * 16, 0, b"\x03" * 16),  # too short
        _raw(KIND_CARBON, b"\x02" * 16, 0, b"\x03" * 16, BODY, 1),  # too long
        _raw(KIND_CARBON, b"\x02" * 16, False, b"\x03" * 16, BODY),  # bool, not int
        _raw(KIND_CARBON, b"\x02" * 16, 0, b"\x03" * 16, b"\x00" * MAX_CARBON_BYTES),  # huge
    ],
)
def test_malformed_carbons_are_refused(data: bytes) -> None:
    with pytest.raises(PacketError):
        Carbon.decode(data)


def test_a_carbon_checks_its_fields_when_made() -> None:
    with pytest.raises(PacketError):
        Carbon(b"\x01" * 3, Direction.SENT, b"\x02" * 16, MessageBody(b"\x01" * 16, "x"))
