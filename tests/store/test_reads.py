"""Read marks synced between my devices (``_reads.py``): Read records made when the user reads,
applied by message id (not by position), forward only, the newest version kept."""

from __future__ import annotations

import random
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshchat.store import Store
from meshchat.sync.records import ReadRecord

T0 = 1_700_000_000_000
DM = "dm:" + "b0" * 16
BOB = b"\xb0" * 16
NOW = T0 + 10**6


@pytest.fixture
def phone(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "phone" / "meshchat.db", key=bytes(32)) as opened:
        yield opened


def mid(n: int) -> bytes:
    return n.to_bytes(16, "big")


def recv(store: Store, n: int, parents: tuple[int, ...] = (), conv: str = DM) -> None:
    named = [mid(p) for p in parents]
    store.add_incoming(conv, mid(n), BOB, "bob", f"hello {n}", T0 + n, T0 + n + 5, parents=named)


def unread(store: Store, conv: str = DM) -> int:
    return {c.name: c.unread for c in store.conversations()}.get(conv, 0)


def reads(store: Store) -> list[ReadRecord]:
    records = store.sync_records(sid for _, sid in store.sync_listing(NOW))
    return [r for r in records if isinstance(r, ReadRecord)]


def sync_all(src: Store, dst: Store) -> None:
    """Push every record of ``src`` that ``dst`` lacks (what a session ends with)."""
    have = {sid for _, sid in dst.sync_listing(NOW)}
    missing = [sid for _, sid in src.sync_listing(NOW) if sid not in have]
    dst.apply_sync(src.sync_records(missing), NOW)


def test_reading_makes_one_read_record_per_conversation(store: Store) -> None:
    for n in range(1, 6):
        recv(store, n, (n - 1,) if n > 1 else ())
    assert store.mark_read(DM, T0 + 100)
    (first,) = reads(store)
    assert first.conversation == DM and first.msg_ids == (mid(5),)
    assert not store.mark_read(DM, T0 + 200)  # nothing new read: no new version
    assert reads(store) == [first]
    recv(store, 6, (5,))
    assert store.mark_read(DM, T0 + 50)  # a clock behind the item it replaces
    (second,) = reads(store)  # the old one is replaced, not kept beside it
    assert second.msg_ids == (mid(6),) and second.read_ms == first.read_ms + 1
    store.mark_read("#chan", T0 + 300)  # channels are not synced
    assert store.mark_read(DM) is False  # without a time: no record (as before)


def test_a_message_read_on_one_device_is_not_unread_on_the_other(
    store: Store, phone: Store
) -> None:
    # the phone stored the same messages in another order (rows differ between devices)
    for n in (1, 2, 3):
        recv(store, n, (n - 1,) if n > 1 else ())
    for n in (3, 1, 2):
        recv(phone, n, (n - 1,) if n > 1 else ())
    store.mark_read(DM, T0 + 100)
    assert unread(phone) == 3
    sync_all(store, phone)
    assert unread(phone) == 0
    # a later message stays unread on both
    recv(store, 4, (3,))
    recv(phone, 4, (3,))
    sync_all(store, phone)
    assert unread(phone) == 1 and unread(store) == 1


def test_ancestors_of_a_named_message_are_read(store: Store, phone: Store) -> None:
    # on the phone, 1 arrived last (held child first): rows 2, 3 then 1; the laptop names 3
    for n in (1, 2, 3):
        recv(store, n, (n - 1,) if n > 1 else ())
    for n in (2, 3, 1):
        recv(phone, n, (n - 1,) if n > 1 else ())
    store.mark_read(DM, T0 + 100)
    assert reads(store)[0].msg_ids == (mid(3),)
    sync_all(store, phone)
    assert unread(phone) == 0


