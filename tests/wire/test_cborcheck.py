"""The strict CBOR pre-check: canonical, bounded, no tags, floats or indefinite lengths."""

from __future__ import annotations

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshchat.errors import PacketError, PacketReason
from meshchat.wire.cborcheck import check_cbor


def _h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


@pytest.mark.parametrize(
    "value",
    [
        [],
        [0, 23, 24, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**64 - 1],
        [-1, -24, -25, -256, -257, -(2**64)],
        [b"", b"x" * 23, b"x" * 24, b"y" * 300],
        ["", "é", "x" * 1000],
        [True, False, None],
        [[1, 2], [b"a", ["deep"]]],
        [1, [2, [3]]],
    ],
)
def test_accepts_canonical_arrays(value: object) -> None:
    data = cbor2.dumps(value, canonical=True)
    check_cbor(data, max_items=64, max_depth=4)
    assert cbor2.loads(data) == value


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (_h("c1 00"), PacketReason.MALFORMED),  # tag 1 (epoch time)
        (_h("d8 20 60"), PacketReason.MALFORMED),  # tag 32 (URI)
        (_h("81 c2 41 01"), PacketReason.MALFORMED),  # bignum tag inside an array
        (_h("f9 3c 00"), PacketReason.MALFORMED),  # half float 1.0
        (_h("fa 3f 80 00 00"), PacketReason.MALFORMED),  # single float
        (_h("fb 3f f0 00 00 00 00 00 00"), PacketReason.MALFORMED),  # double float
        (_h("f7"), PacketReason.MALFORMED),  # undefined
        (_h("f0"), PacketReason.MALFORMED),  # simple value 16
        (_h("f8 20"), PacketReason.MALFORMED),  # one-byte simple value
        (_h("9f 01 ff"), PacketReason.MALFORMED),  # indefinite array
        (_h("5f 41 01 ff"), PacketReason.MALFORMED),  # indefinite byte string
        (_h("7f 61 61 ff"), PacketReason.MALFORMED),  # indefinite text string
        (_h("ff"), PacketReason.MALFORMED),  # a lone break
        (_h("1c"), PacketReason.MALFORMED),  # reserved additional info 28
        (_h("18 17"), PacketReason.NOT_CANONICAL),  # 23 in a one-byte form
        (_h("19 00 ff"), PacketReason.NOT_CANONICAL),  # 255 in a two-byte form
        (_h("1a 00 00 ff ff"), PacketReason.NOT_CANONICAL),
        (_h("1b 00 00 00 00 ff ff ff ff"), PacketReason.NOT_CANONICAL),
        (_h("38 10"), PacketReason.NOT_CANONICAL),  # -17 in a one-byte form
        (_h("58 01 00"), PacketReason.NOT_CANONICAL),  # 1-byte string, long length form
        (_h("98 01 00"), PacketReason.NOT_CANONICAL),  # 1-item array, long length form
        (_h("a1 01 02"), PacketReason.MALFORMED),  # a map, not allowed by default
        (_h("82 01 a0"), PacketReason.MALFORMED),  # an empty map inside an array
        (_h("01 02"), PacketReason.MALFORMED),  # trailing bytes
        (_h("80 00"), PacketReason.MALFORMED),
        (_h(""), PacketReason.MALFORMED),  # empty
        (_h("82 01"), PacketReason.MALFORMED),  # array cut short
        (_h("43 01 02"), PacketReason.MALFORMED),  # string cut short
        (_h("19 01"), PacketReason.MALFORMED),  # integer header cut short
        (_h("1b 01 02 03"), PacketReason.MALFORMED),
    ],
    ids=lambda v: v.hex() if isinstance(v, bytes) else None,
)
def test_rejects(data: bytes, reason: PacketReason) -> None:
    with pytest.raises(PacketError) as info:
        check_cbor(data)
    assert info.value.reason is reason


def test_maps_are_rejected() -> None:
    data = cbor2.dumps({1: 2, 3: [4]}, canonical=True)
    with pytest.raises(PacketError):
        check_cbor(data)


def test_depth_limit() -> None:
    nested = cbor2.dumps([[[1]]], canonical=True)
    check_cbor(nested, max_depth=3)
    with pytest.raises(PacketError) as info:
        check_cbor(nested, max_depth=2)
    assert "deep" in str(info.value)
    # An empty container opens no level.
    check_cbor(cbor2.dumps([[]], canonical=True), max_depth=1)


