"""The outbox: retry backoff, due items, expiry and waking."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshchat.identity import Identity, PublicIdentity
from meshchat.router.outbox import RETRY_BASE_MS, RETRY_CAP_MS, Outbox, OutboxItem, backoff_ms
from meshchat.wire.packet import Destination

BOB = Identity.from_seeds(b"\x91" * 32, b"\x92" * 32).public
BOB2 = Identity.from_seeds(b"\x93" * 32, b"\x94" * 32).public


def _item(
    n: int,
    *,
    next_try: int = 0,
    expires: int = 10_000,
    dm: bool = True,
    to: PublicIdentity = BOB,
) -> OutboxItem:
    return OutboxItem(
        msg_id=n.to_bytes(16, "big"),
        destination=Destination.node(to.node_id) if dm else Destination.channel(b"\x01" * 16),
        text=f"message {n}",
        created_ms=0,
        expires_ms=expires,
        recipient=to if dm else None,
        next_try_ms=next_try,
    )


class _Fixed(random.Random):
    """A Random whose uniform() returns one end of the range."""

    def __init__(self, end: str) -> None:
        super().__init__(0)
        self.end = end

    def uniform(self, a: float, b: float) -> float:
        return a if self.end == "low" else b


@pytest.mark.parametrize(
    ("attempts", "base"),
    [(0, 3_000), (1, 3_000), (2, 6_000), (3, 12_000), (4, 24_000), (7, 192_000), (8, 300_000)],
)
def test_backoff_doubles_then_caps(attempts: int, base: int) -> None:
    assert backoff_ms(attempts, _Fixed("low")) == int(base * 0.75)
    assert backoff_ms(attempts, _Fixed("high")) == int(base * 1.25)


@given(attempts=st.integers(0, 10_000), seed=st.integers(0, 2**32))
def test_backoff_jitter_bounds(attempts: int, seed: int) -> None:
    base = min(RETRY_CAP_MS, RETRY_BASE_MS * 2 ** max(0, attempts - 1))
    delay = backoff_ms(attempts, random.Random(seed))
    assert int(base * 0.75) <= delay <= int(base * 1.25)
    assert delay <= RETRY_CAP_MS * 1.25


def test_backoff_is_deterministic_given_the_rng() -> None:
    a = [backoff_ms(n, random.Random(5)) for n in range(10)]
    b = [backoff_ms(n, random.Random(5)) for n in range(10)]
    assert a == b


def test_add_get_remove() -> None:
    outbox = Outbox()
    item = _item(1)
    outbox.add(item)
    assert len(outbox) == 1
    assert item.key == item.msg_id + BOB.node_id  # a direct copy: message and device
    assert item.key in outbox
    assert outbox.get(item.key) is item
    assert item.needs_ack
    channel = _item(2, dm=False)
    assert not channel.needs_ack
    assert channel.key == channel.msg_id  # one copy: the message id alone
    assert outbox.remove(item.key) is item
    assert outbox.remove(item.key) is None
    assert len(outbox) == 0
    assert outbox.copies(item.msg_id) == []


def test_copies_of_one_message_to_several_devices_are_kept_apart() -> None:
    outbox = Outbox()
    one, two = _item(1), _item(1, to=BOB2)
    outbox.add(one)
    outbox.add(two)
    assert len(outbox) == 2
    assert outbox.copies(one.msg_id) == [one, two]
    assert one.key != two.key and one.device == BOB.node_id and two.device == BOB2.node_id
    outbox.record_packet(two, b"\xcc" * 16)
    assert outbox.remove(one.key) is one
    assert outbox.copies(one.msg_id) == [two]  # the other device's copy goes on
    assert outbox.expire(10_000) == [two]
    assert outbox.copies(one.msg_id) == [] and outbox._by_packet == {}


def test_record_packet_and_remove_clears_the_index() -> None:
    outbox = Outbox()
    item = _item(1)
    outbox.add(item)
    outbox.record_packet(item, b"\xaa" * 16)
    outbox.record_packet(item, b"\xbb" * 16)
    assert item.packet_ids == {b"\xaa" * 16, b"\xbb" * 16}
    assert outbox._by_packet == {b"\xaa" * 16: item.key, b"\xbb" * 16: item.key}
    outbox.remove(item.key)
    assert outbox._by_packet == {}


def test_due() -> None:
    outbox = Outbox()
    early, late, gone = _item(1, next_try=100), _item(2, next_try=500), _item(3, expires=50)
    for item in (early, late, gone):
        outbox.add(item)
    assert outbox.due(99) == []  # item 3 is due but expired already at 50
    assert outbox.due(40) == [gone]
    assert outbox.due(100) == [early]
    assert outbox.due(500) == [early, late]
    assert outbox.due(10_000) == []  # everything expired


def test_expire_removes_and_reports() -> None:
    outbox = Outbox()
    a, b = _item(1, expires=100), _item(2, expires=200)
    outbox.add(a)
    outbox.add(b)
    outbox.record_packet(a, b"\x01" * 16)
    assert outbox.expire(99) == []
    assert outbox.expire(100) == [a]
    assert a.key not in outbox
    assert b.key in outbox
    assert b"\x01" * 16 not in outbox._by_packet


def test_wake_makes_waiting_items_due_now() -> None:
    outbox = Outbox()
    waiting, soon = _item(1, next_try=5_000), _item(2, next_try=10)
    outbox.add(waiting)
    outbox.add(soon)
    assert outbox.due(20) == [soon]
    outbox.wake(20)
    assert waiting.next_try_ms == 20
    assert soon.next_try_ms == 10  # never pushed later
    assert outbox.due(20) == [waiting, soon]


def test_next_deadline() -> None:
    outbox = Outbox()
    assert outbox.next_deadline() is None
    outbox.add(_item(1, next_try=700, expires=900))
    assert outbox.next_deadline() == 700
    outbox.add(_item(2, next_try=5_000, expires=300))
    assert outbox.next_deadline() == 300
