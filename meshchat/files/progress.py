"""What a progress bar shows of a download: bytes held, rate and time left. Pure: fed the bytes
that arrive and the clock."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Progress", "RateMeter"]

#: How long a rate sample spans, and how much a new sample weighs against the old rate.
_SAMPLE_MS = 1000
_WEIGHT = 0.3


@dataclass(frozen=True, slots=True)
class Progress:
    """A download at one moment. ``rate`` is in bytes per second (0 before the first second's
    sample); ``eta_s`` is None while there is no rate to go by."""

    held: int
    size: int
    rate: float
    eta_s: float | None

    @property
    def fraction(self) -> float:
        return 1.0 if self.size == 0 else self.held / self.size


class RateMeter:
    """An exponentially weighted rate of bytes, from samples of about a second."""

    __slots__ = ("_bytes", "_mark_ms", "rate")

    def __init__(self) -> None:
        self.rate = 0.0
        self._bytes = 0
        self._mark_ms: int | None = None

    def add(self, size: int, now_ms: int) -> None:
        if self._mark_ms is None:
            self._mark_ms = now_ms
        self._bytes += size
        self._roll(now_ms)

    def _roll(self, now_ms: int) -> None:
        if self._mark_ms is None:
            return
        elapsed = now_ms - self._mark_ms
        if elapsed < _SAMPLE_MS:
            return
        sample = self._bytes * 1000 / elapsed
        self.rate = sample if self.rate == 0 else (1 - _WEIGHT) * self.rate + _WEIGHT * sample
        self._bytes = 0
        self._mark_ms = now_ms

    def progress(self, held: int, size: int, now_ms: int) -> Progress:
        self._roll(now_ms)
        left = size - held
        eta = None if self.rate <= 0 else left / self.rate
        return Progress(held, size, self.rate, 0.0 if left == 0 else eta)
