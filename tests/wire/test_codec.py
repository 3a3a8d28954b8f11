"""The packet codec: strict encode/decode, the time window and signature coverage."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshchat.errors import PacketError, PacketReason
from meshchat.identity import Identity
from meshchat.wire import codec
from meshchat.wire.packet import (
    BROADCAST,
    MAX_AGE_MS,
    MAX_FUTURE_SKEW_MS,
    MAX_PACKET_SIZE,
    MAX_PAYLOAD_SIZE,
    MAX_TTL,
    Destination,
    Packet,
    PacketKind,
    Suite,
)

NOW = 1_700_000_000_000
ALICE = Identity.from_seeds(b"\x11" * 32, b"\x12" * 32)
BOB = Identity.from_seeds(b"\x21" * 32, b"\x22" * 32)


def _build(**changes: Any) -> Packet:
    args: dict[str, Any] = {
        "identity": ALICE,
        "kind": PacketKind.MESSAGE,
        "destination": Destination.node(BOB.node_id),
        "suite": Suite.BOX,
        "payload": b"payload bytes",
        "now_ms": NOW,
        "ttl": 6,
        "packet_id": b"\x42" * 16,
    }
    args.update(changes)
    return codec.build(**args)


def _fields(packet: Packet) -> list[object]:
    """The wire array of a packet, for tests that hand-craft variants of it."""
    return [
        packet.version,
        int(packet.kind),
        packet.packet_id,
        packet.origin,
        [int(packet.destination.kind), packet.destination.value],
        packet.created_ms,
        packet.ttl,
        packet.hops,
        int(packet.suite),
        packet.payload,
        packet.signature,
    ]


def _reason(frame: bytes, now_ms: int = NOW) -> PacketReason:
    with pytest.raises(PacketError) as info:
        codec.decode(frame, now_ms)
    return info.value.reason


def _ttl_hops_span(packet: Packet) -> range:
    """Byte offsets of the ttl and hops items in the encoded packet (both one byte)."""
    head = _fields(packet)[:6]
    offset = 1 + sum(len(cbor2.dumps(item, canonical=True)) for item in head)
    return range(offset, offset + 2)


# -- round trips ------------------------------------------------------------------------------


def test_build_encode_decode_round_trip() -> None:
    packet = _build()
    frame = codec.encode(packet)
    assert codec.decode(frame, NOW) == packet
    assert codec.parse(frame) == packet
    assert packet.origin == ALICE.public.sign_public
    assert packet.hops == 0
    assert len(frame) <= MAX_PACKET_SIZE


def test_encoding_is_canonical_cbor() -> None:
    packet = _build()
    frame = codec.encode(packet)
    assert cbor2.dumps(cbor2.loads(frame), canonical=True) == frame
    assert cbor2.loads(frame) == _fields(packet)


def test_build_uses_fresh_random_packet_ids() -> None:
    a = _build(packet_id=None)
    b = _build(packet_id=None)
    assert a.packet_id != b.packet_id
    assert len(a.packet_id) == 16


@pytest.mark.parametrize(
    ("asked", "got"), [(0, 1), (-5, 1), (1, 1), (MAX_TTL, MAX_TTL), (99, MAX_TTL)]
)
def test_build_clamps_ttl(asked: int, got: int) -> None:
    assert _build(ttl=asked).ttl == got


def test_largest_payload_fits_the_frame_limit() -> None:
    packet = _build(payload=b"x" * MAX_PAYLOAD_SIZE)
    assert len(codec.encode(packet)) <= MAX_PACKET_SIZE
    assert codec.decode(codec.encode(packet), NOW) == packet


def test_parse_accepts_bytearray_and_memoryview() -> None:
    frame = codec.encode(_build())
    from_bytearray = codec.parse(bytearray(frame))  # type: ignore[arg-type]
    from_memoryview = codec.parse(memoryview(frame))  # type: ignore[arg-type]
    assert from_bytearray == from_memoryview == _build()


_dest = st.one_of(
    st.just(BROADCAST),
    st.binary(min_size=16, max_size=16).map(Destination.node),
    st.binary(min_size=16, max_size=16).map(Destination.channel),
)


@settings(max_examples=200, deadline=None)
@given(
    identity=st.sampled_from([ALICE, BOB]),
    kind=st.sampled_from(PacketKind),
    destination=_dest,
    suite=st.sampled_from(Suite),
    payload=st.binary(max_size=MAX_PAYLOAD_SIZE),
    created=st.integers(0, 2**53 - 1),
    ttl=st.integers(1, MAX_TTL),
    packet_id=st.binary(min_size=16, max_size=16),
    hops=st.integers(0, MAX_TTL),
)
def test_round_trip_random_fields(
    identity: Identity,
    kind: PacketKind,
    destination: Destination,
    suite: Suite,
    payload: bytes,
    created: int,
    ttl: int,
    packet_id: bytes,
    hops: int,
) -> None:
    packet = codec.build(identity, kind, destination, suite, payload, created, ttl, packet_id)
    packet = replace(packet, hops=hops)  # hops are not signed
    frame = codec.encode(packet)
    assert codec.decode(frame, created) == packet


# -- arbitrary and mutated input --------------------------------------------------------------


def _decode_or_packet_error(frame: bytes) -> Packet | None:
    try:
        packet = codec.decode(frame, NOW)
    except PacketError:
        return None
    assert isinstance(packet, Packet)
    return packet


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_decode_or_raise_packet_error(frame: bytes) -> None:
    _decode_or_packet_error(frame)


_cbor_leaf = st.one_of(
    st.integers(-(2**64), 2**64 - 1),
    st.binary(max_size=70),
    st.text(max_size=10),
    st.booleans(),
    st.none(),
)


@settings(max_examples=500, deadline=None)
@given(
    st.lists(st.recursive(_cbor_leaf, lambda x: st.lists(x, max_size=3), max_leaves=4), max_size=13)
)
def test_any_cbor_array_decodes_or_raises_packet_error(items: list[object]) -> None:
    _decode_or_packet_error(cbor2.dumps(items, canonical=True))


@settings(max_examples=300, deadline=None)
@given(
    index=st.integers(0, 10),
    value=st.one_of(_cbor_leaf, st.lists(_cbor_leaf, max_size=3)),
)
def test_one_field_replaced_by_anything_decodes_or_raises_packet_error(
    index: int, value: object
) -> None:
    fields = _fields(_build())
    fields[index] = value
    packet = _decode_or_packet_error(cbor2.dumps(fields, canonical=True))
    if packet is not None:
        # Only ttl and hops may change without breaking the signature.
        assert index in (6, 7) or value == _fields(_build())[index]


VALID = codec.encode(_build(payload=b"some payload of moderate size" * 3))
VALID_PACKET = codec.parse(VALID)
SPAN = _ttl_hops_span(VALID_PACKET)


@settings(max_examples=600, deadline=None)
@given(pos=st.integers(0, len(VALID) - 1), mask=st.integers(1, 255))
def test_flipped_byte_raises_or_only_changes_ttl_and_hops(pos: int, mask: int) -> None:
    mutated = bytearray(VALID)
    mutated[pos] ^= mask
    packet = _decode_or_packet_error(bytes(mutated))
    if packet is not None:
        assert pos in SPAN
        assert replace(packet, ttl=VALID_PACKET.ttl, hops=VALID_PACKET.hops) == VALID_PACKET


def test_every_truncation_rejected() -> None:
    for cut in range(len(VALID)):
        assert _decode_or_packet_error(VALID[:cut]) is None


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1, max_size=40))
def test_extended_frame_rejected(extra: bytes) -> None:
    assert _decode_or_packet_error(VALID + extra) is None


@settings(max_examples=300, deadline=None)
@given(pos=st.integers(0, len(VALID)), junk=st.binary(min_size=1, max_size=8))
def test_inserted_bytes_rejected(pos: int, junk: bytes) -> None:
    assert _decode_or_packet_error(VALID[:pos] + junk + VALID[pos:]) is None


@settings(max_examples=300, deadline=None)
@given(pos=st.integers(0, len(VALID) - 1), n=st.integers(1, 8))
def test_deleted_bytes_rejected(pos: int, n: int) -> None:
    assert _decode_or_packet_error(VALID[:pos] + VALID[pos + n :]) is None


def test_ttl_hops_span_is_where_the_ttl_lives() -> None:
    assert VALID[SPAN.start] == VALID_PACKET.ttl
    assert VALID[SPAN.start + 1] == VALID_PACKET.hops


# -- signature coverage -----------------------------------------------------------------------


@pytest.mark.parametrize(("ttl", "hops"), [(1, 0), (16, 0), (3, 9), (0, 16)])
def test_ttl_and_hops_are_not_signed(ttl: int, hops: int) -> None:
    packet = replace(_build(), ttl=ttl, hops=hops)
    assert codec.decode(codec.encode(packet), NOW) == packet
    assert codec.signed_bytes(packet) == codec.signed_bytes(_build())


@pytest.mark.parametrize(
    "changes",
    [
        {"kind": PacketKind.ACK},
        {"packet_id": b"\x43" * 16},
        {"origin": BOB.public.sign_public},
        {"destination": Destination.node(ALICE.node_id)},
        {"destination": BROADCAST},
        {"created_ms": NOW + 1},
        {"suite": Suite.SIGNED},
        {"payload": b"payload byteS"},
        {"payload": b""},
        {"signature": b"\x00" * 64},
    ],
    ids=lambda c: next(iter(c)),
)
def test_every_other_field_is_signed(changes: dict[str, Any]) -> None:
    packet = replace(_build(), **changes)
    assert _reason(codec.encode(packet)) is PacketReason.BAD_SIGNATURE


def test_signature_by_another_key_rejected() -> None:
    genuine = _build()
    forged = replace(genuine, signature=BOB.sign(codec.signed_bytes(genuine)))
    assert _reason(codec.encode(forged)) is PacketReason.BAD_SIGNATURE


def test_origin_that_is_not_a_curve_point_rejected() -> None:
    packet = replace(_build(), origin=b"\xff" * 32)
    assert _reason(codec.encode(packet)) is PacketReason.BAD_SIGNATURE


def test_signed_bytes_are_domain_separated() -> None:
    assert codec.signed_bytes(_build()).startswith(codec.SIGN_DOMAIN)


# -- rejections with their reasons ------------------------------------------------------------


def _variant(index: int, value: object) -> bytes:
    fields = _fields(_build())
    fields[index] = value
    return cbor2.dumps(fields, canonical=True)


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (_variant(0, 2), PacketReason.UNKNOWN_VERSION),
        (_variant(0, 0), PacketReason.UNKNOWN_VERSION),
        (_variant(0, True), PacketReason.UNKNOWN_VERSION),
        (_variant(0, "1"), PacketReason.UNKNOWN_VERSION),
        (_variant(1, 0), PacketReason.UNKNOWN_KIND),
        (_variant(1, 99), PacketReason.UNKNOWN_KIND),
        (_variant(1, True), PacketReason.UNKNOWN_KIND),
        (_variant(1, b"\x01"), PacketReason.UNKNOWN_KIND),
        (_variant(8, 5), PacketReason.UNKNOWN_SUITE),
        (_variant(8, -1), PacketReason.UNKNOWN_SUITE),
        (_variant(8, False), PacketReason.UNKNOWN_SUITE),
        (_variant(2, b"\x42" * 15), PacketReason.BAD_FIELD),
        (_variant(2, "x" * 16), PacketReason.BAD_FIELD),
        (_variant(3, b"\x00" * 31), PacketReason.BAD_FIELD),
        (_variant(4, [1, b"\x00" * 15]), PacketReason.BAD_FIELD),
        (_variant(4, [3, b"\x00" * 16]), PacketReason.BAD_FIELD),
        (_variant(4, [True, b"\x00" * 16]), PacketReason.BAD_FIELD),
        (_variant(4, [1]), PacketReason.BAD_FIELD),
        (_variant(4, b"\x01"), PacketReason.BAD_FIELD),
        (_variant(4, [1, "x" * 16]), PacketReason.BAD_FIELD),
        (_variant(5, -1), PacketReason.BAD_FIELD),
        (_variant(5, "now"), PacketReason.BAD_FIELD),
        (_variant(5, 2**53), PacketReason.BAD_FIELD),
        (_variant(6, -1), PacketReason.BAD_FIELD),
        (_variant(6, None), PacketReason.BAD_FIELD),
        (_variant(6, MAX_TTL + 1), PacketReason.TTL_TOO_HIGH),
        (_variant(6, 2**64 - 1), PacketReason.TTL_TOO_HIGH),
        (_variant(7, MAX_TTL + 1), PacketReason.BAD_FIELD),
        (_variant(9, "text"), PacketReason.BAD_FIELD),
        (_variant(9, b"x" * (MAX_PAYLOAD_SIZE + 1)), PacketReason.BAD_FIELD),
        (_variant(10, b"\x00" * 63), PacketReason.BAD_FIELD),
        (cbor2.dumps([*_fields(_build()), 0], canonical=True), PacketReason.MALFORMED),
        (cbor2.dumps(_fields(_build())[:10], canonical=True), PacketReason.MALFORMED),
        (cbor2.dumps(b"not an array", canonical=True), PacketReason.MALFORMED),
        (cbor2.dumps({"a": 1}, canonical=True), PacketReason.MALFORMED),
        (b"\xff" * (MAX_PACKET_SIZE + 1), PacketReason.OVERSIZED),
        (_variant(9, b"x" * MAX_PACKET_SIZE), PacketReason.OVERSIZED),
        (b"", PacketReason.MALFORMED),
    ],
)
def test_rejection_reasons(frame: bytes, reason: PacketReason) -> None:
    assert _reason(frame) is reason


def test_non_canonical_encoding_rejected() -> None:
    frame = bytearray(VALID)
    # Re-encode the hops value (0) in the two-byte form: same value, another encoding.
    pos = SPAN.start + 1
    frame[pos : pos + 1] = b"\x18\x00"
    assert _reason(bytes(frame)) is PacketReason.NOT_CANONICAL


def test_tagged_field_rejected() -> None:
    frame = _variant(5, cbor2.CBORTag(1, NOW // 1000))
    assert _reason(frame) is PacketReason.MALFORMED


def test_non_bytes_frame_rejected() -> None:
    with pytest.raises(PacketError) as info:
        codec.parse("text")  # type: ignore[arg-type]
    assert info.value.reason is PacketReason.MALFORMED


# -- time window ------------------------------------------------------------------------------


def test_time_window_edges() -> None:
    frame = codec.encode(_build())
    assert codec.decode(frame, NOW - MAX_FUTURE_SKEW_MS) == _build()
    assert codec.decode(frame, NOW + MAX_AGE_MS) == _build()
    assert _reason(frame, NOW - MAX_FUTURE_SKEW_MS - 1) is PacketReason.FROM_FUTURE
    assert _reason(frame, NOW + MAX_AGE_MS + 1) is PacketReason.EXPIRED


def test_time_is_checked_before_the_signature() -> None:
    # A cheap check first: an expired forgery is reported as expired.
    packet = replace(_build(), signature=b"\x00" * 64)
    assert _reason(codec.encode(packet), NOW + MAX_AGE_MS + 1) is PacketReason.EXPIRED


def test_parse_does_not_check_time_or_signature() -> None:
    packet = replace(_build(), signature=b"\x00" * 64, created_ms=0)
    assert codec.parse(codec.encode(packet)) == packet
    with pytest.raises(PacketError):
        codec.verify(packet)
    with pytest.raises(PacketError):
        codec.check_time(packet, NOW)
