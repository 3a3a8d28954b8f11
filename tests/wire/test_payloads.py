"""Packet bodies: MessageBody, AckBody, AnnounceBody, SealedAckBody; ack hashes."""

from __future__ import annotations

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshchat.errors import PacketError, PacketReason
from meshchat.identity import SignedPrekey
from meshchat.wire.packet import MAX_PAYLOAD_SIZE
from meshchat.wire.payloads import (
    ACK_TOKEN_SIZE,
    MAX_NAME_BYTES,
    MAX_TEXT_BYTES,
    AckBody,
    AnnounceBody,
    MessageBody,
    SealedAckBody,
    ack_hash,
    ack_hash_of,
)

MSG = b"\x01" * 16
PID = b"\x02" * 16
KEY = b"\x03" * 32

Body = MessageBody | AckBody | AnnounceBody
BODIES: list[type[MessageBody] | type[AckBody] | type[AnnounceBody]] = [
    MessageBody,
    AckBody,
    AnnounceBody,
]


def _enc(value: object) -> bytes:
    return cbor2.dumps(value, canonical=True)


@pytest.mark.parametrize(
    "body",
    [
        MessageBody(MSG, "hello"),
        MessageBody(MSG, ""),
        MessageBody(MSG, "é" * 500),  # 1000 bytes exactly
        MessageBody(MSG, "x" * MAX_TEXT_BYTES),
        AckBody(PID, MSG, KEY),
        AnnounceBody(KEY, "Alice"),
        AnnounceBody(KEY, "n" * MAX_NAME_BYTES),
    ],
    ids=lambda b: type(b).__name__,
)
def test_round_trip(body: Body) -> None:
    data = body.encode()
    assert type(body).decode(data) == body
    assert _enc(cbor2.loads(data)) == data


@pytest.mark.parametrize(
    "make",
    [
        lambda: MessageBody(MSG, "x" * (MAX_TEXT_BYTES + 1)),
        lambda: MessageBody(MSG, "é" * 501),  # 1002 bytes in UTF-8
        lambda: MessageBody(MSG[:15], "hi"),
        lambda: MessageBody("m" * 16, "hi"),  # type: ignore[arg-type]
        lambda: MessageBody(MSG, b"hi"),  # type: ignore[arg-type]
        lambda: AckBody(PID + b"\x00", MSG, KEY),
        lambda: AckBody(PID, b"", KEY),
        lambda: AnnounceBody(KEY[:31], "a"),
        lambda: AnnounceBody(KEY, "n" * (MAX_NAME_BYTES + 1)),
    ],
)
def test_construction_rejects_bad_fields(make: object) -> None:
    with pytest.raises(PacketError) as info:
        make()  # type: ignore[operator]
    assert info.value.reason is PacketReason.BAD_FIELD