def test_a_mark_never_moves_back_and_an_older_record_does_not_undo_a_newer(
    store: Store, phone: Store
) -> None:
    for n in (1, 2, 3):
        recv(store, n, (n - 1,) if n > 1 else ())
        recv(phone, n, (n - 1,) if n > 1 else ())
    old = ReadRecord(DM, (mid(1),), T0 + 10)
    new = ReadRecord(DM, (mid(3),), T0 + 20)
    phone.apply_sync([new], NOW)
    assert unread(phone) == 0
    phone.apply_sync([old], NOW)  # older, naming an older message
    assert unread(phone) == 0
    assert reads(phone) == [new]  # the newest version is the one kept
    # read here up to 3; a newer record naming only message 1 does not move the mark back
    phone.apply_sync([ReadRecord(DM, (mid(1),), T0 + 30)], NOW)
    assert unread(phone) == 0


def test_concurrent_reads_on_two_devices_both_count(store: Store, phone: Store) -> None:
    for n in (1, 2, 3):
        recv(store, n)
        recv(phone, n)
    a = ReadRecord(DM, (mid(3),), T0 + 10)  # older, but names the newest message
    b = ReadRecord(DM, (mid(1),), T0 + 20)
    phone.apply_sync([b, a], NOW)
    assert unread(phone) == 0  # forward only: the older record still moved the mark
    assert reads(phone) == [b]


def test_a_mark_for_a_message_not_here_yet_applies_when_it_arrives(
    store: Store, phone: Store
) -> None:
    for n in (1, 2, 3):
        recv(store, n, (n - 1,) if n > 1 else ())
    recv(phone, 1)
    phone.apply_sync([ReadRecord(DM, (mid(3),), T0 + 10)], NOW)
    assert unread(phone) == 1  # 3 and its ancestors are not here: nothing to place yet
    recv(phone, 2, (1,))
    assert unread(phone) == 2
    recv(phone, 3, (2,))  # received directly: the waiting mark takes it
    assert unread(phone) == 0
    recv(phone, 4, (3,))
    assert unread(phone) == 1


def test_a_waiting_mark_applies_when_sync_brings_its_message(store: Store, phone: Store) -> None:
    for n in (1, 2):
        recv(store, n, (n - 1,) if n > 1 else ())
    store.mark_read(DM, T0 + 10**5)  # dated after the messages: pushed after them
    record = reads(store)[0]
    phone.apply_sync([record], NOW)  # the mark first, then the messages
    sync_all(store, phone)
    assert unread(phone) == 0


def test_a_channel_read_record_is_refused(phone: Store) -> None:
    recv(phone, 1, conv="#chan")
    applied = phone.apply_sync([ReadRecord("#chan", (mid(1),), T0)], NOW)
    assert applied.refused == 1 and unread(phone, "#chan") == 1


_reads = st.lists(
    st.tuples(st.sets(st.integers(1, 12), min_size=1, max_size=4), st.integers(0, 50)),
    min_size=1,
    max_size=6,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_reads, st.randoms(use_true_random=False))
def test_devices_converge_whatever_order_the_records_come_in(
    made: list[tuple[set[int], int]], rng: random.Random
) -> None:
    # messages 1..10 in two branches (odd and even numbers each name the one two before);
    # 11 and 12 are named but never arrive
    records = [ReadRecord(DM, tuple(mid(n) for n in sorted(ns)), T0 + t) for ns, t in made]
    shuffled = list(records)
    rng.shuffle(shuffled)
    arrival = list(range(1, 11))
    rng.shuffle(arrival)  # this device's own order of storing them
    named = {n for ns, _ in made for n in ns if n <= 10}
    read = {n for top in named for n in range(top, 0, -2)}  # named, and their ancestors
    outcomes = []
    with tempfile.TemporaryDirectory() as tmp:
        for k, order in enumerate((records, shuffled, list(reversed(records)))):
            with Store.open(Path(tmp) / f"{k}.db", key=bytes(32)) as store:
                for n in arrival:
                    recv(store, n, (n - 2,) if n > 2 else ())
                for r in order:  # one record per sync
                    store.apply_sync([r], NOW)
                outcomes.append((unread(store), reads(store)))
    newest = max(records, key=lambda r: (r.read_ms, r.sid))
    # the same mark and the same kept item whatever the order; nothing read stays unread
    assert outcomes[0] == outcomes[1] == outcomes[2]
    assert outcomes[0][1] == [newest]
    assert outcomes[0][0] <= 10 - len(read)
