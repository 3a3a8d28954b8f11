"""How fast strangers may start sessions with us: key agreements rate-limited per link and origin.

Theory of operation. Starting a session costs the receiver two X3DH computations and an entry in
the replay cache of one of its prekeys (:mod:`.prekeys`), and anyone who heard our announcement
can start one. A key agreement from a peer we know (a contact or a group member; the agreement
itself proves who it is) is never limited. A stranger's is taken only while three token buckets
have a token: one for the link it came on (``None`` for local or internet sources), one for the
identity it names, and one for all strangers together. The buckets live in memory only; each
table keeps its :data:`MAX_TRACKED` most recently used entries (a forgotten entry starts full).
"""

from __future__ import annotations

from collections import OrderedDict

from meshchat.router.ratelimit import TokenBucket

__all__ = [
    "LINK_BURST",
    "LINK_RATE",
    "MAX_TRACKED",
    "ORIGIN_BURST",
    "ORIGIN_RATE",
    "STRANGERS_BURST",
    "STRANGERS_RATE",
    "Admission",
]

#: strangers' key agreements per second taken on one link, and how many may come at once
LINK_RATE = 1 / 10
LINK_BURST = 16.0
#: key agreements per second taken from one stranger identity, and at once
ORIGIN_RATE = 1 / 60
ORIGIN_BURST = 4.0
#: strangers' key agreements per second taken in all, and at once
STRANGERS_RATE = 1 / 5
STRANGERS_BURST = 64.0
#: links and identities tracked at most (least recently used forgotten first)
MAX_TRACKED = 1024


class _Buckets:
    __slots__ = ("_burst", "_items", "_rate")

    def __init__(self, rate: float, burst: float) -> None:
        self._rate = rate
        self._burst = burst
        self._items: OrderedDict[object, TokenBucket] = OrderedDict()

    def get(self, key: object, now_ms: int) -> TokenBucket:
        bucket = self._items.get(key)
        if bucket is None:
            bucket = self._items[key] = TokenBucket(self._rate, self._burst, now_ms)
            while len(self._items) > MAX_TRACKED:
                self._items.popitem(last=False)
        else:
            self._items.move_to_end(key)
        return bucket


class Admission:
    """Decides whether a stranger's key agreement is taken now (see the module docstring)."""

    def __init__(
        self,
        *,
        per_link: tuple[float, float] = (LINK_RATE, LINK_BURST),
        per_origin: tuple[float, float] = (ORIGIN_RATE, ORIGIN_BURST),
        overall: tuple[float, float] = (STRANGERS_RATE, STRANGERS_BURST),
    ) -> None:
        """Each limit is ``(key agreements per second, how many at once)``."""
        self._links = _Buckets(*per_link)
        self._origins = _Buckets(*per_origin)
        self._all = TokenBucket(*overall, 0)
        self.refused = 0

    def admit(self, link: str | None, origin: bytes, now_ms: int) -> bool:
        """Take a stranger's key agreement from ``origin`` (its node id) on ``link``?"""
        buckets = (
            self._links.get(link, now_ms),
            self._origins.get(origin, now_ms),
            self._all,
        )
        # Check all before taking from any, so a refusal costs no bucket a token.
        if all(b.available(now_ms) >= 1.0 for b in buckets):
            for b in buckets:
                b.take(now_ms)
            return True
        self.refused += 1
        return False
