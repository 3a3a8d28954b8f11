"""One reconciliation between two of my devices: range-based set reconciliation, sans-IO.

Theory of operation
-------------------
Each device holds a snapshot of its items (:class:`~meshchat.sync.items.SortedItems`). The
initiator's :meth:`SyncSession.start` covers the whole order with :data:`BUCKETS` ranges, each
with the fingerprint of its items (or, when it holds at most :data:`ID_THRESHOLD` items, one
range listing them). Every message is answered range by range, by :meth:`SyncSession.receive`:

==============  =================================================================================
range received  answer
==============  =================================================================================
skip            skip
fingerprint     equal to mine: skip. Otherwise, when I hold at most ``ID_THRESHOLD`` items there:
                my ids; else the range cut into ``BUCKETS`` ranges by my items, each with its
                fingerprint
ids             skip; the ids I lack are *wanted* (asked for in the answer's ``wants``) and the
                ids the peer lacks are *to send* (the node pushes those records)
==============  =================================================================================

Adjacent skips merge, and a message with nothing but skips is not sent: the session is over
when neither side has a range left to answer. Ranges that agree are never looked at again, so
the rounds (about log16 of the history) and the bytes grow with the difference, not with the
history: 200 new messages among 20,000 cost a few kilobytes of ranges besides the records.

Bounds. A reply holds at most :data:`~meshchat.sync.wire.MAX_RANGES` ranges,
:data:`~meshchat.sync.wire.MAX_IDS` ids and :data:`~meshchat.sync.wire.MAX_SYNC_BYTES` bytes (it
counts them as it grows); when the ranges received would need more, the rest of them is
answered with one fingerprint of my items there, which the peer splits again next round
(so a large difference takes more rounds, never bigger messages). Wants beyond a message's room
go out in further messages. A session takes at most :data:`MAX_WANTED` distinct wanted ids and
:data:`MAX_ASKED` ids asked of it, and :data:`MAX_ROUNDS` messages; past any of them it raises
:class:`~meshchat.errors.SyncError` and must be dropped. So a peer that claims a million ids it
does not have costs this device at most ``MAX_WANTED`` remembered ids (about 5 MB) and is cut off.

Resuming. A session keeps nothing on disk: after a cut, the next session reconciles the stores
again, and everything already applied agrees, so it costs only what is still different.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from meshchat.errors import SyncError, SyncReason
from meshchat.sync.items import INFINITY, ZERO, Bound, SortedItems, separating_bound
from meshchat.sync.wire import (
    ID_BYTES,
    MAX_IDS,
    MAX_RANGES,
    MAX_SYNC_BYTES,
    RANGE_MAX_BYTES,
    RECONCILE_OVERHEAD,
    SESSION_SIZE,
    Mode,
    Range,
    Reconcile,
    range_size,
)

__all__ = [
    "BUCKETS",
    "ID_THRESHOLD",
    "MAX_ASKED",
    "MAX_ROUNDS",
    "MAX_WANTED",
    "Step",
    "SyncSession",
]

BUCKETS = 16
ID_THRESHOLD = 32
MAX_WANTED = 65_536
MAX_ASKED = 4 * MAX_WANTED
MAX_ROUNDS = 2_048


@dataclass(frozen=True, slots=True)
class Step:
    """What one received message asks of the node."""

    replies: tuple[Reconcile, ...] = ()  #: send these to the peer, in order
    to_send: tuple[bytes, ...] = ()  #: push the records with these sids to the peer
    wanted: tuple[bytes, ...] = ()  #: newly asked of the peer (also in ``replies``' wants)


#: Bytes a reply's ranges and wants may take in all.
_BUDGET = MAX_SYNC_BYTES - RECONCILE_OVERHEAD


class _Reply:
    """A reply under construction, within the bounds of one message (ranges, ids, bytes)."""

    def __init__(self) -> None:
        self.ranges: list[Range] = []
        self.sizes: list[int] = []  # each range's bytes (its bound's time is a step)
        self.ids = 0
        self.size = 0

    def _after(self, index: int) -> int:
        """The time the bound of range ``index`` steps from (the one before it, or 0)."""
        return self.ranges[index - 1].upper.ts if index > 0 else 0

    def room(self, ranges: int, ids: int) -> bool:
        """Whether ``ranges`` more ranges holding ``ids`` ids, and one range after them,
        still fit."""
        size = self.size + (ranges + 1) * RANGE_MAX_BYTES + ids * ID_BYTES
        return (
            len(self.ranges) + ranges <= MAX_RANGES - 1
            and self.ids + ids <= MAX_IDS
            and size <= _BUDGET
        )

    def _replace_last(self, r: Range) -> None:
        last = self.ranges[-1]
        size = range_size(r, self._after(len(self.ranges) - 1))
        self.size += size - self.sizes[-1]
        self.ids += len(r.ids) - len(last.ids)
        self.ranges[-1] = r
        self.sizes[-1] = size

    def add(self, r: Range) -> None:
        last = self.ranges[-1] if self.ranges else None
        if last is not None and last.mode is Mode.SKIP and r.mode is Mode.SKIP:
            self._replace_last(r)
            return
        if (
            last is not None
            and last.mode is Mode.IDS
            and r.mode is Mode.IDS
            and len(last.ids) + len(r.ids) <= ID_THRESHOLD
        ):
            self._replace_last(Range(r.upper, Mode.IDS, ids=tuple(sorted(last.ids + r.ids))))
            return
        size = range_size(r, self._after(len(self.ranges)))
        self.ranges.append(r)
        self.sizes.append(size)
        self.ids += len(r.ids)
        self.size += size

    def finished(self) -> tuple[Range, ...]:
        ranges = list(self.ranges)
        while ranges and ranges[-1].mode is Mode.SKIP:
            ranges.pop()
        return tuple(ranges)


class SyncSession:
    """The reconciliation with one peer device over one snapshot of my items.

    ``start()`` (initiator only) gives the first message; every message received goes to
    ``receive()``. Records that arrive go to ``arrived()`` so progress counts down.
    """

    __slots__ = ("_asked", "_items", "_pending", "_rounds", "_waiting", "_wanted", "session")

    def __init__(self, items: SortedItems, session: bytes | None = None) -> None:
        self.session = os.urandom(SESSION_SIZE) if session is None else session
        if len(self.session) != SESSION_SIZE:
            raise ValueError("a session id is 8 bytes")
        self._items = items
        self._wanted: set[bytes] = set()  # every id asked of the peer in this session
        self._waiting: set[bytes] = set()  # asked and not arrived yet
        self._pending: list[bytes] = []  # wanted, not asked yet (no room in the last message)
        self._asked = 0
        self._rounds = 0

    # -- progress ---------------------------------------------------------------------------

    @property
    def waiting(self) -> int:
        """Records asked of the peer (or about to be) that have not arrived."""
        return len(self._waiting)

    @property
    def rounds(self) -> int:
        return self._rounds

    def arrived(self, sids: Iterable[bytes]) -> None:
        """These records came from the peer (asked for or pushed)."""
        for sid in sids:
            self._waiting.discard(sid)

    # -- the protocol -----------------------------------------------------------------------

    def start(self) -> Reconcile:
        """The first message: my whole order, as fingerprints of ``BUCKETS`` ranges."""
        reply = _Reply()
        self._cover(reply, ZERO, INFINITY, 0, len(self._items))
        return Reconcile(self.session, reply.finished())

    def receive(self, message: Reconcile) -> Step:
        """Answer ``message``; raises :class:`SyncError` when the peer oversteps a bound."""
        if message.session != self.session:
            raise SyncError(SyncReason.OUT_OF_ORDER, "a message of another session")
        self._rounds += 1
        if self._rounds > MAX_ROUNDS:
            raise SyncError(SyncReason.TOO_MANY_ROUNDS, f"more than {MAX_ROUNDS} messages")
        self._asked += len(message.wants)
        if self._asked > MAX_ASKED:
            raise SyncError(SyncReason.TOO_MANY_WANTED, f"asked for more than {MAX_ASKED} ids")
        to_send: list[bytes] = list(message.wants)
        new_wanted: list[bytes] = []
        reply = _Reply()
        lower = ZERO
        for r in message.ranges:
            if r.upper <= lower:
                raise SyncError(SyncReason.OUT_OF_ORDER, "range bounds not ascending")
            start, end = self._items.span(lower, r.upper)
            if not reply.room(BUCKETS + 1, ID_THRESHOLD):
                rest = message.ranges[-1].upper
                start_all, end_all = self._items.span(lower, rest)
                fp = self._items.fingerprint(start_all, end_all)
                reply.add(Range(rest, Mode.FINGERPRINT, fingerprint=fp))
                break
            if r.mode is Mode.SKIP:
                reply.add(Range(r.upper, Mode.SKIP))
            elif r.mode is Mode.FINGERPRINT:
                if self._items.fingerprint(start, end) == r.fingerprint:
                    reply.add(Range(r.upper, Mode.SKIP))
                else:
                    self._cover(reply, lower, r.upper, start, end)
            else:
                mine = self._items.sids(start, end)
                theirs = set(r.ids)
                held = set(mine)
                to_send.extend(s for s in mine if s not in theirs)
                new_wanted.extend(s for s in r.ids if s not in held)
                reply.add(Range(r.upper, Mode.SKIP))
            lower = r.upper
        wanted = self._want(new_wanted)
        return Step(self._replies(reply), tuple(to_send), tuple(wanted))

    # -- inside -----------------------------------------------------------------------------

    def _cover(self, reply: _Reply, lower: Bound, upper: Bound, start: int, end: int) -> None:
        """Describe my items in ``[lower, upper)`` (positions ``start .. end``) to the peer."""
        count = end - start
        if count <= ID_THRESHOLD:
            reply.add(Range(upper, Mode.IDS, ids=tuple(sorted(self._items.sids(start, end)))))
            return
        cuts = [start + (count * k) // BUCKETS for k in range(1, BUCKETS)]
        edge_start = start
        for cut in cuts:
            bound = separating_bound(self._items[cut - 1], self._items[cut])
            fp = self._items.fingerprint(edge_start, cut)
            reply.add(Range(bound, Mode.FINGERPRINT, fingerprint=fp))
            edge_start = cut
        fp = self._items.fingerprint(edge_start, end)
        reply.add(Range(upper, Mode.FINGERPRINT, fingerprint=fp))

    def _want(self, sids: Sequence[bytes]) -> list[bytes]:
        fresh = [s for s in dict.fromkeys(sids) if s not in self._wanted]
        if len(self._wanted) + len(fresh) > MAX_WANTED:
            raise SyncError(
                SyncReason.TOO_MANY_WANTED,
                f"the peer claims more than {MAX_WANTED} records this device lacks",
            )
        self._wanted.update(fresh)
        self._waiting.update(fresh)
        self._pending.extend(fresh)
        return fresh

    def _replies(self, reply: _Reply) -> tuple[Reconcile, ...]:
        ranges = reply.finished()
        used = sum(reply.sizes[: len(ranges)])
        room = min(MAX_IDS - sum(len(r.ids) for r in ranges), max(0, (_BUDGET - used) // ID_BYTES))
        first_wants, self._pending = self._pending[:room], self._pending[room:]
        out: list[Reconcile] = []
        if ranges or first_wants:
            out.append(Reconcile(self.session, ranges, tuple(sorted(first_wants))))
        while self._pending:
            chunk, self._pending = self._pending[:MAX_IDS], self._pending[MAX_IDS:]
            out.append(Reconcile(self.session, (), tuple(sorted(chunk))))
        return tuple(out)
