"""bitchat packet codec: layout, padding, compression, the signing preimage, and every kind of
malformed frame refused with a typed reason (including hypothesis fuzzing)."""

from __future__ import annotations

import contextlib
import zlib
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshchat.bridges.bitchat.packet import (
    BROADCAST_ID,
    BitchatPacket,
    MessageType,
    decode,
    encode,
    pad,
    should_compress,
    signing_bytes,
    unpad,
    with_compression,
)
from meshchat.errors import BridgeError, BridgeReason

SENDER = bytes.fromhex("0102030405060708")
T = 1_700_000_000_000


def _packet(**kw: object) -> BitchatPacket:
    fields: dict[str, object] = {
        "type": MessageType.MESSAGE,
        "sender_id": SENDER,
        "timestamp": T,
        "payload": b"hello",
    }
    fields.update(kw)
    return BitchatPacket(**fields)  # type: ignore[arg-type]


def test_v1_header_layout_is_big_endian_as_upstream() -> None:
    wire = encode(_packet(recipient_id=BROADCAST_ID, signature=b"s" * 64))
    assert wire[0] == 1 and wire[1] == 0x02 and wire[2] == 7
    assert int.from_bytes(wire[3:11], "big") == T
    assert wire[11] == 0x01 | 0x02  # recipient, signature
    assert int.from_bytes(wire[12:14], "big") == 5
    assert wire[14:22] == SENDER and wire[22:30] == BROADCAST_ID
    assert wire[30:35] == b"hello" and wire[35:] == b"s" * 64
    assert len(wire) == 14 + 8 + 8 + 5 + 64


def test_round_trip_v1_and_v2_with_route() -> None:
    for packet in (
        _packet(),
        _packet(recipient_id=b"\x09" * 8, signature=b"\x01" * 64, ttl=3),
        _packet(version=2, route=(b"a" * 8, b"b" * 8), is_rsr=True),
    ):
        assert decode(encode(packet)) == packet
        assert decode(encode(packet, padding=True)) == packet


def test_padding_follows_message_padding() -> None:
    assert len(pad(b"x" * 100)) == 256  # 100 + 16 fits the 256 block: 156 pad bytes
    assert pad(b"x" * 240)[-1] == 16
    assert pad(b"x" * 241) == b"x" * 241  # the 512 block needs 271 > 255: none
    assert pad(b"x" * 3000) == b"x" * 3000
    assert unpad(pad(b"abc")) == b"abc"
    assert unpad(b"abc\x01\x02") == b"abc\x01\x02"  # not a valid pad: unchanged


def test_compression_rule_is_upstreams() -> None:
    assert not should_compress(b"a" * 99)  # below 100 bytes
    assert should_compress(b"a" * 100)
    assert not should_compress(bytes(range(100)))  # 100% distinct
    assert not should_compress(bytes(range(256)) * 2)  # 256 distinct of min(512, 256)
    text = ("the quick brown fox " * 10).encode()
    packet = with_compression(_packet(payload=text))
    assert packet.wire_payload is not None
    assert zlib.decompress(packet.wire_payload, -15) == text
    wire = encode(packet)
    assert wire[11] & 0x04
    assert int.from_bytes(wire[12:14], "big") == len(packet.wire_payload) + 2
    assert int.from_bytes(wire[22:24], "big") == len(text)  # the original size comes first
    back = decode(wire)
    assert back.payload == text and back.wire_payload == packet.wire_payload


def test_signing_preimage_is_ttl0_unsigned_padded_and_keeps_wire_bytes() -> None:
    packet = with_compression(_packet(payload=b"z" * 150, ttl=6, signature=b"\x07" * 64))
    preimage = signing_bytes(packet)
    assert preimage[2] == 0 and not preimage[11] & 0x02
    assert len(preimage) == 256 and preimage == pad(preimage[: -preimage[-1]])
    # a relay's copy (lower TTL, different sync flag) has the same preimage
    assert signing_bytes(replace(packet, ttl=1, is_rsr=True)) == preimage
    # a sender whose deflate differs: the preimage follows the bytes that came off the wire
    other = zlib.compressobj(9, zlib.DEFLATED, -15)
    theirs = replace(packet, wire_payload=other.compress(b"z" * 150) + other.flush() + b"")
    assert decode(encode(theirs)).wire_payload == theirs.wire_payload


