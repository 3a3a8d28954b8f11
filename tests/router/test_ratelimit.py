"""The per-link token bucket."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from meshchat.router.ratelimit import TokenBucket


def test_burst_then_empty() -> None:
    bucket = TokenBucket(rate=10, burst=5, now_ms=0)
    assert [bucket.take(0) for _ in range(6)] == [True] * 5 + [False]


def test_refills_at_rate() -> None:
    bucket = TokenBucket(rate=10, burst=5, now_ms=0)  # one token per 100 ms
    for _ in range(5):
        assert bucket.take(0)
    assert not bucket.take(50)
    assert bucket.take(100)
    assert not bucket.take(100)
    assert bucket.take(300)
    assert bucket.take(300)
    assert not bucket.take(300)


def test_refill_capped_at_burst() -> None:
    bucket = TokenBucket(rate=1000, burst=3, now_ms=0)
    for _ in range(3):
        bucket.take(0)
    results = [bucket.take(1_000_000) for _ in range(5)]
    assert results == [True, True, True, False, False]


def test_clock_going_backwards_gives_no_tokens() -> None:
    bucket = TokenBucket(rate=10, burst=1, now_ms=1000)
    assert bucket.take(1000)
    assert not bucket.take(0)
    assert not bucket.take(1050)
    assert bucket.take(1100)


def test_cost() -> None:
    bucket = TokenBucket(rate=1, burst=4, now_ms=0)
    assert bucket.take(0, cost=3)
    assert not bucket.take(0, cost=2)
    assert bucket.take(0, cost=1)


@settings(max_examples=200, deadline=None)
@given(
    rate=st.integers(1, 1000),
    burst=st.integers(1, 50),
    steps=st.lists(st.integers(0, 500), min_size=1, max_size=100),
)
def test_never_more_than_burst_plus_rate_times_time(
    rate: int, burst: int, steps: list[int]
) -> None:
    bucket = TokenBucket(rate=rate, burst=burst, now_ms=0)
    now = 0
    taken = 0
    for step in steps:
        now += step
        while bucket.take(now):
            taken += 1
    assert taken <= burst + rate * now / 1000 + 1e-9
