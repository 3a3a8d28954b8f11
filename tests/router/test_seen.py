"""The bounded seen-set used for flood dedupe."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshchat.router.seen import SeenSet


def _id(n: int) -> bytes:
    return n.to_bytes(16, "big")


def test_add_and_contains() -> None:
    seen = SeenSet(capacity=10, ttl_ms=1000)
    assert _id(1) not in seen
    seen.add(_id(1), 0)
    assert _id(1) in seen
    assert _id(2) not in seen
    assert len(seen) == 1


def test_adding_twice_keeps_one_entry_and_the_first_expiry() -> None:
    seen = SeenSet(capacity=10, ttl_ms=1000)
    seen.add(_id(1), 0)
    seen.add(_id(1), 900)
    assert len(seen) == 1
    assert seen.expire(1000) == 1  # it expires by its first sighting
    assert _id(1) not in seen


def test_capacity_evicts_oldest_first() -> None:
    seen = SeenSet(capacity=3, ttl_ms=10_000)
    for n in range(5):
        seen.add(_id(n), n)
    assert len(seen) == 3
    assert [_id(n) in seen for n in range(5)] == [False, False, True, True, True]


def test_expire_forgets_only_old_entries() -> None:
    seen = SeenSet(capacity=100, ttl_ms=1000)
    for n in range(10):
        seen.add(_id(n), n * 100)
    assert seen.expire(999) == 0
    assert seen.expire(1000) == 1  # added at 0, expires at 1000
    assert seen.expire(1450) == 4
    assert len(seen) == 5
    assert _id(4) not in seen
    assert _id(5) in seen
    assert seen.expire(10**9) == 5
    assert len(seen) == 0


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError):
        SeenSet(capacity=0)


def test_memory_bounded_under_200k_distinct_ids() -> None:
    capacity = 4096
    seen = SeenSet(capacity=capacity, ttl_ms=3_600_000)
    for n in range(200_000):
        seen.add(_id(n), n)
        if n % 10_000 == 0:
            assert len(seen) <= capacity
    assert len(seen) == capacity
    # The newest ids are the ones kept.
    assert _id(199_999) in seen
    assert _id(200_000 - capacity) in seen
    assert _id(200_000 - capacity - 1) not in seen


@settings(max_examples=200, deadline=None)
@given(
    capacity=st.integers(1, 20),
    ops=st.lists(st.tuples(st.booleans(), st.integers(0, 40)), max_size=200),
)
def test_model(capacity: int, ops: list[tuple[bool, int]]) -> None:
    """Against a simple model: never more than capacity, never forgets an id too early."""
    ttl = 50
    seen = SeenSet(capacity=capacity, ttl_ms=ttl)
    now = 0
    added: dict[bytes, int] = {}
    for is_add, n in ops:
        now += 3
        if is_add:
            if _id(n) not in seen:  # a new (or evicted and re-added) id starts a new life
                added[_id(n)] = now
            seen.add(_id(n), now)
        else:
            seen.expire(now)
            added = {k: t for k, t in added.items() if t + ttl > now}
        assert len(seen) <= capacity
        # Anything in the set was added and has not been expired by the model.
        for packet_id in list(seen._entries):
            assert packet_id in added
        # The most recently added id is always present.
        if is_add:
            assert _id(n) in seen
