"""The synced set as reconciliation sees it: items ordered by ``(ts, sid)``, and range fingerprints.

Theory of operation
-------------------
Every record two of my devices keep in common (a message in one state, a tombstone, a contact
in one trust state, ...) is one *item*: a time ``ts`` (milliseconds, from the record itself, so
both devices give the same record the same time) and a 16-byte *sync id* ``sid`` (a hash of the
record's identity and version, :mod:`meshchat.sync.records`). Items sort by ``(ts, sid)``.

A *bound* ``(ts, prefix)`` cuts the ordered items in two: those below it (``(ts, sid) <
(bound_ts, prefix)``) and the rest; ``prefix`` is at most 16 bytes, usually empty. A range is
the items between two bounds. Its *fingerprint* is a hash of the count and of the sum modulo
2**128 of its sids read as big-endian integers, so a fingerprint of any range costs two
lookups in a table of prefix sums (built once per snapshot, O(n)) and two bisections.

A sum is not a collision-resistant hash of a set: someone who chooses sids could make two
different sets sum alike. Sids are hashes of records this device accepted and checked, and a
device that could forge a collision is one of my devices anyway (it could just send records).
The count in the fingerprint catches the common accidents.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "FINGERPRINT_SIZE",
    "INFINITY",
    "MAX_TS",
    "SID_SIZE",
    "ZERO",
    "Bound",
    "Item",
    "SortedItems",
    "fingerprint_of",
    "separating_bound",
]

SID_SIZE = 16
FINGERPRINT_SIZE = 16
#: Item times are below this (2**53: what every wire integer fits).
MAX_TS = 2**53
_MOD = 2**128
_PERSON = b"meshchat-sync-fp"

#: An item: ``(ts, sid)``.
Item = tuple[int, bytes]


@dataclass(frozen=True, slots=True, order=True)
class Bound:
    """The lower edge of a range's upper neighbour: items below ``(ts, prefix)`` are inside."""

    ts: int
    prefix: bytes = b""

    @property
    def key(self) -> tuple[int, bytes]:
        return (self.ts, self.prefix)


#: The bound above every item.
INFINITY = Bound(MAX_TS, b"")
#: The bound below every item.
ZERO = Bound(0, b"")


def fingerprint_of(total: int, count: int) -> bytes:
    """The fingerprint of a range whose sids sum to ``total`` (mod 2**128) over ``count`` items."""
    data = (total % _MOD).to_bytes(16, "big") + count.to_bytes(8, "big")
    return hashlib.blake2b(data, digest_size=FINGERPRINT_SIZE, person=_PERSON).digest()


def separating_bound(below: Item, above: Item) -> Bound:
    """The shortest bound with ``below`` under it and ``above`` not (``below < above``)."""
    if below[0] != above[0]:
        return Bound(above[0], b"")
    sid_below, sid_above = below[1], above[1]
    for i in range(min(len(sid_above), SID_SIZE)):
        if i >= len(sid_below) or sid_below[i] != sid_above[i]:
            return Bound(above[0], sid_above[: i + 1])
    return Bound(above[0], sid_above)


class SortedItems:
    """A snapshot of one device's items, sorted, with prefix sums for fingerprints.

    Built once per sync session from the store's listing; O(n) to build, O(log n) per range.
    """

    __slots__ = ("_items", "_keys", "_sums")

    def __init__(self, items: Iterable[Item]) -> None:
        self._items: list[Item] = sorted(set(items))
        sums = [0]
        total = 0
        for _, sid in self._items:
            total += int.from_bytes(sid, "big")
            sums.append(total)
        self._sums = sums

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, index: int) -> Item:
        return self._items[index]

    def index(self, bound: Bound) -> int:
        """The position of the first item not below ``bound``."""
        if bound.ts >= MAX_TS:
            return len(self._items)
        return bisect.bisect_left(self._items, bound.key)

    def span(self, lower: Bound, upper: Bound) -> tuple[int, int]:
        """``(start, end)`` positions of the items in ``[lower, upper)``."""
        start = self.index(lower)
        return start, max(start, self.index(upper))

    def fingerprint(self, start: int, end: int) -> bytes:
        """The fingerprint of the items at positions ``start .. end - 1``."""
        return fingerprint_of(self._sums[end] - self._sums[start], end - start)

    def sids(self, start: int, end: int) -> list[bytes]:
        return [sid for _, sid in self._items[start:end]]
