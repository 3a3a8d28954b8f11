"""Exponential reconnect delays with jitter.

Each failure doubles the base delay up to a cap; the delay handed out is the base scaled by a
random factor in [0.5, 1.0], so that nodes that lost their links at the same moment (a router
reboot, a peer restart) do not all redial in lock-step.
"""

from __future__ import annotations

import random

__all__ = ["Backoff"]


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

    def next(self) -> float:
        """The delay before the next attempt, in seconds; advances the schedule."""
        base = min(self._maximum, self._initial * 2.0 ** min(self._attempt, 62))
        self._attempt += 1
        return base * self._rng.uniform(0.5, 1.0)

    def reset(self) -> None:
        """Start again from ``initial`` (after a connection succeeded)."""
        self._attempt = 0
