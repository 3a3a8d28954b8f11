"""Request, piece and missing bodies: round trips, bounds, refusals."""

from __future__ import annotations

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshchat.errors import PacketError, PacketReason
from meshchat.files.manifest import MAX_CHUNKS
from meshchat.files.wire import (
    MAX_LEVEL,
    MAX_LIST_BODY,
    MAX_PIECE_BODY,
    MAX_PIECE_DATA,
    MAX_REQUEST_PIECES,
    Missing,
    Piece,
    Request,
    _decode_strict,
    _fast_piece,
    decode_body,
)

ROOT = b"\x07" * 32
roots = st.binary(min_size=32, max_size=32)
levels = st.integers(0, MAX_LEVEL)
index_lists = st.lists(
    st.integers(0, MAX_CHUNKS - 1), min_size=1, max_size=MAX_REQUEST_PIECES, unique=True
)


@settings(max_examples=200)
@given(roots, levels, index_lists, st.booleans())
def test_lists_round_trip(root: bytes, level: int, indices: list[int], missing: bool) -> None:
    body = (Missing if missing else Request)(root, level, tuple(indices))
    wire = body.encode()
    assert len(wire) <= MAX_LIST_BODY
    assert decode_body(wire) == body


@settings(max_examples=200)
@given(roots, levels, st.integers(0, MAX_CHUNKS - 1), st.binary(max_size=MAX_PIECE_DATA))
def test_pieces_round_trip(root: bytes, level: int, index: int, data: bytes) -> None:
    body = Piece(root, level, index, data)
    wire = body.encode()
    assert len(wire) <= MAX_PIECE_BODY
    assert decode_body(wire) == body


def test_the_largest_bodies_are_the_stated_bounds() -> None:
    piece = Piece(ROOT, MAX_LEVEL, MAX_CHUNKS - 1, bytes(MAX_PIECE_DATA))
    assert len(piece.encode()) == MAX_PIECE_BODY == 1597
    top = tuple(range(MAX_CHUNKS - MAX_REQUEST_PIECES, MAX_CHUNKS))
    assert len(Request(ROOT, MAX_LEVEL, top).encode()) == MAX_LIST_BODY == 199


@settings(max_examples=500)
@given(st.binary(max_size=1700))
def test_any_bytes_decode_or_raise_packet_error(data: bytes) -> None:
    try:
        body = decode_body(data)
    except PacketError:
        return
    assert body.encode() == data


def _enc(value: object) -> bytes:
    return cbor2.dumps(value, canonical=True)


@pytest.mark.parametrize(
    "fields",
    [
        [1, ROOT, 0, []],  # no index
        [1, ROOT, 0, [1, 1]],  # one twice
        [1, ROOT, 0, list(range(MAX_REQUEST_PIECES + 1))],
        [1, ROOT, 0, [MAX_CHUNKS]],
        [1, ROOT, MAX_LEVEL + 1, [0]],
        [1, ROOT[:31], 0, [0]],
        [1, ROOT, 0, [-1]],
        [1, ROOT, 0, 5],
        [3, ROOT, 0, [[0]]],
        [2, ROOT, 0, 0, "text"],
        [2, ROOT, 0, 0, bytes(MAX_PIECE_DATA + 1)],
        [2, ROOT, 0, MAX_CHUNKS, b""],
        [2, ROOT, 0, [0]],  # a piece with a list's shape
        [1, ROOT, 0, 0, b""],  # a list with a piece's shape
        [4, ROOT, 0, [0]],  # unknown tag
        [2**64 - 1, ROOT, 0, [0]],
    ],
)
def test_bad_bodies_are_refused(fields: list[object]) -> None:
    with pytest.raises(PacketError):
        decode_body(_enc(fields))


def test_oversized_and_non_canonical() -> None:
    with pytest.raises(PacketError) as caught:
        decode_body(bytes(MAX_PIECE_BODY + 1))
    assert caught.value.reason is PacketReason.OVERSIZED
    wire = Request(ROOT, 0, (5,)).encode()
    with pytest.raises(PacketError) as caught:
        decode_body(wire[:-1] + b"\x18\x05")  # 5 in two bytes
    assert caught.value.reason is PacketReason.NOT_CANONICAL
    with pytest.raises(PacketError):
        Request(ROOT, 0, ())
    with pytest.raises(PacketError):
        Piece(ROOT, 0, 0, "data")  # type: ignore[arg-type]


@settings(max_examples=300)
@given(roots, levels, st.integers(0, MAX_CHUNKS - 1), st.binary(max_size=MAX_PIECE_DATA), st.data())
def test_the_fast_piece_path_agrees_with_the_strict_one(
    root: bytes, level: int, index: int, data: bytes, draw: st.DataObject
) -> None:
    wire = bytearray(Piece(root, level, index, data).encode())
    assert _fast_piece(bytes(wire)) == _decode_strict(bytes(wire))
    # after any change of one byte, the fast path reads a piece only where the strict one does
    at = draw.draw(st.integers(0, min(len(wire) - 1, 48)))
    wire[at] = draw.draw(st.integers(0, 255))
    fast = _fast_piece(bytes(wire))
    if fast is not None:
        assert _decode_strict(bytes(wire)) == fast
