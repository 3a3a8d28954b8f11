"""Two real stores reconciled through their drivers (the node's sync, without the network)."""

from __future__ import annotations

import types
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshchat.errors import PacketError, SyncError, SyncReason
from meshchat.store import MessageState, Store, SyncApplied
from meshchat.sync.driver import SyncDriver, refuse_stranger
from meshchat.sync.records import Record, TombstoneRecord
from meshchat.sync.wire import decode_sync

T0 = 1_700_000_000_000
DM = "dm:" + "b0" * 16
BOB = b"\xb0" * 16
A_ID, B_ID = b"\xaa" * 16, b"\xbb" * 16


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[tuple[Store, Store]]:
    with (
        Store.open(tmp_path / "a" / "m.db", key=b"a" * 32) as a,
        Store.open(tmp_path / "b" / "m.db", key=b"b" * 32) as b,
    ):
        yield a, b


def mid(n: int) -> bytes:
    return n.to_bytes(16, "big")


def recv(store: Store, n: int) -> None:
    store.add_incoming(DM, mid(n), BOB, "bob", f"hello {n}", T0 + n, T0 + n + 5)


def run(
    a: SyncDriver,
    b: SyncDriver,
    now: int = T0,
    *,
    cut_after: int | None = None,
    ids: tuple[bytes, bytes] = (A_ID, B_ID),
) -> int:
    """``a`` (device ``ids[0]``) starts with ``b`` (device ``ids[1]``); messages go back and
    forth until none is left; returns how many were sent."""
    a_id, b_id = ids
    queue = [(b, a_id, m) for m in a.start(b_id, now)]
    count = 0
    while queue:
        driver, sender, data = queue.pop(0)
        count += 1
        if cut_after is not None and count > cut_after:
            return count  # the link went down: the rest is lost
        outcome = driver.receive(sender, data, now)
        other, me = (a, b_id) if driver is b else (b, a_id)
        queue.extend((other, me, m) for m in outcome.out)
        if outcome.pushes is not None:
            queue.extend((other, me, m) for m in outcome.pushes.all())
    return count


def test_two_devices_end_with_the_same_history(stores: tuple[Store, Store]) -> None:
    a, b = stores
    for n in range(1, 301):
        recv(a, n)
    for n in range(250, 401):
        recv(b, n)
    b.add_outgoing(DM, mid(500), BOB, b"\x01" * 16, "me", "mine", T0 + 500, T0 + 10**9)
    da, db = SyncDriver(a), SyncDriver(b)
    run(da, db)
    assert a.sync_listing(T0) == b.sync_listing(T0)
    ids = [m.msg_id for m in a.history(DM, 1000)]
    assert ids == [m.msg_id for m in b.history(DM, 1000)] and len(ids) == 401
    (progress,) = db.progress()
    assert progress.done and progress.received == 249
    assert progress.sent == 102  # 101 messages and the delivery state of the one of ours


def test_a_cut_sync_resumes_and_costs_only_what_is_left(stores: tuple[Store, Store]) -> None:
    a, b = stores
    for n in range(1, 2001):
        recv(a, n)
    da, db = SyncDriver(a), SyncDriver(b)
    run(da, db, cut_after=3)  # the start, B's answer, one message of records
    got = len(b.history(DM, 5000))
    assert 0 < got < 2000
    # the next meeting: a new session, which sends only the rest
    before = len(b.history(DM, 5000))
    run(da, db, T0 + 10**6)
    assert len(b.history(DM, 5000)) == 2000
    assert db.progress()[0].received == 2000 - before
    assert a.sync_listing(T0) == b.sync_listing(T0)


def test_states_and_deletions_travel_both_ways(stores: tuple[Store, Store]) -> None:
    a, b = stores
    a.add_outgoing(DM, mid(1), BOB, b"\x01" * 16, "me", "one", T0 + 1, T0 + 10**9)
    recv(a, 2)
    da, db = SyncDriver(a), SyncDriver(b)
    run(da, db)
    a.set_state(mid(1), MessageState.DELIVERED, T0 + 9)
    b.delete_messages(DM, [mid(2)])
    run(db, da, T0 + 10**6, ids=(B_ID, A_ID))
    assert [(m.msg_id, m.state) for m in b.history(DM)] == [(mid(1), MessageState.DELIVERED)]
    assert [m.msg_id for m in a.history(DM)] == [mid(1)]
    # and a later sync does not bring the deleted message back from anywhere
    run(da, db, T0 + 2 * 10**6)
    assert [m.msg_id for m in b.history(DM)] == [mid(1)]


