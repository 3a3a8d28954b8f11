"""The jitter buffer: frames out in order at their time, late ones dropped, its bounds."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from meshchat.talk.jitter import JitterBuffer, Verdict

F = 20  # ms a frame


def drain(buffer: JitterBuffer, until: int) -> list[tuple[int, bytes | None]]:
    out: list[tuple[int, bytes | None]] = []
    for now in range(0, until + 1):
        out += buffer.pop(now)
    return out


def test_frames_in_time_play_in_order_after_the_delay() -> None:
    buffer = JitterBuffer(delay_ms=60)
    for seq in range(5):
        assert buffer.push(seq, bytes([seq]), seq * F) is Verdict.HELD
    assert buffer.pop(59) == []
    assert buffer.pop(60) == [(0, b"\x00")]
    assert buffer.pop(60 + 4 * F) == [(s, bytes([s])) for s in range(1, 5)]


def test_reordered_frames_play_in_order() -> None:
    buffer = JitterBuffer(delay_ms=60)
    for seq, at in ((0, 0), (2, 40), (1, 45), (4, 80), (3, 95)):
        assert buffer.push(seq, bytes([seq]), at) is Verdict.HELD
    assert [s for s, _ in drain(buffer, 200)] == [0, 1, 2, 3, 4]
    assert buffer.stats.gaps == 0


def test_a_frame_after_its_turn_is_dropped_and_plays_as_a_gap() -> None:
    buffer = JitterBuffer(delay_ms=60)
    buffer.push(0, b"a", 0)
    buffer.push(2, b"c", 40)
    assert buffer.pop(99) == [(0, b"a"), (1, None)]  # 1 was due at 80
    assert buffer.push(1, b"b", 99) is Verdict.LATE
    assert buffer.pop(100) == [(2, b"c")]
    assert buffer.stats.late == 1 and buffer.stats.gaps == 1


def test_a_replayed_or_repeated_frame_is_refused() -> None:
    buffer = JitterBuffer(delay_ms=60)
    buffer.push(0, b"a", 0)
    assert buffer.push(0, b"a", 1) is Verdict.DUPLICATE
    buffer.pop(60)
    assert buffer.push(0, b"a", 61) is Verdict.LATE


def test_frames_far_ahead_are_refused_so_memory_stays_bounded() -> None:
    buffer = JitterBuffer(delay_ms=60, max_held=25)
    for seq in range(1000):
        buffer.push(seq, bytes(100), 0)
    assert len(buffer) == 25
    assert buffer.stats.too_early == 975


def test_the_end_frame_finishes_the_talk() -> None:
    buffer = JitterBuffer(delay_ms=60)
    buffer.push(0, b"a", 0)
    buffer.push(1, b"b", 20, end=True)
    assert buffer.push(2, b"c", 40) is Verdict.AFTER_END
    assert drain(buffer, 200) == [(0, b"a"), (1, b"b")]
    assert buffer.finished and buffer.next_due_ms() is None


def test_a_stalled_stream_waits_instead_of_playing_gaps() -> None:
    buffer = JitterBuffer(delay_ms=60)
    buffer.push(0, b"a", 0)
    assert drain(buffer, 1000) == [(0, b"a")]  # nothing after it came: nothing to fill
    assert buffer.push(1, b"b", 1001) is Verdict.HELD  # its turn is past, but it is next
    assert buffer.pop(1001) == [(1, b"b")]


def test_a_faster_path_moves_the_schedule_earlier() -> None:
    buffer = JitterBuffer(delay_ms=60)
    buffer.push(0, b"a", 50)  # the first frame was slow
    buffer.push(1, b"b", 40)  # the next shows a path 30 ms faster
    assert buffer.due_ms(1) == 40 + 60
    assert buffer.pop(80) == [(0, b"a")]


@settings(max_examples=300)
@given(
    st.lists(
        st.tuples(st.integers(0, 60), st.integers(0, 40), st.booleans()),
        max_size=120,
    )
)
def test_whatever_comes_each_frame_leaves_once_in_order_within_bounds(
    events: list[tuple[int, int, bool]],
) -> None:
    buffer = JitterBuffer(delay_ms=60, max_held=25)
    now, out = 0, []
    for seq, step, end in events:
        now += step
        buffer.push(seq, bytes([seq % 256]), now, end=end and seq > 0)
        assert len(buffer) <= 25
        out += buffer.pop(now)
    out += buffer.pop(now + 10_000)
    seqs = [s for s, _ in out]
    assert seqs == list(range(len(seqs)))  # in order, none twice, none skipped
    for seq, data in out:
        assert data is None or data == bytes([seq % 256])