BAD_FRAMES: list[tuple[str, bytes, BridgeReason]] = []


def _bad(name: str, frame: bytes, reason: BridgeReason) -> None:
    BAD_FRAMES.append((name, frame, reason))


_good = encode(_packet(signature=b"\x05" * 64))
_bad("empty", b"", BridgeReason.TRUNCATED)
_bad("header only", _good[:14], BridgeReason.TRUNCATED)
_bad("version 3", b"\x03" + _good[1:], BridgeReason.UNKNOWN_VERSION)
_bad("version 0", b"\x00" + _good[1:], BridgeReason.UNKNOWN_VERSION)
_bad("length past the frame", _good[:12] + b"\x00\x50" + _good[14:], BridgeReason.TRUNCATED)
_bad("signature cut", _good[:-1], BridgeReason.TRUNCATED)
_bad("recipient flag without room", _good[:11] + b"\x01" + _good[12:22], BridgeReason.TRUNCATED)
_bad("unknown flag", _good[:11] + b"\x22" + _good[12:], BridgeReason.BAD_FIELD)
_bad("route flag on v1", _good[:11] + b"\x0a" + _good[12:], BridgeReason.BAD_FIELD)
_bad("trailing garbage", _good + b"\x00\x01", BridgeReason.TRAILING)
_bad(
    "oversized v2 length",
    b"\x02\x02\x07" + T.to_bytes(8, "big") + b"\x00" + (2**31).to_bytes(4, "big") + SENDER,
    BridgeReason.OVERSIZED,
)
_compressed = encode(with_compression(_packet(payload=b"y" * 300)))
_bad(
    "lying original size",
    _compressed[:22] + (299).to_bytes(2, "big") + _compressed[24:],
    BridgeReason.BAD_COMPRESSION,
)
_bad(
    "original size zero", _compressed[:22] + b"\x00\x00" + _compressed[24:], BridgeReason.OVERSIZED
)
_bad(
    "not deflate",
    _compressed[:24] + b"\xff" * (len(_compressed) - 24),
    BridgeReason.BAD_COMPRESSION,
)
_bomb = zlib.compressobj(9, zlib.DEFLATED, -15)
_bomb_body = _bomb.compress(b"\x00" * 1_000_000) + _bomb.flush()
_bad(
    "deflate bomb under a small stated size",
    b"\x01\x02\x07"
    + T.to_bytes(8, "big")
    + b"\x04"
    + (len(_bomb_body) + 2).to_bytes(2, "big")
    + SENDER
    + (1000).to_bytes(2, "big")
    + _bomb_body,
    BridgeReason.BAD_COMPRESSION,
)
_bad(
    "compressed flag with no bytes",
    _good[:11] + b"\x04\x00\x02" + _good[14:22] + b"\x00\x05",
    BridgeReason.BAD_COMPRESSION,
)


@pytest.mark.parametrize(("name", "frame", "reason"), BAD_FRAMES, ids=[b[0] for b in BAD_FRAMES])
def test_malformed_frames_are_refused_with_a_reason(
    name: str, frame: bytes, reason: BridgeReason
) -> None:
    with pytest.raises(BridgeError) as caught:
        decode(frame)
    assert caught.value.reason is reason and caught.value.network == "bitchat"


def test_fields_are_checked_at_construction() -> None:
    with pytest.raises(BridgeError):
        _packet(sender_id=b"short")
    with pytest.raises(BridgeError):
        _packet(signature=b"x" * 63)
    with pytest.raises(BridgeError):
        _packet(route=(b"a" * 8,))  # routes need version 2
    with pytest.raises(BridgeError):
        _packet(ttl=256)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=600))
def test_decoder_never_fails_untyped(data: bytes) -> None:
    try:
        packet = decode(data)
    except BridgeError:
        return
    assert decode(encode(packet)) == packet


@settings(max_examples=300, deadline=None)
@given(
    st.binary(min_size=22, max_size=400),
    st.integers(min_value=0, max_value=399),
    st.integers(min_value=0, max_value=255),
)
def test_mutated_valid_frames_never_fail_untyped(base: bytes, at: int, value: int) -> None:
    frame = bytearray(encode(with_compression(_packet(payload=base * 2, signature=b"\x01" * 64))))
    frame[at % len(frame)] = value
    with contextlib.suppress(BridgeError):
        decode(bytes(frame))
