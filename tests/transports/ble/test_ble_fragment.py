"""Fragmentation and bounded reassembly of BLE link frames."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshchat.errors import FramingError
from meshchat.transports.ble.fragment import (
    HEADER_SIZE,
    MAX_FRAGMENTS,
    Fragmenter,
    Reassembler,
    fragment_count,
)
from meshchat.transports.ble.session import MAX_LINK_FRAME

ATT_VALUE_SIZES = {23: 20, 247: 244, 517: 512}


def reassembler(**kwargs: int | float) -> Reassembler:
    options: dict[str, float] = {"max_frame_size": MAX_LINK_FRAME}
    options.update(kwargs)
    return Reassembler(**options)  # type: ignore[arg-type]


def header(frame_id: int, index: int, count: int) -> bytes:
    return frame_id.to_bytes(2, "big") + bytes([index, count])


@pytest.mark.parametrize("mtu", sorted(ATT_VALUE_SIZES))
def test_largest_frame_fits_every_mtu(mtu: int) -> None:
    value_size = ATT_VALUE_SIZES[mtu]
    frame = random.Random(mtu).randbytes(MAX_LINK_FRAME)
    fragments = Fragmenter(MAX_LINK_FRAME).split(frame, value_size)
    assert len(fragments) == fragment_count(len(frame), value_size) <= MAX_FRAGMENTS
    assert all(HEADER_SIZE < len(f) <= value_size for f in fragments)
    r = reassembler()
    results = [r.feed(f, 0.0) for f in fragments]
    assert results[:-1] == [None] * (len(fragments) - 1)
    assert results[-1] == frame
    assert r.pending == 0 and r.buffered == 0


@settings(max_examples=200, deadline=None)
@given(
    frame=st.binary(min_size=1, max_size=MAX_LINK_FRAME),
    value_size=st.integers(min_value=20, max_value=512),
    seed=st.integers(0, 2**32),
)
def test_any_split_round_trips_in_any_order(frame: bytes, value_size: int, seed: int) -> None:
    fragments = Fragmenter(MAX_LINK_FRAME).split(frame, value_size)
    random.Random(seed).shuffle(fragments)
    r = reassembler()
    out = [r.feed(f, 1.0) for f in fragments]
    assert [x for x in out if x is not None] == [frame]
    assert out[-1] == frame


@settings(max_examples=100, deadline=None)
@given(
    frames=st.lists(st.binary(min_size=1, max_size=600), min_size=1, max_size=6),
    seed=st.integers(0, 2**32),
)
def test_interleaved_frames_all_arrive(frames: list[bytes], seed: int) -> None:
    """A sender may interleave frames; each is rebuilt from its own fragments."""
    fragmenter = Fragmenter(MAX_LINK_FRAME)
    queues = [fragmenter.split(frame, 40) for frame in frames]
    rng = random.Random(seed)
    r = reassembler()
    done: list[bytes] = []
    while any(queues):
        queue = rng.choice([q for q in queues if q])
        result = r.feed(queue.pop(0), 0.0)
        if result is not None:
            done.append(result)
    assert sorted(done) == sorted(frames)


def test_frame_ids_wrap() -> None:
    fragmenter = Fragmenter(100)
    ids = [fragmenter.split(b"x", 20)[0][:2] for _ in range(65538)]
    assert ids[0] == ids[65536] == b"\x00\x00"
    assert ids[65535] == b"\xff\xff"


@pytest.mark.parametrize(
    ("frame", "value_size"),
    [(b"", 20), (b"x" * (MAX_LINK_FRAME + 1), 512), (b"x" * 10, 4), (b"x" * 300, 5)],
)
def test_fragmenter_rejects_what_cannot_be_sent(frame: bytes, value_size: int) -> None:
    with pytest.raises(FramingError):
        Fragmenter(MAX_LINK_FRAME).split(frame, value_size)


@pytest.mark.parametrize(
    ("fragments", "reason"),
    [
        ([b"\x00\x01\x00"], "short"),
        ([header(1, 0, 1)], "no body"),
        ([header(1, 0, 0) + b"x"], "count 0"),
        ([header(1, 2, 2) + b"x"], "index out of range"),
        ([header(1, 0, 3) + b"x", header(1, 1, 4) + b"x"], "count changed"),
        ([header(1, 0, 3) + b"x", header(1, 0, 3) + b"x"], "overlap"),
        ([header(1, 0, 3) + b"x", header(1, 1, 1) + b"x"], "count changed to 1"),
        ([header(1, 0, 2) + b"x" * 2000, header(1, 1, 2) + b"x" * 100], "oversize total"),
        ([header(1, 0, 1) + b"x" * (MAX_LINK_FRAME + 1)], "oversize single"),
    ],
)
def test_inconsistent_fragments_raise_and_reassembler_recovers(
    fragments: list[bytes], reason: str
) -> None:
    r = reassembler()
    with pytest.raises(FramingError):
        for fragment in fragments:
            r.feed(fragment, 0.0)
    assert r.pending == 0 and r.buffered == 0, reason
    assert r.stats.rejected == 1
    # The same frame id works again afterwards.
    good = Fragmenter(MAX_LINK_FRAME).split(b"hello world" * 10, 30)
    assert [r.feed(f, 0.0) for f in good][-1] == b"hello world" * 10


def test_ten_thousand_unfinished_frames_stay_bounded() -> None:
    r = reassembler(max_pending=8, max_buffered=16 * 1024)
    peak_bytes = peak_pending = 0
    for n in range(10_000):
        assert r.feed(header(n % 65536, 0, 200) + b"z" * 500, 0.0) is None
        peak_bytes = max(peak_bytes, r.buffered)
        peak_pending = max(peak_pending, r.pending)
    assert peak_pending <= 8
    assert peak_bytes <= 16 * 1024
    assert r.stats.evicted >= 10_000 - 8
    frame = bytes(range(256)) * 8
    assert [r.feed(f, 0.0) for f in Fragmenter(MAX_LINK_FRAME).split(frame, 244)][-1] == frame


def test_byte_cap_evicts_oldest_but_keeps_the_growing_frame() -> None:
    r = reassembler(max_pending=8, max_buffered=MAX_LINK_FRAME)
    r.feed(header(1, 0, 3) + b"a" * 1500, 0.0)
    r.feed(header(2, 0, 3) + b"b" * 1500, 0.0)  # evicts frame 1 to fit
    assert r.pending == 1 and r.buffered == 1500
    assert r.feed(header(2, 1, 3) + b"b" * 500, 0.0) is None
    assert r.feed(header(2, 2, 3) + b"b" * 49, 0.0) == b"b" * 2049
    assert r.stats.evicted == 1


def test_partial_frames_expire() -> None:
    r = reassembler(timeout=5.0)
    r.feed(header(7, 0, 2) + b"old", 0.0)
    r.feed(header(8, 0, 2) + b"new", 4.0)
    assert r.expire(5.5) == 1
    assert r.pending == 1 and r.buffered == 3
    # The expired frame's last fragment now opens a new partial rather than completing it.
    assert r.feed(header(7, 1, 2) + b"!", 5.6) is None
    assert r.feed(header(8, 1, 2) + b"!", 5.7) == b"new!"
    assert r.stats.expired == 1


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=600), max_size=60))
def test_random_fragments_never_crash_and_stay_bounded(fragments: list[bytes]) -> None:
    r = reassembler(max_pending=4, max_buffered=MAX_LINK_FRAME * 2)
    for now, fragment in enumerate(fragments):
        try:
            result = r.feed(fragment, float(now))
        except FramingError:
            continue
        if result is not None:
            assert 0 < len(result) <= MAX_LINK_FRAME
        assert r.pending <= 4
        assert r.buffered <= MAX_LINK_FRAME * 2


def test_reassembler_arguments_are_checked() -> None:
    with pytest.raises(ValueError):
        Reassembler(max_frame_size=100, max_buffered=50)
    with pytest.raises(ValueError):
        Reassembler(max_frame_size=100, max_pending=0)
