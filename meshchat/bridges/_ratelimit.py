"""A token bucket, the rate limit every bridge applies to what crosses it."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["TokenBucket"]


@dataclass
class TokenBucket:
    """``capacity`` tokens, one more every ``refill_s`` seconds."""

    capacity: float
    refill_s: float
    tokens: float = field(default=-1.0)
    last: float = 0.0

    def take(self, now: float) -> bool:
        if self.tokens < 0:
            self.tokens, self.last = self.capacity, now
        self.tokens = min(self.capacity, self.tokens + max(0.0, now - self.last) / self.refill_s)
        self.last = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True
