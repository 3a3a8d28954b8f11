"""Causal history on the wire: MessageBody's sent time and parents, HistoryBody, and the two
decoders that tell bodies apart (direct: message or control part; group/channel: message or
history). Round trips, bounds, and fuzzing with arbitrary and mutated input."""

from __future__ import annotations

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshchat.causal import MAX_HEADS_SHOWN, MAX_PARENTS, MAX_WANTS
from meshchat.errors import PacketError, PacketReason
from meshchat.wire.payloads import (
    MAX_SENT_MS,
    MAX_TEXT_BYTES,
    ControlPart,
    HistoryBody,
    MessageBody,
    decode_direct_body,
    decode_shared_body,
)

MSG = b"\x01" * 16


def _id(n: int) -> bytes:
    return n.to_bytes(16, "big")


def _enc(value: object) -> bytes:
    return cbor2.dumps(value, canonical=True)


IDS = [_id(n) for n in range(100, 200)]


# -- MessageBody ------------------------------------------------------------------------------


def test_message_body_encodes_five_items() -> None:
    body = MessageBody(MSG, "hi", 1234, (IDS[0], IDS[1]), (IDS[2],))
    assert cbor2.loads(body.encode()) == [MSG, "hi", 1234, [IDS[0], IDS[1]], [IDS[2]]]
    assert MessageBody.decode(body.encode()) == body
    assert MessageBody(MSG, "hi").encode() == _enc([MSG, "hi", 0, [], []])


def test_older_two_item_message_still_decodes() -> None:
    body = MessageBody.decode(_enc([MSG, "from an older node"]))
    assert body == MessageBody(MSG, "from an older node", 0, (), ())
    assert decode_direct_body(_enc([MSG, "old"])) == MessageBody(MSG, "old")
    assert decode_shared_body(_enc([MSG, "old"])) == MessageBody(MSG, "old")


def test_lists_are_kept_as_tuples() -> None:
    body = MessageBody(MSG, "hi", 1, [IDS[0]], [IDS[1]])  # type: ignore[arg-type]
    assert body.parents == (IDS[0],) and body.loose == (IDS[1],)
    assert body == MessageBody(MSG, "hi", 1, (IDS[0],), (IDS[1],))
    assert hash(body) == hash(MessageBody(MSG, "hi", 1, (IDS[0],), (IDS[1],)))


def test_the_largest_message_body() -> None:
    text = "x" * MAX_TEXT_BYTES
    body = MessageBody(MSG, text, MAX_SENT_MS - 1, tuple(IDS[:5]), tuple(IDS[5:MAX_PARENTS]))
    data = body.encode()
    assert MessageBody.decode(data) == body
    # array(1) + msg id(17) + text(3 + 1000) + sent_ms(9) + parents(1 + 5*17) + loose(1 + 3*17)
    assert len(data) == 1 + 17 + 1003 + 9 + 1 + 5 * 17 + 1 + 3 * 17 == 1168


@pytest.mark.parametrize(
    ("make", "what"),
    [
        (lambda: MessageBody(MSG, "hi", -1), "sent time"),
        (lambda: MessageBody(MSG, "hi", MAX_SENT_MS), "sent time"),
        (lambda: MessageBody(MSG, "hi", True), "sent time"),
        (lambda: MessageBody(MSG, "hi", "1"), "sent time"),  # type: ignore[arg-type]
        (lambda: MessageBody(MSG, "hi", 1, (MSG,)), "names itself"),
        (lambda: MessageBody(MSG, "hi", 1, (), (MSG,)), "names itself"),
        (lambda: MessageBody(MSG, "hi", 1, (IDS[0], IDS[0])), "twice"),
        (lambda: MessageBody(MSG, "hi", 1, (IDS[0],), (IDS[0],)), "twice"),
        (lambda: MessageBody(MSG, "hi", 1, tuple(IDS[: MAX_PARENTS + 1])), "at most"),
        (lambda: MessageBody(MSG, "hi", 1, tuple(IDS[:5]), tuple(IDS[5:9])), "at most"),
        (lambda: MessageBody(MSG, "hi", 1, (IDS[0][:15],)), "an id"),
        (lambda: MessageBody(MSG, "hi", 1, ("x" * 16,)), "an id"),  # type: ignore[arg-type]
        (lambda: MessageBody(MSG, "hi", 1, IDS[0]), "not a list"),  # type: ignore[arg-type]
        (lambda: MessageBody(MSG, "hi", 1, (), {IDS[0]}), "not a list"),  # type: ignore[arg-type]
    ],
)
def test_message_body_construction_bounds(make: object, what: str) -> None:
    with pytest.raises(PacketError) as info:
        make()  # type: ignore[operator]
    assert info.value.reason is PacketReason.BAD_FIELD
    assert what in str(info.value)


