"""Length-prefixed stream framing."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshchat.errors import FramingError
from meshchat.wire.framing import HEADER_SIZE, FrameDecoder, frame

MAX = 2048
PAYLOADS = [b"a", b"hello", b"\x00" * 300, bytes(range(256)) * 8, b"z" * MAX]


def test_frame_prefixes_big_endian_length() -> None:
    assert frame(b"abc", MAX) == b"\x00\x03abc"
    assert frame(b"x" * 258, MAX)[:2] == b"\x01\x02"


@pytest.mark.parametrize("payload", [b"", b"x" * (MAX + 1)])
def test_frame_rejects_empty_and_oversized(payload: bytes) -> None:
    with pytest.raises(FramingError):
        frame(payload, MAX)


def test_decoder_needs_a_sane_max_size() -> None:
    for bad in (0, -1, 1 << 16):
        with pytest.raises(ValueError):
            FrameDecoder(bad)
    assert FrameDecoder((1 << 16) - 1).buffered == 0


def test_all_at_once() -> None:
    stream = b"".join(frame(p, MAX) for p in PAYLOADS)
    decoder = FrameDecoder(MAX)
    assert decoder.feed(stream) == PAYLOADS
    assert decoder.buffered == 0


def test_one_byte_at_a_time_equals_all_at_once() -> None:
    stream = b"".join(frame(p, MAX) for p in PAYLOADS)
    decoder = FrameDecoder(MAX)
    got: list[bytes] = []
    for i in range(len(stream)):
        out = decoder.feed(stream[i : i + 1])
        got.extend(out)
        assert len(out) <= 1
    assert got == PAYLOADS
    assert decoder.buffered == 0


def test_partial_frame_is_kept_until_complete() -> None:
    decoder = FrameDecoder(MAX)
    data = frame(b"hello", MAX)
    assert decoder.feed(data[:1]) == []
    assert decoder.feed(data[1:4]) == []
    assert decoder.buffered == 4
    assert decoder.feed(data[4:] + data[:3]) == [b"hello"]
    assert decoder.buffered == 3


def test_feed_accepts_empty_chunks() -> None:
    decoder = FrameDecoder(MAX)
    assert decoder.feed(b"") == []
    assert decoder.feed(frame(b"x", MAX) + b"") == [b"x"]


@pytest.mark.parametrize("header", [b"\x00\x00", (MAX + 1).to_bytes(2, "big"), b"\xff\xff"])
def test_zero_or_oversized_length_raises(header: bytes) -> None:
    decoder = FrameDecoder(MAX)
    with pytest.raises(FramingError):
        decoder.feed(header + b"payload")
    assert decoder.buffered == 0  # nothing stays buffered after a framing error


def test_bad_length_after_good_frames_raises() -> None:
    decoder = FrameDecoder(16)
    with pytest.raises(FramingError):
        decoder.feed(frame(b"ok", 16) + b"\x00\x11" + b"x" * 17)


def test_buffer_bounded_by_one_frame() -> None:
    decoder = FrameDecoder(MAX)
    for _ in range(10):
        decoder.feed(frame(b"x" * MAX, MAX)[:-1])
        assert decoder.buffered <= MAX + HEADER_SIZE
        assert decoder.feed(b"x") == [b"x" * MAX]
    assert decoder.buffered == 0


@settings(max_examples=300, deadline=None)
@given(
    payloads=st.lists(st.binary(min_size=1, max_size=300), max_size=12),
    cuts=st.lists(st.integers(0, 4000), max_size=30),
)
def test_random_chunking_gives_the_same_frames(payloads: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(frame(p, 300) for p in payloads)
    points = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    decoder = FrameDecoder(300)
    got: list[bytes] = []
    for start, end in itertools.pairwise(points):
        got.extend(decoder.feed(stream[start:end]))
        assert decoder.buffered <= 300 + HEADER_SIZE
    assert got == payloads
    assert decoder.buffered == 0


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=64), max_size=10))
def test_random_bytes_give_frames_or_framing_error(chunks: list[bytes]) -> None:
    decoder = FrameDecoder(100)
    for chunk in chunks:
        try:
            frames = decoder.feed(chunk)
        except FramingError:
            return
        assert all(1 <= len(f) <= 100 for f in frames)
        assert decoder.buffered < 100 + HEADER_SIZE
