"""Range-based set reconciliation between two sessions, through the real codec."""

from __future__ import annotations

import hashlib
import random
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshchat.errors import SyncError, SyncReason
from meshchat.sync.items import INFINITY, Bound, Item, SortedItems
from meshchat.sync.session import MAX_WANTED, SyncSession
from meshchat.sync.wire import MAX_IDS, MAX_SYNC_BYTES, Mode, Range, Reconcile, decode_sync


def item(n: int, ts: int | None = None) -> Item:
    sid = hashlib.blake2b(n.to_bytes(8, "big"), digest_size=16).digest()
    return (1_700_000_000_000 + n * 7 if ts is None else ts, sid)


def reconcile(
    mine: set[Item], theirs: set[Item]
) -> tuple[set[bytes], set[bytes], set[bytes], int, int]:
    """Run a session to its end: (A pushes, B pushes, B wanted, bytes, messages)."""
    a = SyncSession(SortedItems(mine))
    b = SyncSession(SortedItems(theirs), a.session)
    queue: list[tuple[SyncSession, Reconcile]] = [(b, a.start())]
    pushes: dict[int, set[bytes]] = {id(a): set(), id(b): set()}
    wanted: dict[int, set[bytes]] = {id(a): set(), id(b): set()}
    total = 0
    count = 0
    while queue:
        side, message = queue.pop(0)
        data = message.encode()
        total += len(data)
        count += 1
        assert count < 200
        decoded = decode_sync(data)
        assert decoded == message and isinstance(decoded, Reconcile)
        step = side.receive(decoded)
        pushes[id(side)].update(step.to_send)
        wanted[id(side)].update(step.wanted)
        other = a if side is b else b
        queue.extend((other, reply) for reply in step.replies)
    return pushes[id(a)], pushes[id(b)], wanted[id(b)], total, count


def sids(items: set[Item]) -> set[bytes]:
    return {sid for _, sid in items}


@pytest.mark.parametrize(
    ("shared", "only_a", "only_b"),
    [
        (0, 0, 0),
        (0, 50, 0),
        (0, 0, 50),
        (100, 0, 0),
        (2000, 200, 0),
        (2000, 0, 200),
        (2000, 30, 40),
        (5000, 3000, 0),
    ],
)
def test_each_side_learns_exactly_what_the_other_lacks(
    shared: int, only_a: int, only_b: int
) -> None:
    common = {item(n) for n in range(shared)}
    a_new = {item(n) for n in range(10**6, 10**6 + only_a)}
    b_new = {item(n) for n in range(2 * 10**6, 2 * 10**6 + only_b)}
    a_push, b_push, _, _, _ = reconcile(common | a_new, common | b_new)
    assert a_push == sids(a_new)
    assert b_push == sids(b_new)


def test_differences_spread_through_the_history() -> None:
    rng = random.Random(7)
    common = {item(n) for n in range(4000)}
    a_new = {
        item(n, rng.randrange(1_700_000_000_000, 1_700_000_100_000))
        for n in range(10**6, 10**6 + 100)
    }
    b_new = {
        item(n, rng.randrange(1_700_000_000_000, 1_700_000_100_000))
        for n in range(2 * 10**6, 2 * 10**6 + 100)
    }
    a_push, b_push, _, _, _ = reconcile(common | a_new, common | b_new)
    assert a_push == sids(a_new)
    assert b_push == sids(b_new)


def test_equal_times_are_told_apart_by_id() -> None:
    common = {item(n, 5) for n in range(500)}
    a_new = {item(n, 5) for n in range(10**6, 10**6 + 20)}
    a_push, b_push, _, _, _ = reconcile(common | a_new, common)
    assert a_push == sids(a_new) and b_push == set()


def test_cost_grows_with_the_difference_not_the_history() -> None:
    small = reconcile({item(n) for n in range(2000)}, {item(n) for n in range(1990)})
    large = reconcile({item(n) for n in range(20000)}, {item(n) for n in range(19990)})
    same = reconcile({item(n) for n in range(20000)}, {item(n) for n in range(20000)})
    assert same[4] == 1  # one message, all agree
    # ten times the history, the same difference: not ten times the bytes
    assert large[3] < 2 * small[3] + 2000
    assert large[3] < 6000


