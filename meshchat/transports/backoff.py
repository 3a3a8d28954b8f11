"""Exponential delays with jitter, for reconnecting and for not dialling the same place too often.

:class:`Backoff` is one schedule: each failure doubles the base delay up to a cap; the delay
handed out is the base scaled by a random factor in [0.5, 1.0], so that nodes that lost their
links at the same moment (a router reboot, a peer restart) do not all redial in lock-step.

:class:`BackoffTable` keeps one schedule per key (an address), bounded in size, for a transport
that is told where to dial by others (mDNS adverts): every attempt at an address pushes its
next allowed attempt further out, until a link through it proves stable and resets it. However
many adverts point at one address, it is dialled on that one schedule.
"""

from __future__ import annotations

import random
from collections.abc import Hashable

__all__ = ["Backoff", "BackoffTable"]


class Backoff:
    """Delays for successive reconnect attempts: ``initial``, ``2 * initial``, ... ``maximum``."""

    __slots__ = ("_attempt", "_initial", "_maximum", "_rng")

    def __init__(self, initial: float, maximum: float, rng: random.Random | None = None) -> None:
        if not 0 < initial <= maximum:
            raise ValueError("need 0 < initial <= maximum")
        self._initial = initial
        self._maximum = maximum
        self._attempt = 0
        self._rng = rng if rng is not None else random.Random()

    @property
    def attempts(self) -> int:
        """Delays handed out since the last reset."""
        return self._attempt

    def next(self) -> float:
        """The delay before the next attempt, in seconds; advances the schedule."""
        base = min(self._maximum, self._initial * 2.0 ** min(self._attempt, 62))
        self._attempt += 1
        return base * self._rng.uniform(0.5, 1.0)

    def reset(self) -> None:
        """Start again from ``initial`` (after a connection succeeded)."""
        self._attempt = 0


class BackoffTable:
    """One :class:`Backoff` per key, and when each key may next be tried (caller's clock).

    At most ``max_keys`` keys are kept; past that the key whose wait ended longest ago is
    forgotten (it starts again at ``initial``). While the table is full, :meth:`wait` makes a
    new key wait until the soonest of the others is due, so a caller that asks before each try
    cannot make it forget keys faster than they come due.
    """

    __slots__ = ("_entries", "_initial", "_max_keys", "_maximum", "_rng")

    def __init__(
        self,
        initial: float,
        maximum: float,
        *,
        max_keys: int = 1024,
        rng: random.Random | None = None,
    ) -> None:
        Backoff(initial, maximum)  # validates the pair
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        self._initial = initial
        self._maximum = maximum
        self._max_keys = max_keys
        self._rng = rng if rng is not None else random.Random()
        self._entries: dict[Hashable, tuple[Backoff, float]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def wait(self, key: Hashable, now: float) -> float:
        """Seconds until ``key`` may be tried (0 if now)."""
        entry = self._entries.get(key)
        if entry is None:
            if len(self._entries) >= self._max_keys:
                soonest = min(until for _, until in self._entries.values())
                return max(0.0, soonest - now)
            return 0.0
        return max(0.0, entry[1] - now)

    def attempt(self, key: Hashable, now: float) -> None:
        """Record a try at ``key`` now; its next try waits the next delay of its schedule."""
        entry = self._entries.get(key)
        if entry is None:
            self._make_room()
            backoff = Backoff(self._initial, self._maximum, self._rng)
        else:
            backoff = entry[0]
        self._entries[key] = (backoff, now + backoff.next())

    def reset(self, key: Hashable) -> None:
        """``key`` behaved (a link through it lasted): forget its schedule."""
        self._entries.pop(key, None)

    def forget_due_before(self, when: float) -> None:
        """Forget the keys whose wait ended before ``when``: after such a quiet spell a key
        starts again from ``initial``."""
        for key in [k for k, (_, until) in self._entries.items() if until < when]:
            del self._entries[key]

    def _make_room(self) -> None:
        if len(self._entries) < self._max_keys:
            return
        del self._entries[min(self._entries, key=lambda k: self._entries[k][1])]
