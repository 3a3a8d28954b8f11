"""The store's side of history sync (``_sync.py``): the item index and applying records."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from meshchat.identity import Identity
from meshchat.store import Contact, Message, MessageState, Store, Trust
from meshchat.store._rows import Rows
from meshchat.sync.records import ContactRecord, MessageRecord, StateRecord, TombstoneRecord

from .helpers import ME

T0 = 1_700_000_000_000
DM = "dm:" + "b0" * 16
BOB = b"\xb0" * 16


@pytest.fixture
def other(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "other" / "meshchat.db", key=bytes(32)) as opened:
        yield opened


def mid(n: int) -> bytes:
    return n.to_bytes(16, "big")


def recv(store: Store, n: int, conv: str = DM) -> None:
    store.add_incoming(conv, mid(n), BOB, "bob", f"hello {n}", T0 + n, T0 + n + 5)


def sync_all(src: Store, dst: Store, now: int = T0 + 10**6) -> None:
    """Push every record of ``src`` that ``dst`` lacks (what a session ends with)."""
    have = {sid for _, sid in dst.sync_listing(now)}
    missing = [sid for _, sid in src.sync_listing(now) if sid not in have]
    dst.apply_sync(src.sync_records(missing), now)


def test_listing_is_sorted_and_has_one_item_per_message(store: Store) -> None:
    for n in (5, 1, 3):
        recv(store, n)
    listing = store.sync_listing(T0)
    assert len(listing) == 3
    assert listing == sorted(listing)
    assert [ts for ts, _ in listing] == [T0 + 1, T0 + 3, T0 + 5]


def test_records_move_a_history_to_another_store_and_the_listings_agree(
    store: Store, other: Store
) -> None:
    for n in range(1, 30):
        recv(store, n)
    store.add_outgoing(DM, mid(100), BOB, ME, "me", "mine", T0 + 100, T0 + 10**9, parents=[mid(29)])
    sync_all(store, other)
    assert other.sync_listing(T0) == store.sync_listing(T0)
    got = other.history(DM, 100)
    assert [m.msg_id for m in got] == [m.msg_id for m in store.history(DM, 100)]
    mine = got[-1]
    assert mine.outgoing and mine.state is MessageState.QUEUED and mine.parents == (mid(29),)
    # the synced copy of an outgoing message is not sent again from here
    assert other.pending_outbox(T0 + 10**8) == []


def test_a_state_that_moved_on_one_device_moves_on_the_other(store: Store, other: Store) -> None:
    store.add_outgoing(DM, mid(7), BOB, ME, "me", "mine", T0 + 7, T0 + 10**9)
    sync_all(store, other)
    store.set_state(mid(7), MessageState.DELIVERED, T0 + 50)
    have = {sid for _, sid in other.sync_listing(T0)}
    changed = [sid for _, sid in store.sync_listing(T0) if sid not in have]
    # the change is one small state record, not the message again
    assert store.sync_records(changed) == [StateRecord(DM, mid(7), T0 + 7, "delivered")]
    sync_all(store, other)
    (copy,) = other.history(DM)
    assert copy.state is MessageState.DELIVERED
    assert other.sync_listing(T0) == store.sync_listing(T0)
    # and an older state coming back does not move it backwards
    other.apply_sync([MessageRecord(DM, mid(7), ME, "me", "mine", T0 + 7, "sent")], T0 + 60)
    assert other.history(DM)[0].state is MessageState.DELIVERED


def test_a_deletion_erases_the_message_on_the_other_device_and_never_comes_back(
    store: Store, other: Store
) -> None:
    for n in range(1, 4):
        recv(store, n)
    sync_all(store, other)
    assert store.delete_messages(DM, [mid(2)]) == 1
    listing = store.sync_listing(T0)
    assert len(listing) == 3  # two messages and one tombstone
    sync_all(store, other)
    assert [m.msg_id for m in other.history(DM)] == [mid(1), mid(3)]
    assert other.is_deleted(mid(2))
    # the other device still offering the message (a retry, a stale session) changes nothing
    applied = other.apply_sync(
        [MessageRecord(DM, mid(2), BOB, "bob", "hello 2", T0 + 2, "received")], T0
    )
    assert applied.refused == 1 and not applied.stored
    assert [m.msg_id for m in other.history(DM)] == [mid(1), mid(3)]
    # and the deleting device never takes it back from a device that still has it
    store.apply_sync([MessageRecord(DM, mid(2), BOB, "bob", "hello 2", T0 + 2, "received")], T0)
    assert not store.knows(DM, mid(2)) or store.is_deleted(mid(2))
    assert [m.msg_id for m in store.history(DM)] == [mid(1), mid(3)]
    assert other.sync_listing(T0) == store.sync_listing(T0)


def test_a_message_deleted_before_any_listing_still_leaves_its_tombstone(store: Store) -> None:
    recv(store, 1)
    store.delete_messages(DM, [mid(1)])
    (item,) = store.sync_listing(T0)
    assert item == (T0 + 1, TombstoneRecord(DM, mid(1), T0 + 1).sid)


def test_deleting_a_conversation_tombstones_every_message(store: Store, other: Store) -> None:
    for n in range(1, 6):
        recv(store, n)
    sync_all(store, other)
    store.delete_conversation(DM)
    sync_all(store, other)
    assert other.history(DM) == []
    assert all(other.is_deleted(mid(n)) for n in range(1, 6))


def test_a_tombstone_for_a_message_never_seen_keeps_it_out(store: Store) -> None:
    store.apply_sync([TombstoneRecord(DM, mid(9), T0 + 9)], T0)
    recv(store, 9)
    assert store.history(DM) == []


def contact(identity: Identity, trust: Trust, name: str = "carol") -> Contact:
    p = identity.public
    return Contact(p.node_id, p.sign_public, p.box_public, name, trust, T0)


def test_contacts_sync_and_the_newest_trust_change_wins(store: Store, other: Store) -> None:
    carol = Identity.generate()
    store.add_contact(contact(carol, Trust.UNVERIFIED))
    sync_all(store, other, T0 + 1)
    assert other.get_contact(carol.public.node_id) is not None
    store.set_trust(carol.public.node_id, Trust.VERIFIED)
    store.sync_listing(T0 + 100)  # seen at +100
    other.set_trust(carol.public.node_id, Trust.COMPROMISED)
    other.sync_listing(T0 + 200)  # seen later: this one wins
    sync_all(store, other, T0 + 300)
    sync_all(other, store, T0 + 300)
    for s in (store, other):
        found = s.get_contact(carol.public.node_id)
        assert found is not None and found.trust is Trust.COMPROMISED
    assert other.sync_listing(T0 + 400) == store.sync_listing(T0 + 400)


def test_a_contact_record_whose_node_id_is_not_its_keys_is_refused(store: Store) -> None:
    carol = Identity.generate().public
    forged = ContactRecord(
        b"\x07" * 16, carol.sign_public, carol.box_public, "x", "verified", T0, b"\x07" * 16
    )
    assert store.apply_sync([forged], T0).refused == 1
    assert store.get_contact(b"\x07" * 16) is None


def test_own_devices_are_not_synced_as_contacts(store: Store) -> None:
    store.add_contact(contact(Identity.generate(), Trust.OWN, "laptop"))
    assert store.sync_listing(T0) == []


def test_the_index_keeps_ids_hashed_and_records_sealed(store: Store, db_path: Path) -> None:
    recv(store, 1)
    store.sync_listing(T0)
    with sqlite3.connect(db_path) as conn:
        cells = b"".join(bytes(r[0]) for r in conn.execute("SELECT sealed FROM sync_items"))
        tags = b"".join(bytes(r[0]) for r in conn.execute("SELECT ref_tag FROM sync_items"))
    assert mid(1) not in cells and mid(1) not in tags and DM.encode() not in cells


def test_many_records_apply_in_one_transaction(other: Store) -> None:
    records = [
        MessageRecord(DM, mid(n), BOB, "bob", f"m{n}", T0 + n, "received") for n in range(1, 501)
    ]
    applied = other.apply_sync(records, T0)
    assert len(applied.stored) == 500 and len(other.sync_listing(T0)) == 500
    assert {r.sid for r in records} == {sid for _, sid in other.sync_listing(T0)}


def test_channel_messages_are_not_synced_and_not_opened_again(
    store: Store, other: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    recv(store, 1, "#mesh")
    recv(store, 2)
    assert [ts for ts, _ in store.sync_listing(T0)] == [T0 + 2]
    opened: list[int] = []
    real_open = Rows.open_message

    def counting(self: Rows, row: tuple[Any, ...], *, dag: bool = False) -> tuple[Message, int]:
        opened.append(1)
        return real_open(self, row, dag=dag)

    with monkeypatch.context() as patch:
        patch.setattr(Rows, "open_message", counting)
        store.sync_listing(T0)
    assert opened == []  # nothing new: the channel message is not opened again
    # a channel message offered by another device is refused
    record = MessageRecord("#mesh", mid(3), BOB, "bob", "hi", T0 + 3, "received")
    assert other.apply_sync([record], T0).refused == 1
    assert other.history("#mesh") == []
    # and deleting it leaves no tombstone item either
    store.delete_messages("#mesh", [mid(1)])
    assert [ts for ts, _ in store.sync_listing(T0)] == [T0 + 2]


def test_a_contacts_card_travels_with_it_and_a_forged_one_is_dropped(
    store: Store, other: Store
) -> None:
    carol, mallory = Identity.generate(), Identity.generate()
    store.add_card(carol.card("carol"), now_ms=T0)
    sync_all(store, other)
    got = other.get_contact(carol.public.node_id)
    assert got is not None and got.card == carol.card("carol").to_text()
    # a record naming carol's keys with mallory's card: the contact comes, the card does not
    p = Identity.generate().public
    record = ContactRecord(
        p.node_id, p.sign_public, p.box_public, "x", "unverified", T0, p.node_id,
        mallory.card("mallory").to_text(),
    )  # fmt: skip
    other.apply_sync([record], T0)
    added = other.get_contact(p.node_id)
    assert added is not None and added.card == ""