@pytest.mark.parametrize(
    ("items", "reason"),
    [
        ([MSG, "hi", -1, [], []], PacketReason.BAD_FIELD),
        ([MSG, "hi", 2**63, [], []], PacketReason.BAD_FIELD),
        ([MSG, "hi", 2**64 - 1, [], []], PacketReason.BAD_FIELD),
        ([MSG, "hi", False, [], []], PacketReason.BAD_FIELD),
        ([MSG, "hi", None, [], []], PacketReason.BAD_FIELD),
        ([MSG, "hi", 1, [MSG], []], PacketReason.BAD_FIELD),  # names itself
        ([MSG, "hi", 1, [IDS[0], IDS[0]], []], PacketReason.BAD_FIELD),
        ([MSG, "hi", 1, [IDS[0]], [IDS[0]]], PacketReason.BAD_FIELD),
        ([MSG, "hi", 1, [IDS[0][:8]], []], PacketReason.BAD_FIELD),
        ([MSG, "hi", 1, ["x"], []], PacketReason.BAD_FIELD),
        ([MSG, "hi", 1, b"not a list", []], PacketReason.BAD_FIELD),
        ([MSG, "hi", 1, [], 0], PacketReason.BAD_FIELD),
        ([MSG, "hi", 1, []], PacketReason.BAD_FIELD),  # 4 items
        ([MSG, "hi", 1, [], [], []], PacketReason.BAD_FIELD),  # 6 items
        ([MSG, "hi", 1, IDS[:MAX_PARENTS], []], None),  # the bound itself is fine
        ([MSG, "hi", 1, IDS[: MAX_PARENTS + 1], []], PacketReason.MALFORMED),  # item bound
        ([MSG, "hi", 1, IDS[:4], IDS[4 : MAX_PARENTS + 1]], PacketReason.MALFORMED),
        ([MSG, "hi", 1, IDS[:1000], []], PacketReason.MALFORMED),  # thousands of parents
        ([MSG, "hi", 1, [[IDS[0]]], []], PacketReason.MALFORMED),  # nested too deep
        ([0, [], []], PacketReason.BAD_FIELD),  # a history body is no message
    ],
)
def test_message_body_decode_bounds(items: list[object], reason: PacketReason | None) -> None:
    data = _enc(items)
    if reason is None:
        assert MessageBody.decode(data).parents == tuple(IDS[:MAX_PARENTS])
        return
    decoders = [MessageBody.decode, decode_direct_body]
    if items[0] != 0:
        decoders.append(decode_shared_body)  # [0, [], []] is a history body there
    for decode in decoders:
        with pytest.raises(PacketError) as info:
            decode(data)
        assert info.value.reason is reason


# -- HistoryBody ------------------------------------------------------------------------------


def test_history_body_round_trip_and_bounds() -> None:
    body = HistoryBody(tuple(IDS[:MAX_HEADS_SHOWN]), tuple(IDS[50 : 50 + MAX_WANTS]))
    data = body.encode()
    assert cbor2.loads(data) == [0, IDS[:MAX_HEADS_SHOWN], IDS[50 : 50 + MAX_WANTS]]
    assert HistoryBody.decode(data) == body
    assert decode_shared_body(data) == body
    assert len(data) == 1 + 1 + 1 + 8 * 17 + 2 + 32 * 17  # 685 bytes at most
    assert HistoryBody.decode(HistoryBody().encode()) == HistoryBody((), ())


@pytest.mark.parametrize(
    "make",
    [
        lambda: HistoryBody(tuple(IDS[: MAX_HEADS_SHOWN + 1])),
        lambda: HistoryBody((), tuple(IDS[: MAX_WANTS + 1])),
        lambda: HistoryBody((IDS[0], IDS[0])),
        lambda: HistoryBody((), (IDS[0], IDS[0])),
        lambda: HistoryBody((IDS[0],), (IDS[0],)),  # held and wanted at once
        lambda: HistoryBody((IDS[0][:15],)),
        lambda: HistoryBody(IDS[0]),  # type: ignore[arg-type]
    ],
)
def test_history_body_construction_bounds(make: object) -> None:
    with pytest.raises(PacketError) as info:
        make()  # type: ignore[operator]
    assert info.value.reason is PacketReason.BAD_FIELD


@pytest.mark.parametrize(
    ("items", "reason"),
    [
        ([1, [], []], PacketReason.BAD_FIELD),  # unknown tag
        ([-1, [], []], PacketReason.BAD_FIELD),
        ([0, [], [], []], PacketReason.BAD_FIELD),
        ([0, []], PacketReason.BAD_FIELD),
        ([0, IDS[: MAX_HEADS_SHOWN + 1], []], PacketReason.BAD_FIELD),
        ([0, [], IDS[: MAX_WANTS + 1]], PacketReason.BAD_FIELD),
        ([0, IDS[:MAX_HEADS_SHOWN], IDS[10 : 11 + MAX_WANTS]], PacketReason.MALFORMED),  # items
        ([0, [IDS[0]], [IDS[0]]], PacketReason.BAD_FIELD),
        ([0, [IDS[0], IDS[0]], []], PacketReason.BAD_FIELD),
        ([0, [b"short"], []], PacketReason.BAD_FIELD),
        ([0, [[IDS[0]]], []], PacketReason.MALFORMED),
        ([0, "x", []], PacketReason.BAD_FIELD),
    ],
)
def test_history_body_decode_bounds(items: list[object], reason: PacketReason) -> None:
    for decode in (HistoryBody.decode, decode_shared_body):
        with pytest.raises(PacketError) as info:
            decode(_enc(items))
        assert info.value.reason is reason