def test_deeply_nested_input_is_stopped_early() -> None:
    data = b"\x81" * 100_000 + b"\x00"
    with pytest.raises(PacketError):
        check_cbor(data)


@pytest.mark.parametrize("n", [3, 4])
def test_item_limit(n: int) -> None:
    data = cbor2.dumps([0] * n, canonical=True)  # 1 + n items
    if n + 1 <= 4:
        check_cbor(data, max_items=4)
    else:
        with pytest.raises(PacketError):
            check_cbor(data, max_items=4)


def test_declared_container_larger_than_limit_rejected_without_reading_it() -> None:
    # An array header claiming 2**32 items, with nothing after it.
    with pytest.raises(PacketError) as info:
        check_cbor(_h("9a 00 01 00 00"), max_items=64)
    assert "large" in str(info.value)


def test_huge_declared_string_length_rejected() -> None:
    with pytest.raises(PacketError):
        check_cbor(_h("5b 7f ff ff ff ff ff ff ff 00"))


def test_every_truncation_of_a_valid_item_rejected() -> None:
    data = cbor2.dumps([1, b"abc", ["x", [True, None]], -300, 2**40], canonical=True)
    check_cbor(data)
    for cut in range(len(data)):
        with pytest.raises(PacketError):
            check_cbor(data[:cut])


def test_accepts_memoryview_and_bytearray() -> None:
    data = cbor2.dumps([1, b"x"], canonical=True)
    check_cbor(bytearray(data))  # type: ignore[arg-type]
    check_cbor(memoryview(data))  # type: ignore[arg-type]


# -- documented gaps --------------------------------------------------------------------------


def test_invalid_utf8_text_is_rejected() -> None:
    with pytest.raises(PacketError):
        check_cbor(_h("62 ff fe"))


# -- properties -------------------------------------------------------------------------------


def _is_utf8_failure(exc: BaseException) -> bool:
    while exc is not None:
        if isinstance(exc, UnicodeDecodeError):
            return True
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return False


def _check_and_compare(data: bytes, **limits: int) -> None:
    try:
        check_cbor(data, **limits)  # type: ignore[arg-type]
    except PacketError:
        return
    try:
        value = cbor2.loads(data)
    except cbor2.CBORDecodeError as exc:
        # The one known gap (see test_invalid_utf8_text_is_rejected).
        assert _is_utf8_failure(exc), exc
        return
    assert cbor2.dumps(value, canonical=True) == data


@settings(max_examples=1500, deadline=None)
@given(st.binary(max_size=64))
def test_any_bytes_pass_canonically_or_raise_packet_error(data: bytes) -> None:
    _check_and_compare(data)


_HEADS = st.sampled_from(
    [
        *(0x00, 0x17, 0x18, 0x19, 0x1A, 0x1B, 0x20, 0x38, 0x40, 0x41, 0x58, 0x60, 0x61, 0x78),
        *(0x80, 0x81, 0x82, 0x83, 0x98, 0x9F, 0xA0, 0xA1, 0xC0, 0xF4, 0xF5, 0xF6, 0xF7, 0xF9, 0xFF),
    ]
)


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.one_of(_HEADS, st.integers(0, 255)), max_size=40))
def test_header_heavy_bytes_pass_canonically_or_raise_packet_error(items: list[int]) -> None:
    # Biased towards interesting initial bytes, so nested structures actually occur.
    _check_and_compare(bytes(items), max_items=16, max_depth=3)


_leaves = st.one_of(
    st.integers(-(2**64), 2**64 - 1),
    st.binary(max_size=40),
    st.text(max_size=20),
    st.booleans(),
    st.none(),
)
_values = st.recursive(_leaves, lambda inner: st.lists(inner, max_size=5), max_leaves=20)


@settings(max_examples=500, deadline=None)
@given(_values)
def test_canonical_encodings_of_allowed_values_are_accepted(value: object) -> None:
    data = cbor2.dumps(value, canonical=True)
    check_cbor(data, max_items=1000, max_depth=100)
    assert cbor2.loads(data) == value
