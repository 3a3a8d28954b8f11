"""Fragmentation of link frames into ATT values, and their bounded reassembly.

A GATT write or notification carries one ATT value of at most ``min(mtu - 3, 512)`` bytes, far
less than a 2 KiB meshchat packet at the default MTU of 23. So a frame is cut into fragments,
each an ATT value made of a 4-byte header and at least one byte of the frame::

    +----------+-------+-------+----------------+
    | frame id | index | count | body (>= 1 B)  |
    |  u16 BE  |  u8   |  u8   |                |
    +----------+-------+-------+----------------+

The frame id tells fragments of concurrent frames apart (a sender may interleave frames); the
index places a body; the count says when the frame is whole. All fragments of one frame carry
the same count. A frame of at most :data:`MAX_FRAGMENTS` fragments fits any ATT MTU >= 23.

Theory of operation of :class:`Reassembler` (one per link, fed in arrival order):

=====================================  =================================================
fragment                               effect
=====================================  =================================================
shorter than header + 1 byte           :class:`FramingError`
count 0, or index >= count             :class:`FramingError`
count 1 (and no partial with that id)  the body is a whole frame: returned at once
first fragment of a new id             a partial frame is opened; if :attr:`max_pending`
                                       partials are open, the oldest is evicted first
count differs from the partial's       the partial is dropped; :class:`FramingError`
index already received (overlap)       the partial is dropped; :class:`FramingError`
body makes the frame oversized         the partial is dropped; :class:`FramingError`
last missing index                     the joined frame is returned; the partial closes
a partial older than ``timeout``       dropped by :meth:`expire` (also run on each feed)
=====================================  =================================================

Bytes buffered across all partials never exceed ``max_buffered``: the oldest partials are
evicted to make room. So a peer that opens 10,000 frames and finishes none costs at most
``max_buffered`` bytes and ``max_pending`` dictionary entries, and the link keeps working:
every error is raised for one fragment, after which the reassembler is ready for the next.
Nothing partial is ever returned; a link that drops mid-frame simply discards its reassembler.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from meshchat.errors import FramingError

__all__ = [
    "HEADER_SIZE",
    "MAX_FRAGMENTS",
    "MIN_VALUE_SIZE",
    "Fragmenter",
    "Reassembler",
    "ReassemblyStats",
    "fragment_count",
]

_HEADER = struct.Struct(">HBB")
#: bytes of header at the start of every fragment
HEADER_SIZE = _HEADER.size
#: the count field is one byte
MAX_FRAGMENTS = 255
#: a fragment carries at least one byte of frame
MIN_VALUE_SIZE = HEADER_SIZE + 1


def fragment_count(frame_size: int, max_value_size: int) -> int:
    """How many fragments a frame of ``frame_size`` bytes needs at this value size."""
    body = max_value_size - HEADER_SIZE
    return -(-frame_size // body)


class Fragmenter:
    """Cuts frames into fragments for one direction of one link.

    Frame ids count up from 0 and wrap at 2**16; ids only need to be distinct among the few
    frames a receiver holds open at once.
    """

    __slots__ = ("_max_frame_size", "_next_id")

    def __init__(self, max_frame_size: int) -> None:
        if max_frame_size < 1:
            raise ValueError("max_frame_size must be positive")
        self._max_frame_size = max_frame_size
        self._next_id = 0

    def split(self, frame: bytes, max_value_size: int) -> list[bytes]:
        """The fragments of ``frame``, each at most ``max_value_size`` bytes.

        Raises :class:`FramingError` for an empty or oversized frame, or when the value size
        is too small to carry the frame in :data:`MAX_FRAGMENTS` fragments.
        """
        if not 0 < len(frame) <= self._max_frame_size:
            raise FramingError(f"frame of {len(frame)} bytes outside 1..{self._max_frame_size}")
        if max_value_size < MIN_VALUE_SIZE:
            raise FramingError(f"ATT value size {max_value_size} < {MIN_VALUE_SIZE}")
        body = max_value_size - HEADER_SIZE
        count = -(-len(frame) // body)
        if count > MAX_FRAGMENTS:
            raise FramingError(f"{len(frame)} bytes need {count} > {MAX_FRAGMENTS} fragments")
        frame_id = self._next_id
        self._next_id = (frame_id + 1) & 0xFFFF
        view = memoryview(frame)
        return [
            _HEADER.pack(frame_id, index, count) + view[index * body : (index + 1) * body]
            for index in range(count)
        ]


@dataclass(slots=True)
class _Partial:
    count: int
    started: float
    size: int = 0
    bodies: dict[int, bytes] = field(default_factory=dict)


@dataclass(slots=True)
class ReassemblyStats:
    """Counters of what a reassembler threw away, for link status and tests."""

    frames: int = 0
    rejected: int = 0
    evicted: int = 0
    expired: int = 0


class Reassembler:
    """Rebuilds frames from the fragments of one link direction, within fixed bounds."""

    __slots__ = (
        "_buffered",
        "_max_buffered",
        "_max_frame_size",
        "_max_pending",
        "_partials",
        "_timeout",
        "stats",
    )

    def __init__(
        self,
        *,
        max_frame_size: int,
        max_pending: int = 8,
        max_buffered: int = 16 * 1024,
        timeout: float = 15.0,
    ) -> None:
        if max_frame_size < 1 or max_pending < 1 or timeout <= 0:
            raise ValueError("reassembly limits must be positive")
        if max_buffered < max_frame_size:
            raise ValueError("max_buffered must hold at least one whole frame")
        self._max_frame_size = max_frame_size
        self._max_pending = max_pending
        self._max_buffered = max_buffered
        self._timeout = timeout
        self._partials: dict[int, _Partial] = {}
        self._buffered = 0
        self.stats = ReassemblyStats()

    @property
    def buffered(self) -> int:
        """Bytes of frame bodies held in partial frames."""
        return self._buffered

    @property
    def pending(self) -> int:
        """Number of partial frames held."""
        return len(self._partials)

    def feed(self, fragment: bytes, now: float) -> bytes | None:
        """Take one fragment received at ``now``; return a frame once it is whole.

        Raises :class:`FramingError` for an inconsistent fragment (see the module table); the
        reassembler stays usable.
        """
        self.expire(now)
        try:
            return self._feed(fragment, now)
        except FramingError:
            self.stats.rejected += 1
            raise

    def _feed(self, fragment: bytes, now: float) -> bytes | None:
        if len(fragment) < MIN_VALUE_SIZE:
            raise FramingError(f"fragment of {len(fragment)} bytes < {MIN_VALUE_SIZE}")
        frame_id, index, count = _HEADER.unpack_from(fragment)
        body = bytes(fragment[HEADER_SIZE:])
        if count == 0 or index >= count:
            self._drop(frame_id)
            raise FramingError(f"fragment index {index} outside count {count}")
        partial = self._partials.get(frame_id)
        if partial is None:
            if len(body) > self._max_frame_size:
                raise FramingError(f"fragment body of {len(body)} bytes exceeds frame limit")
            if count == 1:
                self.stats.frames += 1
                return body
            partial = self._open(frame_id, count, now)
        elif partial.count != count:
            self._drop(frame_id)
            raise FramingError(f"frame {frame_id}: count changed {partial.count} -> {count}")
        elif index in partial.bodies:
            self._drop(frame_id)
            raise FramingError(f"frame {frame_id}: fragment {index} received twice")
        if partial.size + len(body) > self._max_frame_size:
            self._drop(frame_id)
            raise FramingError(f"frame {frame_id} grows past {self._max_frame_size} bytes")
        self._make_room(len(body), keep=frame_id)
        partial.bodies[index] = body
        partial.size += len(body)
        self._buffered += len(body)
        if len(partial.bodies) < count:
            return None
        self._drop(frame_id)
        self.stats.frames += 1
        return b"".join(partial.bodies[i] for i in range(count))

    def expire(self, now: float) -> int:
        """Drop partial frames older than the timeout; return how many were dropped."""
        dropped = 0
        deadline = now - self._timeout
        # Partials are kept in insertion order, which is start order: stop at the first young.
        while self._partials:
            frame_id, partial = next(iter(self._partials.items()))
            if partial.started > deadline:
                break
            self._drop(frame_id)
            dropped += 1
        self.stats.expired += dropped
        return dropped

    def clear(self) -> None:
        """Forget every partial frame (the link went down)."""
        self._partials.clear()
        self._buffered = 0

    def _open(self, frame_id: int, count: int, now: float) -> _Partial:
        while len(self._partials) >= self._max_pending:
            self._evict_oldest()
        partial = _Partial(count=count, started=now)
        self._partials[frame_id] = partial
        return partial

    def _make_room(self, size: int, keep: int) -> None:
        while self._buffered + size > self._max_buffered:
            oldest = next(iter(self._partials))
            if oldest == keep:
                # Only reachable when ``keep`` is the oldest; evict the next one instead.
                others = [fid for fid in self._partials if fid != keep]
                if not others:  # pragma: no cover - max_buffered >= max_frame_size
                    raise FramingError("frame does not fit the reassembly buffer")
                self._drop(others[0])
            else:
                self._drop(oldest)
            self.stats.evicted += 1

    def _evict_oldest(self) -> None:
        self._drop(next(iter(self._partials)))
        self.stats.evicted += 1

    def _drop(self, frame_id: int) -> None:
        partial = self._partials.pop(frame_id, None)
        if partial is not None:
            self._buffered -= partial.size