# -- telling bodies apart -----------------------------------------------------------------------


def test_direct_decoder_tells_a_message_from_a_control_part_by_its_second_item() -> None:
    part = ControlPart(MSG, IDS[0], 0, 1, b"chunk")
    message = MessageBody(MSG, "hi", 5, (IDS[0],))
    assert len(cbor2.loads(part.encode())) == len(cbor2.loads(message.encode())) == 5
    assert decode_direct_body(part.encode()) == part
    assert decode_direct_body(message.encode()) == message
    # Neither passes for the other.
    with pytest.raises(PacketError):
        ControlPart.decode(message.encode())
    with pytest.raises(PacketError):
        MessageBody.decode(part.encode())
    # A control part never belongs in a group or channel.
    with pytest.raises(PacketError):
        decode_shared_body(part.encode())


def test_a_history_body_is_no_direct_body() -> None:
    for body in (HistoryBody(), HistoryBody((IDS[0],), (IDS[1],))):
        with pytest.raises(PacketError):
            decode_direct_body(body.encode())


# -- properties and fuzzing ---------------------------------------------------------------------

_ids = st.lists(st.binary(min_size=16, max_size=16), unique=True)


@st.composite
def _messages(draw: st.DrawFn) -> MessageBody:
    msg_id = draw(st.binary(min_size=16, max_size=16))
    named = draw(_ids.filter(lambda ids: msg_id not in ids).map(lambda ids: ids[:MAX_PARENTS]))
    cut = draw(st.integers(0, len(named)))
    text = draw(st.text(max_size=300).filter(lambda t: len(t.encode()) <= MAX_TEXT_BYTES))
    sent_ms = draw(st.integers(0, MAX_SENT_MS - 1))
    return MessageBody(msg_id, text, sent_ms, tuple(named[:cut]), tuple(named[cut:]))


@st.composite
def _histories(draw: st.DrawFn) -> HistoryBody:
    ids = draw(_ids.map(lambda ids: ids[: MAX_HEADS_SHOWN + MAX_WANTS]))
    cut = draw(st.integers(0, min(len(ids), MAX_HEADS_SHOWN)))
    return HistoryBody(tuple(ids[:cut]), tuple(ids[cut : cut + MAX_WANTS]))


@settings(max_examples=300, deadline=None)
@given(body=_messages())
def test_message_round_trip_property(body: MessageBody) -> None:
    data = body.encode()
    assert MessageBody.decode(data) == body
    assert decode_direct_body(data) == body
    assert decode_shared_body(data) == body
    assert _enc(cbor2.loads(data)) == data


@settings(max_examples=300, deadline=None)
@given(body=_histories())
def test_history_round_trip_property(body: HistoryBody) -> None:
    data = body.encode()
    assert HistoryBody.decode(data) == body
    assert decode_shared_body(data) == body
    assert _enc(cbor2.loads(data)) == data


_DECODERS = [MessageBody.decode, HistoryBody.decode, decode_direct_body, decode_shared_body]


def _decode_or_packet_error(data: bytes) -> None:
    """Each decoder returns a body that re-encodes to the input, or raises PacketError."""
    for decode in _DECODERS:
        try:
            body = decode(data)
        except PacketError:
            continue
        if isinstance(body, MessageBody) and len(cbor2.loads(data)) == 2:
            assert _enc([body.msg_id, body.text]) == data  # the older form
        else:
            assert body.encode() == data


@settings(max_examples=500, deadline=None)
@given(data=st.binary(max_size=120))
def test_any_bytes_decode_or_raise_packet_error(data: bytes) -> None:
    _decode_or_packet_error(data)


_leaf = st.one_of(
    st.binary(min_size=15, max_size=17),
    st.binary(max_size=4),
    st.text(max_size=8),
    st.integers(-(2**64), 2**64 - 1),
    st.sampled_from([0, 1, 2**63 - 1, 2**63]),
    st.none(),
    st.booleans(),
)
_tree = st.recursive(_leaf, lambda inner: st.lists(inner, max_size=10), max_leaves=40)


@settings(max_examples=500, deadline=None)
@given(items=st.lists(_tree, max_size=6))
def test_any_cbor_array_decodes_or_raises_packet_error(items: list[object]) -> None:
    _decode_or_packet_error(_enc(items))


@settings(max_examples=400, deadline=None)
@given(
    body=st.one_of(_messages(), _histories()),
    at=st.integers(0, 2000),
    byte=st.integers(0, 255),
    cut=st.integers(0, 2000),
)
def test_mutated_bodies_decode_or_raise_packet_error(
    body: MessageBody | HistoryBody, at: int, byte: int, cut: int
) -> None:
    data = bytearray(body.encode())
    data[at % len(data)] = byte
    _decode_or_packet_error(bytes(data))
    _decode_or_packet_error(bytes(data[: cut % len(data)]))
    _decode_or_packet_error(bytes(data) + b"\x00")
