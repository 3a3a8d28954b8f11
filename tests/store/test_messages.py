"""Messages in the store (``_messages.py``): deletion and tombstones, and the history queries."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from meshchat.causal import MAX_WANTS
from meshchat.errors import StoreError
from meshchat.store import MessageState, Store
from meshchat.store._rows import Rows

from .helpers import KEY, ME
from .test_dag import ALICE, BOB, CONV, T0, mid, recv, shown_ids

DM = "dm:" + "a1" * 16


def raw_count(db_path: Path, sql: str = "SELECT COUNT(*) FROM messages") -> int:
    with sqlite3.connect(db_path) as conn:
        return int(conn.execute(sql).fetchone()[0])


def send(store: Store, n: int, conv: str = CONV, parents: tuple[bytes, ...] = ()) -> bytes:
    store.add_outgoing(
        conv, mid(n), b"\x99" * 16, ME, "me", f"mine {n}", T0 + n * 1000, T0 + 10**9,
        parents=parents,
    )  # fmt: skip
    return mid(n)


# -- deleting one message --------------------------------------------------------------------


def test_deleting_a_message_erases_its_row_and_leaves_a_tombstone(
    store: Store, db_path: Path
) -> None:
    recv(store, 1)
    recv(store, 2, 1)
    assert raw_count(db_path) == 2
    assert store.delete_messages(CONV, [mid(2)], now_ms=T0 + 9) == 1
    assert raw_count(db_path) == 1
    assert raw_count(db_path, "SELECT COUNT(*) FROM links") == 0  # its links went with it
    assert (
        raw_count(db_path, "SELECT COUNT(*) FROM tombstones WHERE deleted_ms = 1760000000009") == 1
    )
    assert shown_ids(store) == [1]
    assert store.is_deleted(mid(2)) and not store.is_deleted(mid(1))
    assert store.knows(CONV, mid(2)) and store.knows(CONV, mid(1))
    assert not store.knows(DM, mid(2))


def test_a_deleted_message_is_never_stored_again(store: Store, db_path: Path) -> None:
    recv(store, 1)
    store.delete_messages(CONV, [mid(1)])
    assert recv(store, 1) is None  # a relay re-offering it, or the sender's retry
    assert recv(store, 1, at=T0 + 10**6) is None
    assert recv(store, 1, sender=BOB) is None  # another group member offering it
    assert raw_count(db_path) == 0 and shown_ids(store) == []


def test_tombstones_survive_reopening(db_path: Path) -> None:
    with Store.open(db_path, key=KEY) as store:
        recv(store, 1)
        recv(store, 2)
        store.delete_messages(CONV, [mid(1)])
        store.delete_conversation(DM)
    with Store.open(db_path, key=KEY) as store:
        assert store.is_deleted(mid(1))
        assert recv(store, 1) is None
        assert shown_ids(store) == [2]


def test_deleting_a_queued_outgoing_message_removes_its_outbox_row(
    store: Store, db_path: Path
) -> None:
    send(store, 1)
    send(store, 2)
    assert len(store.pending_outbox(T0)) == 2
    assert store.delete_messages(CONV, [mid(1)]) == 1
    assert [e.msg_id for e in store.pending_outbox(T0)] == [mid(2)]
    assert raw_count(db_path, "SELECT COUNT(*) FROM outbox") == 1
    assert store.get_message(mid(1)) is None
    assert not store.set_state(mid(1), MessageState.DELIVERED, T0)  # a late ack is ignored


def test_deleting_a_head_makes_its_parents_heads_again(store: Store) -> None:
    recv(store, 1)
    recv(store, 2, 1)
    assert store.heads(CONV) == (mid(2),)
    store.delete_messages(CONV, [mid(2)])
    assert store.heads(CONV) == (mid(1),)


def test_deleting_the_parent_a_message_waits_for_releases_it(store: Store) -> None:
    recv(store, 2, 1)
    assert shown_ids(store) == []
    store.delete_messages(CONV, [mid(1)])  # never arrived; now tombstoned: ignored
    assert shown_ids(store) == [2]
    assert store.history(CONV)[0].missing == 0


def test_an_id_of_another_conversation_is_left_alone(store: Store) -> None:
    recv(store, 1, conv=DM)
    assert store.delete_messages(CONV, [mid(1)]) == 0
    assert not store.is_deleted(mid(1))
    assert [m.msg_id for m in store.history(DM)] == [mid(1)]


def test_an_id_not_yet_stored_can_be_deleted_ahead(store: Store) -> None:
    assert store.delete_messages(CONV, [mid(5)]) == 0
    assert store.is_deleted(mid(5)) and recv(store, 5) is None


def test_delete_takes_a_list_of_ids(store: Store) -> None:
    with pytest.raises(StoreError):
        store.delete_messages(CONV, mid(1))
    with pytest.raises(StoreError):
        store.delete_messages(CONV, ["not bytes"])  # type: ignore[list-item]


# -- deleting a conversation -----------------------------------------------------------------


def test_deleting_a_conversation_erases_every_row_and_tombstones_them(
    store: Store, db_path: Path
) -> None:
    recv(store, 1)
    recv(store, 3, 2)  # held
    send(store, 4, parents=(mid(1),))
    recv(store, 5, conv=DM)
    store.mark_read(CONV)
    assert store.delete_conversation(CONV) == 3
    assert raw_count(db_path) == 1  # the direct message stays
    assert raw_count(db_path, "SELECT COUNT(*) FROM links") == 0
    assert raw_count(db_path, "SELECT COUNT(*) FROM outbox") == 0
    assert raw_count(db_path, "SELECT COUNT(*) FROM tombstones") == 3
    assert raw_count(db_path, "SELECT COUNT(*) FROM read_marks") == 0
    assert store.history(CONV) == [] and store.heads(CONV) == ()
    assert [c.name for c in store.conversations()] == [DM]
    assert recv(store, 1) is None and recv(store, 3, 2) is None
    assert recv(store, 6) is not None  # a new message starts the conversation again


# -- history queries -------------------------------------------------------------------------


def test_history_pages_from_the_end_and_puts_held_messages_last(store: Store) -> None:
    for n in range(1, 11):
        recv(store, n, sent=T0 + 1000 * (n // 2))  # pairs tie on time: ordered by id
    recv(store, 20, 19)
    page = store.history(CONV, 3)
    assert [m.msg_id for m in page] == [mid(8), mid(9), mid(10), mid(20)]
    assert page[-1].held and page[-1].missing == 1
    assert store.messages(CONV, 3) == page
    assert store.history(CONV, 0) == [page[-1]]
    everything = store.history(CONV, 15)  # a page larger than the conversation: all of it
    assert [m.msg_id for m in everything] == [*(mid(n) for n in range(1, 11)), mid(20)]


def test_missing_parents_lists_what_held_messages_wait_for(store: Store) -> None:
    recv(store, 1)
    recv(store, 10, 1, 2, 3)  # waits for 2 and 3
    recv(store, 11, 3, 4)
    assert store.missing_parents(CONV) == (mid(2), mid(3), mid(4))
    for n in range(100, 100 + MAX_WANTS + 5):
        recv(store, n + 1000, n)
    assert len(store.missing_parents(CONV)) == MAX_WANTS


def test_own_messages_answers_only_our_outgoing_ones_in_that_conversation(
    store: Store,
) -> None:
    send(store, 1)
    recv(store, 2)
    send(store, 3, conv=DM)
    found = store.own_messages(CONV, [mid(3), mid(2), mid(1), mid(99)])
    assert [m.msg_id for m in found] == [mid(1)]
    assert found[0].outgoing and found[0].text == "mine 1"
    assert store.own_messages(DM, [mid(1)]) == []


def test_a_long_chain_reads_back_in_order_with_its_parents(store: Store) -> None:
    with store.transaction():
        previous: tuple[int, ...] = ()
        for n in range(1, 2001):
            recv(store, n, *previous, sender=ALICE if n % 2 else BOB)
            previous = (n,)
    page = store.history(CONV, 10_000)
    assert len(page) == 2000 and [m.msg_id for m in page] == [mid(n) for n in range(1, 2001)]
    assert all(m.parents == (mid(n),) for n, m in enumerate(page[1:], start=1))


def test_what_an_add_returns_is_what_the_store_reads_back(store: Store) -> None:
    """The message an add returns (sealed fields as written, the rest read from its row)
    equals the message the store opens later: shown, held, late, outgoing, own copies."""
    returned = [
        store.add_outgoing(CONV, mid(1), b"\x05" * 16, ME, "me", "first", T0, T0 + 10**6),
        recv(store, 2, 1),
        recv(store, 4, 3),  # held: its parent is not here
        store.add_own_copy(CONV, mid(5), ME, "me", "from my phone", T0 + 5, T0 + 6),
        store.add_incoming(CONV, mid(6), BOB, "bob", "late", T0 - 10**9, T0 + 7),
        store.add_outgoing(
            CONV,
            mid(7),
            b"\x05" * 16,
            ME,
            "me",
            "again",
            T0 + 8,
            T0 + 10**6,
            parents=[mid(2), mid(6)],
            loose=[mid(5)],
        ),
    ]
    read = {m.msg_id: m for m in store.history(CONV, 100)}
    assert all(m is not None for m in returned)
    for message in returned:
        assert message is not None
        assert message == read[message.msg_id]
    assert read[mid(4)].held and read[mid(4)].missing == 1
    assert read[mid(6)].late


def test_head_messages_open_no_row_of_a_message_written_here(
    store: Store, db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A message's parents come from the conversation's head messages, asked before every
    message sent; the store keeps the messages it wrote, so naming them opens no sealed row.
    What it gives is what a fresh store opens; an erased message is not kept."""
    store.add_outgoing(CONV, mid(1), b"\x05" * 16, ME, "me", "first", T0, T0 + 10**6)
    recv(store, 2, 1)
    recv(store, 3, 1, sender=BOB)
    opened: list[int] = []
    real_open = Rows.open_message

    def counting(rows: Rows, row: tuple[object, ...], *, dag: bool = False) -> object:
        opened.append(1)
        return real_open(rows, row, dag=dag)

    monkeypatch.setattr(Rows, "open_message", counting)
    heads = store.head_messages(CONV)
    assert opened == []
    monkeypatch.undo()
    with Store.open(db_path, key=KEY) as fresh:
        assert fresh.head_messages(CONV) == heads
        assert {m.msg_id for m in heads} == {mid(2), mid(3)}
        assert store.delete_messages(CONV, [mid(3)]) == 1
        assert store.head_messages(CONV) == fresh.head_messages(CONV)
        assert [m.msg_id for m in store.head_messages(CONV)] == [mid(2)]
