"""The causal order in the store (``_dag.py``): placing, holding, releasing, bad input."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshchat.causal import FUTURE_SLACK_MS, GRACE_MS, HOLD_MS, MAX_HELD, MAX_PARENTS
from meshchat.errors import StoreError, StoreReason
from meshchat.store import Message, Store

from .helpers import KEY, ME

T0 = 1_760_000_000_000
ALICE, BOB = b"\xa1" * 16, b"\xb0" * 16
CONV = "grp:" + "99" * 16


def mid(n: int) -> bytes:
    return b"M" + n.to_bytes(15, "big")


def recv(
    store: Store,
    n: int,
    *parents: int,
    sent: int | None = None,
    at: int | None = None,
    sender: bytes = ALICE,
    conv: str = CONV,
    loose: tuple[int, ...] = (),
) -> Message | None:
    """Message ``n`` from ``sender`` naming ``parents``, sent at T0+n s, received at ``at``."""
    sent_ms = T0 + n * 1000 if sent is None else sent
    return store.add_incoming(
        conv,
        mid(n),
        sender,
        "alice",
        f"text {n}",
        sent_ms,
        sent_ms + 50 if at is None else at,
        parents=tuple(mid(p) for p in parents),
        loose=tuple(mid(p) for p in loose),
    )


def shown_ids(store: Store, conv: str = CONV) -> list[int]:
    return [int.from_bytes(m.msg_id[1:], "big") for m in store.history(conv, 10_000) if not m.held]


def held_ids(store: Store, conv: str = CONV) -> list[int]:
    return [int.from_bytes(m.msg_id[1:], "big") for m in store.history(conv, 10_000) if m.held]


# -- order ------------------------------------------------------------------------------------


def test_a_child_sorts_after_its_parent_whatever_its_clock_says(store: Store) -> None:
    recv(store, 1, sent=T0 + 5000)
    child = recv(store, 2, 1, sent=T0 + 1000, sender=BOB)  # clock behind
    recv(store, 3, sent=T0 + 3000, sender=BOB)  # unrelated, between them by time
    assert child is not None and child.order_ms == T0 + 5001 and not child.late
    assert shown_ids(store) == [3, 1, 2]


def test_ties_are_broken_by_id(store: Store) -> None:
    recv(store, 9, sent=T0, sender=BOB)
    recv(store, 4, sent=T0)
    recv(store, 7, sent=T0, sender=BOB)
    assert shown_ids(store) == [4, 7, 9]


def test_a_message_waits_for_its_parent_and_a_chain_is_released_by_its_root(
    store: Store,
) -> None:
    third = recv(store, 3, 2, at=T0 + 10_000)
    second = recv(store, 2, 1, at=T0 + 10_001)
    assert third is not None and third.held and third.missing == 1
    assert second is not None and second.held
    assert held_ids(store) == [3, 2] and shown_ids(store) == []
    assert store.missing_parents(CONV) == (mid(1),)  # 2 is stored, only 1 is missing
    first = recv(store, 1)
    assert first is not None and not first.held
    assert shown_ids(store) == [1, 2, 3] and held_ids(store) == []
    assert all(m.missing == 0 and not m.late for m in store.history(CONV))
    assert store.missing_parents(CONV) == ()
    assert store.heads(CONV) == (mid(3),)


def test_release_held_after_hold_ms_shows_a_gap(store: Store) -> None:
    recv(store, 1)
    waiting = recv(store, 3, 1, 2, at=T0 + 10_000)
    assert waiting is not None and waiting.held and waiting.missing == 1
    assert store.release_held(T0 + 10_000 + HOLD_MS - 1) == []
    released = store.release_held(T0 + 10_000 + HOLD_MS)
    assert [m.msg_id for m in released] == [mid(3)]
    assert released[0].missing == 1 and released[0].order_ms is not None
    assert shown_ids(store) == [1, 3]
    # the missing parent arriving later fills the gap; the message does not move
    recv(store, 2, 1, at=T0 + 10_000 + HOLD_MS + 5)
    after = {m.msg_id: m for m in store.history(CONV)}
    assert after[mid(3)].missing == 0 and after[mid(3)].order_ms == released[0].order_ms


def test_more_than_max_held_releases_the_oldest(store: Store) -> None:
    for n in range(1, MAX_HELD + 2):
        recv(store, 10_000 + n, n, at=T0 + n)  # each waits for a message never sent
    held = held_ids(store)
    assert len(held) == MAX_HELD and held[0] == 10_002
    assert shown_ids(store) == [10_001]
    first = store.history(CONV, 1)[0]
    assert first.msg_id == mid(10_001) and first.missing == 1


def test_thousands_of_messages_with_missing_parents_keep_the_held_set_bounded(
    store: Store,
) -> None:
    with store.transaction():
        for n in range(2000):
            recv(store, 100_000 + n, n, at=T0 + n)
    assert len(held_ids(store)) == MAX_HELD
    assert len(shown_ids(store)) == 2000 - MAX_HELD
    assert len(store.missing_parents(CONV)) <= 32


def test_back_dated_beyond_grace_goes_to_the_end_marked_late(store: Store) -> None:
    recv(store, 1, sent=T0 + 100_000)
    late = recv(store, 2, sent=T0 + 100_000 - GRACE_MS - 1, at=T0 + 100_100)
    assert late is not None and late.late and late.order_ms == T0 + 100_001
    in_place = recv(store, 3, sent=T0 + 100_000 - GRACE_MS + 1, at=T0 + 100_200)
    assert in_place is not None and not in_place.late
    assert shown_ids(store) == [3, 1, 2]


def test_a_clock_ahead_counts_as_at_most_future_slack_ahead(store: Store) -> None:
    ahead = recv(store, 1, sent=T0 + 3_600_000, at=T0)
    assert ahead is not None and ahead.order_ms == T0 + FUTURE_SLACK_MS
    normal = recv(store, 2, 1, sent=T0 + 1000, at=T0 + 1000)
    assert normal is not None and normal.order_ms == T0 + FUTURE_SLACK_MS + 1


def test_own_messages_follow_their_parents_and_are_never_held(store: Store) -> None:
    recv(store, 1, sent=T0 + 9000)
    sent = store.add_outgoing(
        CONV, mid(2), b"\x99" * 16, ME, "me", "mine", T0 + 1000, T0 + 99_000,
        parents=(mid(1), mid(77)),
    )  # fmt: skip
    assert sent.order_ms == T0 + 9001 and not sent.held and sent.parents == (mid(1), mid(77))
    assert store.pending_outbox(T0)[0].parents == (mid(1), mid(77))
    assert store.heads(CONV) == (mid(2),)


def test_loose_parents_never_hold(store: Store) -> None:
    message = recv(store, 2, loose=(1,))
    assert message is not None and not message.held and message.loose == (mid(1),)


def test_heads_are_the_newest_unnamed_shown_messages(store: Store) -> None:
    for n in range(1, 12):
        recv(store, n, sender=bytes([n]) * 16)
    assert store.heads(CONV) == tuple(mid(n) for n in range(11, 11 - MAX_PARENTS, -1))
    recv(store, 20, 11, 10)
    assert store.heads(CONV)[0] == mid(20) and mid(11) not in store.heads(CONV)


def test_a_held_message_leaves_its_shown_parents_heads_until_it_is_shown(store: Store) -> None:
    recv(store, 1)
    recv(store, 3, 1, 2)  # held: 2 is missing
    assert held_ids(store) == [3]
    assert store.heads(CONV) == (mid(1),)  # a new message still names what is shown
    recv(store, 2, 1)
    assert held_ids(store) == [] and store.heads(CONV) == (mid(3),)


def test_a_parent_named_by_a_message_released_with_a_gap_is_no_longer_a_head(
    store: Store,
) -> None:
    recv(store, 1)
    recv(store, 3, 1, 2, at=T0)
    store.release_held(T0 + HOLD_MS)
    assert store.heads(CONV) == (mid(3),)


def test_heads_open_a_bounded_number_of_rows_when_many_tie(store: Store) -> None:
    with store.transaction():
        for n in range(500):
            recv(store, n, sent=T0, sender=n.to_bytes(16, "big"))
    heads = store.heads(CONV)
    assert len(heads) == MAX_PARENTS and len(set(heads)) == MAX_PARENTS


# -- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("parents", "loose"),
    [
        ((5,), ()),  # names itself
        ((), (5,)),  # names itself, loosely
        ((1, 1), ()),  # the same parent twice
        ((1,), (1,)),
        (tuple(range(10, 10 + MAX_PARENTS + 1)), ()),  # too many
        (tuple(range(10, 3010)), ()),  # thousands
    ],
)
def test_malformed_parents_are_refused_and_nothing_is_stored(
    store: Store, parents: tuple[int, ...], loose: tuple[int, ...]
) -> None:
    with pytest.raises(StoreError) as raised:
        recv(store, 5, *parents, loose=loose)
    assert raised.value.reason is StoreReason.BAD_VALUE
    assert store.history(CONV) == []


def test_parents_must_be_a_sequence_of_ids(store: Store) -> None:
    with pytest.raises(StoreError):
        store.add_incoming(CONV, mid(1), ALICE, "a", "t", T0, T0, parents=mid(2))  # type: ignore[arg-type]


def test_a_cycle_is_held_then_released_by_time_without_recursion(store: Store) -> None:
    # a ring: each of 200 messages names the next; every one waits
    ring = 200
    for n in range(ring):
        recv(store, n, (n + 1) % ring, at=T0 + n)
    assert len(held_ids(store)) == ring
    released = store.release_held(T0 + ring + HOLD_MS)
    assert len(released) == ring
    order = shown_ids(store)
    assert sorted(order) == list(range(ring)) and held_ids(store) == []
    # the first released has its gap closed by the last, which named it
    assert all(m.missing == 0 for m in store.history(CONV, 1000))


def test_two_messages_naming_each_other_are_both_held_then_released(store: Store) -> None:
    recv(store, 1, 2, at=T0)
    recv(store, 2, 1, at=T0 + 1)
    assert held_ids(store) == [1, 2]
    store.release_held(T0 + HOLD_MS)  # only the first is due; it releases the second
    # A cycle has no causal order: each is shown once, the second just before the first,
    # which names it (a parent that comes after its child goes before it).
    assert shown_ids(store) == [2, 1] and held_ids(store) == []


def test_parents_in_another_conversation_are_ignored(store: Store) -> None:
    recv(store, 1, conv="dm:" + "a1" * 16)
    child = recv(store, 2, 1)
    assert child is not None and not child.held and child.missing == 0
    assert child.order_ms == T0 + 2000  # not ordered by the other conversation's message


def test_an_id_used_by_another_sender_in_the_conversation_is_refused(store: Store) -> None:
    assert recv(store, 1) is not None
    assert recv(store, 1, sender=BOB) is None
    assert recv(store, 1) is None  # the same again: a duplicate
    assert [m.sender for m in store.history(CONV)] == [ALICE]


# -- the property ----------------------------------------------------------------------------


@st.composite
def dags(draw: st.DrawFn) -> tuple[list[tuple[int, tuple[int, ...], int]], list[int]]:
    """Messages ``(n, parents, sent_ms)`` whose parents come before them, and an arrival order."""
    count = draw(st.integers(min_value=1, max_value=18))
    messages = []
    for n in range(count):
        parents = draw(
            st.lists(st.integers(0, n - 1), max_size=min(n, 3), unique=True) if n else st.just([])
        )
        sent = T0 + draw(st.integers(0, 5000))  # clocks within GRACE_MS of each other
        messages.append((n, tuple(parents), sent))
    arrival = draw(st.permutations(range(count)))
    return messages, list(arrival)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dags())
def test_any_arrival_order_gives_the_same_order(
    tmp_path_factory: pytest.TempPathFactory,
    case: tuple[list[tuple[int, tuple[int, ...], int]], list[int]],
) -> None:
    messages, arrival = case

    def build(order: list[int]) -> list[Message]:
        path = tmp_path_factory.mktemp("dag") / "m.db"
        with Store.open(path, key=KEY) as store, store.transaction():
            for i, n in enumerate(order):
                _, parents, sent = messages[n]
                recv(store, n, *parents, sent=sent, at=T0 + 10_000 + i)
            return store.history(CONV, 1000)

    got = build(arrival)
    reference = build(list(range(len(messages))))
    assert [m.msg_id for m in got] == [m.msg_id for m in reference]
    assert all(not m.held and not m.late and m.missing == 0 for m in got)
    position = {m.msg_id: i for i, m in enumerate(got)}
    for m in got:
        assert all(position[p] < position[m.msg_id] for p in m.parents)


def test_raw_rows_keep_no_parent_ids_in_clear(store: Store, db_path: Path) -> None:
    recv(store, 1)
    recv(store, 2, 1)
    with sqlite3.connect(db_path) as conn:
        dump = b"".join(
            bytes(cell) for row in conn.execute("SELECT * FROM links") for cell in row
            if isinstance(cell, bytes)
        )  # fmt: skip
    assert mid(1) not in dump and dump  # tags, not ids


# -- any sequence of operations ----------------------------------------------------------------

_OPS = st.lists(
    st.one_of(
        st.tuples(
            st.just("add"),
            st.integers(0, 30),  # id
            st.lists(st.integers(0, 30), max_size=3, unique=True),  # parents (maybe cycles)
            st.sampled_from([CONV, "#mesh"]),
            st.integers(0, 2),  # sender
            st.integers(-200_000, 200_000),  # sender's clock offset
        ),
        st.tuples(st.just("release"), st.integers(0, HOLD_MS * 2)),
        st.tuples(st.just("delete"), st.lists(st.integers(0, 30), max_size=3)),
        st.tuples(st.just("drop"), st.sampled_from([CONV, "#mesh"])),
        st.tuples(st.just("send"), st.integers(31, 40), st.sampled_from([CONV, "#mesh"])),
    ),
    max_size=40,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_OPS)
def test_any_sequence_of_operations_keeps_the_history_consistent(
    tmp_path_factory: pytest.TempPathFactory, ops: list[tuple[object, ...]]
) -> None:
    path = tmp_path_factory.mktemp("ops") / "m.db"
    now = T0
    with Store.open(path, key=KEY) as store:
        for op in ops:
            now += 1000
            match op:
                case ("add", int(n), list(parents), str(conv), int(who), int(skew)):
                    named = tuple(mid(p) for p in parents if p != n)
                    store.add_incoming(
                        conv, mid(n), bytes([who]) * 16, "x", "t", now + skew, now, parents=named
                    )
                case ("release", int(later)):
                    store.release_held(now + later)
                case ("delete", list(ids)):
                    store.delete_messages(CONV, [mid(i) for i in ids], now_ms=now)
                case ("drop", str(conv)):
                    store.delete_conversation(conv, now_ms=now)
                case ("send", int(n), str(conv)):
                    if store.get_message(mid(n)) is None and not store.is_deleted(mid(n)):
                        heads = store.heads(conv)
                        store.add_outgoing(
                            conv, mid(n), b"\x99" * 16, ME, "me", "t", now, now + 10**6,
                            parents=heads,
                        )  # fmt: skip
            for conv in (CONV, "#mesh"):
                history = store.history(conv, 1000)
                ids = [m.msg_id for m in history]
                assert len(ids) == len(set(ids))
                shown = [m for m in history if not m.held]
                assert shown == sorted(shown, key=lambda m: (m.order_ms, m.msg_id))
                assert len(history) - len(shown) <= MAX_HELD
                assert set(store.heads(conv)) <= {m.msg_id for m in shown}
                assert all(store.knows(conv, i) for i in ids)
                assert all(m.missing >= 1 for m in history if m.held)  # held for a reason
    with sqlite3.connect(path) as conn:
        dangling = conn.execute(
            "SELECT COUNT(*) FROM links WHERE child_row NOT IN (SELECT row_id FROM messages)"
        ).fetchone()[0]
    assert dangling == 0


def test_parents_of_a_message_shown_with_a_gap_are_still_asked_for_a_while(
    store: Store,
) -> None:
    recv(store, 1)
    recv(store, 3, 1, 2, at=T0)
    store.release_held(T0 + HOLD_MS)  # shown with a gap: 2 never came
    assert store.missing_parents(CONV) == ()  # nothing held
    assert store.missing_parents(CONV, T0) == (mid(2),)
    assert store.missing_parents(CONV, T0 + 1) == ()  # its wait began before that


def test_a_parent_that_comes_after_its_child_was_shown_goes_before_it(store: Store) -> None:
    recv(store, 1)
    recv(store, 3, 1, 2, sent=T0 + 5_000, at=T0)
    store.release_held(T0 + HOLD_MS)
    # 2 claims a time after its child's: it still goes before the child that names it.
    recv(store, 2, 1, sent=T0 + 9_000, at=T0 + HOLD_MS + 1)
    assert shown_ids(store) == [1, 2, 3]
    assert store.missing_parents(CONV, T0) == ()
