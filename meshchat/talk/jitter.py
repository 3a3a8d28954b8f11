"""The receiver's jitter buffer: live frames in, the same frames out at a steady pace.

Theory of operation. Frames are numbered (``seq``) by the talker, one per ``frame_ms``, and
each has a place in time: frame ``s`` is due ``base + s * frame_ms + delay_ms``, where ``base``
is the earliest ``arrival - s * frame_ms`` seen so far (the fastest path the stream has had)
and ``delay_ms`` the playout delay (:data:`~meshchat.talk.params.PLAYOUT_DELAY_MS`). A frame
that comes within ``delay_ms`` of the fastest path plays in its turn; a later one has missed
its turn and is dropped (``LATE``), and the hole it left plays as a gap so the sound keeps
its length (what a gap sounds like, the codec's estimate fading out or silence, is decided
next to the buffer by :mod:`meshchat.talk.conceal`). :meth:`JitterBuffer.pop` hands out
every frame (or gap) whose time has come, in order.

Bounds: at most ``max_held`` frames wait (a frame further ahead of playout is refused,
``TOO_EARLY``), so a talker that sends too fast or too far ahead costs at most ``max_held``
packets of memory; a frame whose turn passed or which is already held (a replay) is refused
(``LATE``, ``DUPLICATE``); the delay added to the fastest path is exactly ``delay_ms``.
Pure: the caller passes the time in milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from meshchat.talk.params import FRAME_MS, MAX_HELD, PLAYOUT_DELAY_MS

__all__ = ["JitterBuffer", "JitterStats", "Verdict"]


class Verdict(Enum):
    """What became of a frame given to the buffer."""

    HELD = "held"
    LATE = "late"  #: its turn has passed (or it is a replay of a frame played)
    DUPLICATE = "duplicate"  #: the same seq is held already
    TOO_EARLY = "too-early"  #: further ahead than the buffer holds
    AFTER_END = "after-end"  #: beyond the talk's last frame


@dataclass(slots=True)
class JitterStats:
    held: int = 0
    late: int = 0
    duplicate: int = 0
    too_early: int = 0
    after_end: int = 0
    #: frames played as gaps (never came, or came too late)
    gaps: int = 0
    played: int = 0


@dataclass(slots=True)
class JitterBuffer:
    """See the module's theory of operation."""

    frame_ms: int = FRAME_MS
    delay_ms: int = PLAYOUT_DELAY_MS
    max_held: int = MAX_HELD
    stats: JitterStats = field(default_factory=JitterStats)
    _base: int | None = None
    _next: int = 0
    _held: dict[int, bytes] = field(default_factory=dict)
    _end: int | None = None

    def __post_init__(self) -> None:
        if self.frame_ms <= 0 or self.delay_ms < 0 or self.max_held <= 0:
            raise ValueError("frame length and bound must be positive, the delay not negative")

    def __len__(self) -> int:
        return len(self._held)

    @property
    def finished(self) -> bool:
        """Every frame up to the end frame has been handed out."""
        return self._end is not None and self._next > self._end

    def due_ms(self, seq: int) -> int | None:
        """When frame ``seq`` is due to play (None before any frame came)."""
        if self._base is None:
            return None
        return self._base + seq * self.frame_ms + self.delay_ms

    def push(self, seq: int, data: bytes, now_ms: int, *, end: bool = False) -> Verdict:
        """Give the buffer frame ``seq`` (``end``: the talk's last)."""
        if self._end is not None and seq > self._end:
            self.stats.after_end += 1
            return Verdict.AFTER_END
        if seq < self._next:
            self.stats.late += 1
            return Verdict.LATE
        if seq in self._held:
            self.stats.duplicate += 1
            return Verdict.DUPLICATE
        if seq >= self._next + self.max_held:
            self.stats.too_early += 1
            return Verdict.TOO_EARLY
        path = now_ms - seq * self.frame_ms
        if self._base is None or path < self._base:
            self._base = path
        due = self.due_ms(seq)
        if due is not None and due < now_ms and seq != self._next:
            # its turn passed while an earlier frame was awaited: the gap plays instead
            self.stats.late += 1
            return Verdict.LATE
        self._held[seq] = data
        if end:
            self._end = seq
        self.stats.held += 1
        return Verdict.HELD

    def held(self, seq: int) -> bytes | None:
        """Frame ``seq`` if it is in and waits to play (the buffer keeps it)."""
        return self._held.get(seq)

    def next_due_ms(self) -> int | None:
        """When :meth:`pop` next has something to hand out (None: nothing is awaited)."""
        if self._base is None or self.finished:
            return None
        return self.due_ms(self._next)

    def pop(self, now_ms: int) -> list[tuple[int, bytes | None]]:
        """Every frame whose time has come, in order; a gap is ``(seq, None)``."""
        out: list[tuple[int, bytes | None]] = []
        while not self.finished:
            due = self.due_ms(self._next)
            if due is None or due > now_ms:
                break
            if not self._held and self._end is None:
                # nothing waits: the next frame is merely late, so nothing plays yet
                # unless a later frame shows that this one was missed
                break
            data = self._held.pop(self._next, None)
            if data is None:
                self.stats.gaps += 1
            else:
                self.stats.played += 1
            out.append((self._next, data))
            self._next += 1
        return out