def test_both_starting_at_once_settle_on_one_session(stores: tuple[Store, Store]) -> None:
    a, b = stores
    for n in range(1, 100):
        recv(a, n)
    da, db = SyncDriver(a), SyncDriver(b)
    queue = [(db, A_ID, m) for m in da.start(B_ID, T0)] + [
        (da, B_ID, m) for m in db.start(A_ID, T0)
    ]
    while queue:
        driver, sender, data = queue.pop(0)
        outcome = driver.receive(sender, data, T0)
        other, me = (da, B_ID) if driver is db else (db, A_ID)
        queue.extend((other, me, m) for m in outcome.out)
        if outcome.pushes is not None:
            queue.extend((other, me, m) for m in outcome.pushes.all())
    assert len(b.history(DM, 500)) == 99
    assert da.progress()[0].session == db.progress()[0].session


def test_a_sync_peer_that_is_not_one_of_my_devices_is_refused() -> None:
    refuse_stranger(A_ID, [A_ID, B_ID])
    with pytest.raises(SyncError) as caught:
        refuse_stranger(b"\x66" * 16, [A_ID, B_ID])
    assert caught.value.reason is SyncReason.NOT_MY_DEVICE


class MemoryStore:
    """The store calls of sync over a dict, fetching at most 10,000 records at once as the
    real store does."""

    def __init__(self, count: int) -> None:
        self.records = {
            r.sid: r
            for r in (TombstoneRecord(DM, n.to_bytes(16, "big"), T0 + n) for n in range(count))
        }

    def sync_listing(self, now_ms: int) -> list[tuple[int, bytes]]:
        return sorted((r.ts, r.sid) for r in self.records.values())

    def sync_records(self, sids: Iterable[bytes]) -> list[Record]:
        return [self.records[s] for s in list(sids)[:10_000] if s in self.records]

    def apply_sync(self, records: Sequence[Record], now_ms: int) -> SyncApplied:
        for r in records:
            self.records[r.sid] = r  # type: ignore[assignment]
        return SyncApplied(sids=[r.sid for r in records])


def test_a_new_device_gets_a_history_larger_than_one_fetch() -> None:
    full, empty = MemoryStore(25_000), MemoryStore(0)
    run(SyncDriver(empty), SyncDriver(full))  # type: ignore[arg-type]
    assert len(empty.records) == 25_000


def test_a_new_session_after_a_finished_one_is_answered(
    stores: tuple[Store, Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = stores
    recv(a, 1)
    da, db = SyncDriver(a), SyncDriver(b)
    ids = iter([b"\x00" * 8, b"\xff" * 8])
    monkeypatch.setattr(
        "meshchat.sync.session.os", types.SimpleNamespace(urandom=lambda n: next(ids))
    )
    run(da, db)  # a started (the lowest id); b answered
    recv(a, 2)
    # soon after, b starts a session of its own, of a higher id than a's finished one
    run(db, da, T0 + 1_000, ids=(B_ID, A_ID))
    assert [m.msg_id for m in b.history(DM)] == [mid(1), mid(2)]


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.binary(max_size=400), max_size=6), st.data())
def test_whatever_a_peer_sends_the_driver_answers_or_refuses_with_a_typed_error(
    stores: tuple[Store, Store], junk: list[bytes], data: st.DataObject
) -> None:
    a, _ = stores
    if not a.sync_listing(T0):
        for n in range(1, 60):
            recv(a, n)
    driver = SyncDriver(a)
    real = SyncDriver(a).start(B_ID, T0)[0]
    for blob in [*junk, real]:
        raw = bytearray(blob)
        if raw and data.draw(st.booleans()):
            raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
        try:
            outcome = driver.receive(B_ID, bytes(raw), T0)
        except (PacketError, SyncError):
            continue
        for out in outcome.out:
            decode_sync(out)  # whatever it answers is a valid message
        if outcome.pushes is not None:
            outcome.pushes.all()
