"""The fixed-shape fast path of the packet parser agrees with the general path on every input."""

from __future__ import annotations

import dataclasses

import cbor2
from hypothesis import given, settings
from hypothesis import strategies as st

from meshchat.errors import PacketError, PacketReason
from meshchat.identity import Identity
from meshchat.wire import codec
from meshchat.wire.cborcheck import check_cbor
from meshchat.wire.fastparse import read_fixed, read_message_body
from meshchat.wire.packet import BROADCAST, Destination, PacketKind, Suite
from meshchat.wire.payloads import ControlPart, MessageBody, decode_direct_body

SENDER = Identity.from_seeds(b"\x11" * 32, b"\x12" * 32)
NOW = 1_764_460_800_000


def _general(frame: bytes) -> object:
    """The general path alone: the walker, cbor2 and the shared field checks."""
    try:
        offsets = check_cbor(frame, max_items=15, max_depth=2)
        fields = cbor2.loads(frame)
        signed = (
            codec.SIGN_DOMAIN
            + b"\x88"
            + frame[offsets[0] : offsets[6]]
            + frame[offsets[8] : offsets[10]]
        )
        return codec._packet(*fields, signed)
    except PacketError as exc:
        return exc.reason
    except (ValueError, TypeError) as exc:
        return type(exc)


def _parsed(frame: bytes) -> object:
    """What codec.parse (fast path first) makes of the frame: a packet or a rejection reason."""
    try:
        return codec.parse(frame)
    except PacketError as exc:
        return exc.reason


def _packet_frames(payload: bytes, dest: Destination, ttl: int, created: int) -> bytes:
    packet = codec.build(SENDER, PacketKind.MESSAGE, dest, Suite.SIGNED, payload, created, ttl)
    return codec.encode(packet)


@settings(max_examples=300, deadline=None)
@given(
    st.binary(max_size=1800),
    st.sampled_from([BROADCAST, Destination.node(b"\x05" * 16), Destination.channel(b"\x06" * 16)]),
    st.integers(min_value=1, max_value=16),
    st.integers(min_value=0, max_value=2**53 - 1),
)
def test_fast_path_reads_every_valid_packet_like_the_general_path(
    payload: bytes, dest: Destination, ttl: int, created: int
) -> None:
    frame = _packet_frames(payload, dest, ttl, created)
    assert read_fixed(frame) is not None
    fast = codec.parse(frame)
    general = _general(frame)
    assert fast == general
    assert fast.signed_cache == general.signed_cache  # type: ignore[attr-defined]
    assert fast.signed_cache == codec.signed_bytes(dataclasses.replace(fast, signed_cache=None))


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300), st.integers(min_value=0, max_value=200), st.binary(max_size=8))
def test_fast_path_never_accepts_what_the_general_path_rejects(
    junk: bytes, at: int, splice: bytes
) -> None:
    valid = _packet_frames(b"hello", BROADCAST, 8, NOW)
    for frame in (junk, valid[:at] + splice + valid[at + len(splice) :], valid[:at]):
        fixed = read_fixed(frame)
        if fixed is None:
            continue
        # Whatever the fast path reads, the general path must read identically (the same
        # packet, or the same rejection of a field value).
        assert _parsed(frame) == _general(frame)


def _body_general(data: bytes) -> object:
    """The general body path alone (the walker, cbor2, the field checks)."""
    from meshchat.wire.payloads import _MESSAGE_ITEMS, _load_any

    try:
        fields = _load_any(data, (2, 5), _MESSAGE_ITEMS, 2)
        return MessageBody(*fields)  # type: ignore[arg-type]
    except PacketError as exc:
        return exc.reason


def _body_decoded(data: bytes) -> object:
    try:
        return MessageBody.decode(data)
    except PacketError as exc:
        return exc.reason


def _direct_decoded(data: bytes) -> object:
    try:
        return decode_direct_body(data)
    except PacketError as exc:
        return exc.reason


_IDS = st.lists(st.binary(min_size=16, max_size=16), max_size=9)


@settings(max_examples=300, deadline=None)
@given(
    st.binary(min_size=16, max_size=16),
    st.text(max_size=400),
    st.integers(min_value=0, max_value=2**64 - 1),
    _IDS,
    _IDS,
)
def test_body_fast_path_reads_every_body_like_the_general_path(
    msg_id: bytes, text: str, sent: int, parents: list[bytes], loose: list[bytes]
) -> None:
    data = cbor2.dumps([msg_id, text, sent, parents, loose], canonical=True)
    assert _body_decoded(data) == _body_general(data)
    assert _direct_decoded(data) == _body_general(data)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300), st.integers(min_value=0, max_value=120), st.binary(max_size=8))
def test_body_fast_path_never_accepts_what_the_general_path_rejects(
    junk: bytes, at: int, splice: bytes
) -> None:
    valid = MessageBody(b"\x01" * 16, "hello \u00e9", NOW, (b"\x02" * 16,), (b"\x03" * 16,))
    encoded = valid.encode()
    assert read_message_body(encoded) is not None
    for data in (junk, encoded[:at] + splice + encoded[at + len(splice) :], encoded[:at]):
        if read_message_body(data) is None:
            continue
        assert _body_decoded(data) == _body_general(data)
        assert _direct_decoded(data) == _body_general(data)


def test_body_fast_path_leaves_other_shapes_to_the_general_path() -> None:
    """Non-canonical lengths, lone surrogates, the older two-item form and control parts."""
    good = MessageBody(b"\x01" * 16, "hi", 5).encode()
    long_form = good[:18] + b"\x78\x02" + good[19:]  # text length 2 in a one-byte length
    surrogate = good[:18] + b"\x63\xed\xa0\x80" + good[21:]
    two_items = cbor2.dumps([b"\x01" * 16, "hi"], canonical=True)
    part = ControlPart(b"\x01" * 16, b"\x02" * 16, 0, 1, b"x").encode()
    for data in (long_form, surrogate, two_items, part):
        assert read_message_body(data) is None
    assert _body_decoded(long_form) is PacketReason.NOT_CANONICAL
    assert _body_decoded(surrogate) is PacketReason.MALFORMED
    assert MessageBody.decode(two_items) == MessageBody(b"\x01" * 16, "hi")
    assert decode_direct_body(part) == ControlPart(b"\x01" * 16, b"\x02" * 16, 0, 1, b"x")