@pytest.mark.parametrize(
    ("cls", "data", "reason"),
    [
        (MessageBody, _enc([MSG, "x" * (MAX_TEXT_BYTES + 1)]), PacketReason.BAD_FIELD),
        (MessageBody, _enc([MSG, b"bytes not text"]), PacketReason.BAD_FIELD),
        (MessageBody, _enc([MSG[:8], "hi"]), PacketReason.BAD_FIELD),
        (MessageBody, _enc([MSG, "hi", "extra"]), PacketReason.BAD_FIELD),  # 2 or 5 items
        (MessageBody, _enc([MSG, "hi", *range(13)]), PacketReason.MALFORMED),  # item limit
        (MessageBody, _enc([MSG]), PacketReason.BAD_FIELD),
        (MessageBody, _enc("just text"), PacketReason.BAD_FIELD),
        (MessageBody, _enc([MSG, ["nested"]]), PacketReason.BAD_FIELD),
        (MessageBody, _enc([MSG, "hi", 0, [[MSG]], []]), PacketReason.MALFORMED),  # depth 3
        (MessageBody, _enc({"a": 1}), PacketReason.MALFORMED),
        (MessageBody, b"\x82\x50" + MSG + b"\x62\xff\xfe", PacketReason.MALFORMED),  # bad UTF-8
        (MessageBody, b"\x82\x50" + MSG + b"\x62hi\x00", PacketReason.MALFORMED),  # trailing
        (MessageBody, b"\x82\x50" + MSG, PacketReason.MALFORMED),  # truncated
        (MessageBody, b"\x82\x50" + MSG + b"\xf9\x3c\x00", PacketReason.MALFORMED),  # float
        (MessageBody, b"\x9f\x50" + MSG + b"\x60\xff", PacketReason.MALFORMED),  # indefinite
        (MessageBody, b"x" * (MAX_PAYLOAD_SIZE + 1), PacketReason.OVERSIZED),
        (AckBody, _enc([PID, MSG[:15]]), PacketReason.BAD_FIELD),
        (AckBody, _enc([PID, "m" * 16]), PacketReason.BAD_FIELD),
        (AckBody, _enc([PID]), PacketReason.BAD_FIELD),
        (AnnounceBody, _enc([KEY[:16], "a"]), PacketReason.BAD_FIELD),
        (AnnounceBody, _enc([KEY, "n" * (MAX_NAME_BYTES + 1)]), PacketReason.BAD_FIELD),
        (AnnounceBody, _enc([KEY, 7]), PacketReason.BAD_FIELD),
        (AnnounceBody, b"", PacketReason.MALFORMED),
    ],
    ids=lambda v: v.hex()[:24] if isinstance(v, bytes) else None,
)
def test_decode_rejections(
    cls: type[MessageBody] | type[AckBody] | type[AnnounceBody], data: bytes, reason: PacketReason
) -> None:
    with pytest.raises(PacketError) as info:
        cls.decode(data)
    assert info.value.reason is reason


def test_bodies_are_not_interchangeable() -> None:
    # An ack body holds byte strings only; as a message its "text" is bytes, not text.
    with pytest.raises(PacketError):
        MessageBody.decode(AckBody(PID, MSG, KEY).encode())
    with pytest.raises(PacketError):
        AckBody.decode(MessageBody(MSG, "x" * 16).encode())
    with pytest.raises(PacketError):
        AnnounceBody.decode(AckBody(PID, MSG, KEY).encode())


@settings(max_examples=300, deadline=None)
@given(
    msg_id=st.binary(min_size=16, max_size=16),
    text=st.text(max_size=400).filter(lambda t: len(t.encode()) <= MAX_TEXT_BYTES),
)
def test_message_round_trip_property(msg_id: bytes, text: str) -> None:
    body = MessageBody(msg_id, text)
    assert MessageBody.decode(body.encode()) == body


@settings(max_examples=200, deadline=None)
@given(
    st.binary(min_size=16, max_size=16),
    st.binary(min_size=16, max_size=16),
    st.binary(min_size=32, max_size=32),
)
def test_ack_round_trip_property(packet_id: bytes, msg_id: bytes, box: bytes) -> None:
    body = AckBody(packet_id, msg_id, box)
    assert AckBody.decode(body.encode()) == body


@settings(max_examples=200, deadline=None)
@given(
    st.binary(min_size=32, max_size=32),
    st.text(max_size=64).filter(lambda t: len(t.encode()) <= MAX_NAME_BYTES),
)
def test_announce_round_trip_property(key: bytes, name: str) -> None:
    assert AnnounceBody.decode(AnnounceBody(key, name).encode()) == AnnounceBody(key, name)


def _decode_or_packet_error(
    cls: type[MessageBody] | type[AckBody] | type[AnnounceBody], data: bytes
) -> None:
    try:
        body = cls.decode(data)
    except PacketError:
        return
    assert isinstance(body, cls)
    # Only canonical encodings are accepted (an older 2-item message re-encodes in 5 items).
    if isinstance(body, MessageBody) and len(cbor2.loads(data)) == 2:
        assert _enc([body.msg_id, body.text]) == data
    else:
        assert body.encode() == data


@settings(max_examples=500, deadline=None)
@given(cls=st.sampled_from(BODIES), data=st.binary(max_size=80))
def test_any_bytes_decode_or_raise_packet_error(
    cls: type[MessageBody] | type[AckBody] | type[AnnounceBody], data: bytes
) -> None:
    _decode_or_packet_error(cls, data)


_leaf = st.one_of(
    st.binary(max_size=40),
    st.text(max_size=70),
    st.integers(-(2**64), 2**64 - 1),
    st.none(),
    st.booleans(),
)