@settings(max_examples=60, deadline=None)
@given(
    st.sets(st.integers(0, 3000), max_size=400),
    st.sets(st.integers(0, 3000), max_size=400),
    st.booleans(),
)
def test_any_two_sets_reconcile(a: set[int], b: set[int], same_time: bool) -> None:
    ts = 9 if same_time else None
    mine = {item(n, ts) for n in a}
    theirs = {item(n, ts) for n in b}
    a_push, b_push, _, _, _ = reconcile(mine, theirs)
    assert a_push == sids(mine - theirs)
    assert b_push == sids(theirs - mine)


def test_wants_name_what_the_peer_holds_in_an_ids_range() -> None:
    a = SyncSession(SortedItems([item(1)]))
    b = SyncSession(SortedItems([item(2)]), a.session)
    step = b.receive(a.start())
    assert step.to_send == (item(2)[1],)
    assert step.wanted == (item(1)[1],)
    assert step.replies[0].wants == (item(1)[1],)
    assert b.waiting == 1
    b.arrived([item(1)[1]])
    assert b.waiting == 0


def test_a_million_fake_ids_are_cut_off_with_bounded_memory() -> None:
    """A sync peer that claims a million ids: refused at MAX_WANTED, memory bounded."""
    mine = SyncSession(SortedItems(item(n) for n in range(100)), b"s" * 8)
    counter = 0
    tracemalloc.start()
    with pytest.raises(SyncError) as caught:
        for _ in range(10**6 // MAX_IDS + 1):
            fake = tuple(sorted((counter + k).to_bytes(16, "big") for k in range(MAX_IDS)))
            counter += MAX_IDS
            mine.receive(
                decode_sync(
                    Reconcile(mine.session, (Range(INFINITY, Mode.IDS, ids=fake),)).encode()
                )
            )  # type: ignore[arg-type]
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert caught.value.reason is SyncReason.TOO_MANY_WANTED
    assert counter <= MAX_WANTED + MAX_IDS  # cut at the bound, not after a million
    assert peak < 32 * 1024 * 1024


def test_endless_mismatching_rounds_are_cut_off() -> None:
    mine = SyncSession(SortedItems(item(n) for n in range(100)), b"s" * 8)
    bogus = Reconcile(mine.session, (Range(INFINITY, Mode.FINGERPRINT, fingerprint=b"\x00" * 16),))
    with pytest.raises(SyncError) as caught:
        for _ in range(10_000):
            mine.receive(bogus)
    assert caught.value.reason is SyncReason.TOO_MANY_ROUNDS


def test_a_message_of_another_session_is_refused() -> None:
    mine = SyncSession(SortedItems([]), b"a" * 8)
    with pytest.raises(SyncError) as caught:
        mine.receive(Reconcile(b"b" * 8, ()))
    assert caught.value.reason is SyncReason.OUT_OF_ORDER


def test_wants_beyond_one_message_go_out_in_more() -> None:
    a = SyncSession(SortedItems([]), b"a" * 8)
    fake = [n.to_bytes(16, "big") for n in range(3 * MAX_IDS)]
    wanted: list[bytes] = []
    for chunk in range(3):
        ids = tuple(fake[chunk * MAX_IDS : (chunk + 1) * MAX_IDS])
        step = a.receive(Reconcile(a.session, (Range(INFINITY, Mode.IDS, ids=ids),)))
        for reply in step.replies:
            decode_sync(reply.encode())
            wanted.extend(reply.wants)
    assert sorted(wanted) == fake


def test_a_reply_of_many_id_lists_and_splits_fits_one_message() -> None:
    """13 ranges where this device holds 100 items (answered with 16 fingerprints each), then
    32 where it holds exactly 32 (answered with its ids): within the range and id counts, but
    over the byte bound unless the reply counts its bytes."""
    mine = [item(n) for n in range(32 * 32 + 13 * 100)]
    session = SyncSession(SortedItems(mine), b"s" * 8)
    ordered = sorted(mine)
    cuts = [100 * (k + 1) for k in range(13)] + [1300 + 32 * (k + 1) for k in range(32)]
    ranges = [
        Range(
            Bound(*ordered[c]) if c < len(ordered) else INFINITY,
            Mode.FINGERPRINT,
            fingerprint=b"\x01" * 16,
        )
        for c in cuts
    ]
    step = session.receive(Reconcile(session.session, tuple(ranges)))
    for reply in step.replies:
        assert len(reply.encode()) <= MAX_SYNC_BYTES
        decode_sync(reply.encode())
