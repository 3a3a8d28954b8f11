"""Channel history budgets: per sender, per channel (noisiest first) and by age."""

from __future__ import annotations

import itertools

import pytest

from meshchat.errors import StoreError
from meshchat.store import Store
from meshchat.store.history import HistoryBudget, water_level

from .helpers import ME

_ids = itertools.count(1)
TEXT = "y" * 400  # about 600 bytes charged per row


def _incoming(store: Store, sender: bytes, received: int, conversation: str = "#mesh") -> None:
    msg_id = next(_ids).to_bytes(16, "big")
    store.add_incoming(conversation, msg_id, sender, "s", TEXT, received, received)


def _count(store: Store, conversation: str = "#mesh") -> dict[bytes, int]:
    counts: dict[bytes, int] = {}
    for m in store.messages(conversation, 100_000):
        counts[m.sender] = counts.get(m.sender, 0) + 1
    return counts


def test_water_level() -> None:
    assert water_level([10, 10, 100], 60) == 40
    assert water_level([10, 20], 100) == 20
    assert water_level([], 5) == 0


def test_a_sender_keeps_its_newest_messages_within_its_budget(store: Store) -> None:
    store.set_history_budget(HistoryBudget(channel_bytes=10**6, sender_bytes=6000))
    for i in range(50):
        _incoming(store, b"n" * 16, 1000 + i)
    kept = store.messages("#mesh", 1000)
    assert 5 <= len(kept) <= 10
    assert kept[-1].created_ms == 1049  # the newest stay


def test_the_noisiest_senders_go_first_when_the_channel_is_full(store: Store) -> None:
    store.set_history_budget(HistoryBudget(channel_bytes=30_000, sender_bytes=10**6))
    for i in range(3):
        _incoming(store, b"q" * 16, 1000 + i)
    for i in range(200):
        _incoming(store, (b"a" if i % 2 else b"b") * 16, 2000 + i)
    counts = _count(store)
    assert counts[b"q" * 16] == 3
    assert sum(counts.values()) * 500 <= 30_000


def test_old_history_ages_out_and_direct_messages_are_never_trimmed(store: Store) -> None:
    store.set_history_budget(HistoryBudget(channel_bytes=2000, sender_bytes=1000, max_age_ms=100))
    for i in range(10):
        _incoming(store, b"d" * 16, 1000 + i, conversation="dm:abcd")
    _incoming(store, b"o" * 16, 1000)
    _incoming(store, b"p" * 16, 5000)
    assert list(_count(store)) == [b"p" * 16]
    assert len(store.messages("dm:abcd")) == 10
    store.add_outgoing("#mesh", b"\x09" * 16, b"\xcc" * 16, ME, "me", TEXT, 6000, 10**9)
    for i in range(20):
        _incoming(store, b"p" * 16, 6000 + i)
    assert any(m.outgoing for m in store.messages("#mesh"))


def test_a_budget_must_be_positive() -> None:
    with pytest.raises(StoreError):
        HistoryBudget(channel_bytes=0)