@settings(max_examples=500, deadline=None)
@given(
    cls=st.sampled_from(BODIES),
    items=st.lists(st.one_of(_leaf, st.lists(_leaf, max_size=2)), max_size=4),
)
def test_any_cbor_array_decodes_or_raises_packet_error(
    cls: type[MessageBody] | type[AckBody] | type[AnnounceBody], items: list[object]
) -> None:
    _decode_or_packet_error(cls, _enc(items))


def test_text_with_surrogate_raises_packet_error() -> None:
    with pytest.raises(PacketError):
        MessageBody(MSG, "bad \udcff byte")


# -- sealed direct messages: announces with a prekey, sealed ack bodies, ack hashes ------------

PREKEY = SignedPrekey(b"\x04" * 32, b"\x05" * 64, 1_700_000_000_000)


def test_announce_with_a_prekey_round_trip() -> None:
    body = AnnounceBody(KEY, "Alice", PREKEY)
    data = body.encode()
    assert AnnounceBody.decode(data) == body
    assert cbor2.loads(data) == [KEY, "Alice", PREKEY.public, PREKEY.signature, PREKEY.created_ms]
    assert AnnounceBody.decode(AnnounceBody(KEY, "Alice").encode()).prekey is None


@pytest.mark.parametrize(
    "items",
    [
        [KEY, "a", b"\x04" * 31, b"\x05" * 64, 1],
        [KEY, "a", b"\x04" * 32, b"\x05" * 63, 1],
        [KEY, "a", b"\x04" * 32, b"\x05" * 64, -1],
        [KEY, "a", b"\x04" * 32, b"\x05" * 64, 2**53],
        [KEY, "a", b"\x04" * 32, b"\x05" * 64, "1"],
        [KEY, "a", b"\x04" * 32],
    ],
)
def test_announce_with_a_bad_prekey_rejected(items: list[object]) -> None:
    with pytest.raises(PacketError) as info:
        AnnounceBody.decode(_enc(items))
    assert info.value.reason is PacketReason.BAD_FIELD


def test_sealed_ack_body_and_ack_hash() -> None:
    token = b"\x07" * ACK_TOKEN_SIZE
    assert SealedAckBody.decode(SealedAckBody(token).encode()) == SealedAckBody(token)
    with pytest.raises(PacketError):
        SealedAckBody(token[:15])
    with pytest.raises(PacketError):
        SealedAckBody.decode(_enc([token, token]))
    hashed = ack_hash(token)
    assert len(hashed) == ACK_TOKEN_SIZE and hashed != token and hashed == ack_hash(token)
    assert ack_hash_of(hashed + b"rest") == hashed
    assert ack_hash_of(b"short") is None


@settings(max_examples=300, deadline=None)
@given(items=st.lists(_leaf, min_size=5, max_size=5), data=st.binary(max_size=80))
def test_new_bodies_decode_or_raise_packet_error(items: list[object], data: bytes) -> None:
    for raw in (_enc(items), data):
        try:
            announce = AnnounceBody.decode(raw)
        except PacketError:
            pass
        else:
            assert announce.encode() == raw
        try:
            ack = SealedAckBody.decode(raw)
        except PacketError:
            pass
        else:
            assert ack.encode() == raw


def test_announce_flags_round_trip_with_and_without_a_prekey() -> None:
    from meshchat.wire.payloads import ANNOUNCE_GATEWAY

    plain = AnnounceBody(KEY, "gw", flags=ANNOUNCE_GATEWAY)
    decoded = AnnounceBody.decode(plain.encode())
    assert decoded == plain and decoded.gateway
    assert not AnnounceBody.decode(AnnounceBody(KEY, "node").encode()).gateway
    # A zero flags item is never sent, so it is not accepted either (one encoding per body).
    with pytest.raises(PacketError):
        AnnounceBody.decode(cbor2.dumps([KEY, "gw", 0], canonical=True))
    with pytest.raises(PacketError):
        AnnounceBody.decode(cbor2.dumps([KEY, "gw", "yes"], canonical=True))
    with pytest.raises(PacketError):
        AnnounceBody(KEY, "gw", flags=-1)
