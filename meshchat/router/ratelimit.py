"""A token bucket per link, so one neighbour cannot saturate the mesh."""

from __future__ import annotations

__all__ = ["TokenBucket"]


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up; one token per frame."""

    __slots__ = ("_burst", "_last_ms", "_rate", "_tokens")

    def __init__(self, rate: float, burst: float, now_ms: int) -> None:
        self._rate = rate / 1000.0
        self._burst = burst
        self._tokens = burst
        self._last_ms = now_ms

    def available(self, now_ms: int) -> float:
        """The tokens saved up at ``now_ms``."""
        elapsed = now_ms - self._last_ms
        if elapsed > 0:
            self._tokens = min(self._burst, self._tokens + elapsed * self._rate)
            self._last_ms = now_ms
        return self._tokens

    def take(self, now_ms: int, cost: float = 1.0) -> bool:
        if self.available(now_ms) >= cost:
            self._tokens -= cost
            return True
        return False
