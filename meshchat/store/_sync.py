"""History sync in the store: the synced items, listed fast, and records applied in one go.

A part of :class:`~meshchat.store.Store` (a mixin, like ``_state.py``).

Theory of operation
-------------------
``sync_items`` holds one row per synced item (:mod:`meshchat.sync.records`): its sync id and
time in clear, and a sealed cell with the record's identity. It is an index kept up to date
lazily, by :meth:`SyncTables._sync_refresh`, which every listing runs first and which costs
one pass of SQL over the tags plus opening only what changed since the last listing:

* a message row without an item, or whose state differs from its item's: opened, and its
  item (re)written; a message of a channel (``#name``: each device hears those itself, and
  their history is trimmed to a budget, which sync would undo) gets a row of kind 0 instead,
  which is never listed, so it is not opened again;
* an item whose message row is gone: dropped; if the message was deleted here (its tag has a
  tombstone), a tombstone item takes its place, from the item's sealed identity. Deleting
  refreshes first (:meth:`SyncTables._sync_before_delete`), so a message stored and deleted
  between two listings still leaves its tombstone item;
* contacts (few) are opened each time: a contact without an item gets one dated when it was
  added; one whose trust differs from its item's gets a new item dated now (the newest change
  wins, so a device's change must be dated when it is seen). Contacts of trust ``own`` (my
  devices: device lists sync them) are not synced.

Records received are applied by :meth:`SyncTables.apply_sync` in one transaction, which also
writes their items, so a record applied is never opened again to be indexed.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from meshchat.errors import IdentityError, PacketError, StoreError
from meshchat.files.announce import is_announcement
from meshchat.identity import ContactCard, node_id_of
from meshchat.store import _checks as checks
from meshchat.store import _dag as d
from meshchat.store import _sql as q
from meshchat.store import _values as v
from meshchat.store._dag import Dag
from meshchat.store._reads import ReadTables, synced_conversation
from meshchat.store._rows import Rows
from meshchat.store.history import HistoryTrimmer
from meshchat.store.records import Contact, Message, MessageState, Trust
from meshchat.store.states import RANK
from meshchat.sync.records import (
    CONTACT,
    MAX_CARD_TEXT,
    MESSAGE,
    READ,
    STATE,
    TOMBSTONE,
    TRUSTS,
    ContactRecord,
    MessageRecord,
    ReadRecord,
    Record,
    StateRecord,
    TombstoneRecord,
)

__all__ = ["SyncApplied", "SyncTables"]

#: The most records one call of :meth:`SyncTables.sync_records` returns.
MAX_RECORDS_AT_ONCE = 10_000

_NEW_OR_CHANGED = """
    SELECT m.row_id, m.conv_tag, m.msg_tag, m.sender_tag, m.outgoing, m.state, m.updated_ms,
    m.sealed FROM messages m LEFT JOIN sync_items s ON s.ref_row = m.row_id AND s.kind IN (0, 1)
    WHERE s.sid IS NULL OR s.state != m.state
"""
_GONE = """
    SELECT s.sid, s.kind, s.ref_tag, s.sealed FROM sync_items s WHERE s.kind IN (0, 1, 4)
    AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.row_id = s.ref_row)
"""
_ITEM_INSERT = """
    INSERT OR REPLACE INTO sync_items (sid, ts, kind, ref_row, ref_tag, state, sealed)
    VALUES (?, ?, ?, ?, ?, ?, ?)
"""
_ITEM_DELETE_ROW = "DELETE FROM sync_items WHERE ref_row = ?"
_ITEM_DELETE = "DELETE FROM sync_items WHERE sid = ?"
_ITEM_BY_SID = "SELECT kind, ref_row, ref_tag, sealed FROM sync_items WHERE sid = ?"
_ITEMS_OF_KIND = "SELECT sid, ref_tag, state, sealed FROM sync_items WHERE kind = ?"
_LISTING = "SELECT ts, sid FROM sync_items WHERE kind != 0 ORDER BY ts, sid"
#: The kind of a row that marks a message as not synced (indexed, so it is not opened again).
_NOT_SYNCED = 0
_TOMBSTONED = "SELECT 1 FROM tombstones WHERE msg_tag = ?"
_ANY_ROW = "SELECT row_id, conv_tag, outgoing FROM messages WHERE msg_tag = ?"
_ROW = """
    SELECT row_id, conv_tag, msg_tag, sender_tag, outgoing, state, updated_ms, sealed
    FROM messages WHERE row_id = ?
"""


#: file announcements one apply reports at most (a node pulls at most 16 files at once)
MAX_ANNOUNCED = 64


@dataclass(slots=True)
class SyncApplied:
    """What :meth:`SyncTables.apply_sync` changed."""

    #: messages new on this device: (conversation, msg_id)
    stored: list[tuple[str, bytes]] = field(default_factory=list)
    #: of those, the file announcements (the node takes them up: my device may fetch the file)
    announced: list[Message] = field(default_factory=list)
    erased: list[tuple[str, bytes]] = field(default_factory=list)  #: (conversation, msg_id)
    states: int = 0  #: outgoing messages whose state moved forward
    contacts: list[bytes] = field(default_factory=list)  #: node ids added or trust changed
    reads: list[str] = field(default_factory=list)  #: conversations whose read mark moved
    refused: int = 0  #: records not applied (tombstoned, clashing, malformed for the store)
    sids: list[bytes] = field(default_factory=list)  #: sync ids of every record received


class SyncTables(ReadTables):
    """The synced items of :mod:`meshchat.sync` (mixed into :class:`Store`)."""

    _rows: Rows
    _dag: Dag
    _history: HistoryTrimmer
    _reading: Callable[[], AbstractContextManager[sqlite3.Connection]]
    _writing: Callable[[], AbstractContextManager[sqlite3.Connection]]
    _contacts: Callable[[sqlite3.Connection], list[Contact]]
    _put_contact: Callable[[sqlite3.Connection, Contact], None]
    _advance: Callable[[sqlite3.Connection, bytes, MessageState, int], bool]

    # -- the index --------------------------------------------------------------------------

    def _item(self, conn: sqlite3.Connection, record: Record, ref_row: int | None) -> None:
        if isinstance(record, ReadRecord):
            self._put_read(conn, record, self._rows.conv_tag(record.conversation), pending=False)
            return
        if isinstance(record, MessageRecord):
            kind, ref_tag, state = MESSAGE, self._rows.msg_tag(record.msg_id), record.state
            cell: list[Any] = [record.conversation, record.msg_id, record.created_ms]
        elif isinstance(record, TombstoneRecord):
            kind, ref_tag, state = TOMBSTONE, self._rows.msg_tag(record.msg_id), ""
            cell = [record.conversation, record.msg_id, record.created_ms]
        elif isinstance(record, StateRecord):
            kind, ref_tag, state = STATE, self._rows.msg_tag(record.msg_id), record.state
            cell = [record.conversation, record.msg_id, record.created_ms]
        else:
            kind, ref_tag, state = CONTACT, self._rows.contact_tag(record.node_id), record.trust
            cell = [record.node_id, record.changed_ms]
        sid = record.sid
        sealed = self._rows.cipher.seal("sync_items", (sid,), cell)
        conn.execute(_ITEM_INSERT, (sid, record.ts, kind, ref_row, ref_tag, state, sealed))

    def _message_items(self, conn: sqlite3.Connection, r: MessageRecord, row_id: int) -> None:
        """The items of a stored message: itself, and its delivery state if it is ours."""
        self._item(conn, r, row_id)
        if r.state != MessageState.RECEIVED.value:
            self._item(conn, StateRecord(r.conversation, r.msg_id, r.created_ms, r.state), row_id)

    def _cell(self, sid: bytes, sealed: object) -> list[Any]:
        return self._rows.cipher.open("sync_items", (bytes(sid),), sealed)

    @staticmethod
    def _message_record(m: Message) -> MessageRecord:
        return MessageRecord(
            m.conversation,
            m.msg_id,
            m.sender,
            m.sender_name,
            m.text,
            m.created_ms,
            m.state.value,
            m.parents,
            m.loose,
        )

    def _not_synced(self, conn: sqlite3.Connection, m: Message) -> None:
        sid = hashlib.blake2b(
            m.row_id.to_bytes(8, "big"), digest_size=16, person=b"sync-skip"
        ).digest()
        sealed = self._rows.cipher.seal("sync_items", (sid,), [])
        row = (sid, 0, _NOT_SYNCED, m.row_id, self._rows.msg_tag(m.msg_id), m.state.value, sealed)
        conn.execute(_ITEM_INSERT, row)

    def _sync_refresh(self, conn: sqlite3.Connection, now_ms: int) -> None:
        for row in conn.execute(_NEW_OR_CHANGED).fetchall():
            message = self._rows.open_message(row)[0]
            conn.execute(_ITEM_DELETE_ROW, (message.row_id,))
            try:
                record = self._message_record(message)
            except PacketError:  # a stored value sync records cannot carry: not synced
                self._not_synced(conn, message)
                continue
            if not synced_conversation(message.conversation):
                self._not_synced(conn, message)
                continue
            self._message_items(conn, record, message.row_id)
        for sid, kind, ref_tag, sealed in conn.execute(_GONE).fetchall():
            conn.execute(_ITEM_DELETE, (sid,))
            if kind != MESSAGE or conn.execute(_TOMBSTONED, (ref_tag,)).fetchone() is None:
                continue
            cell = self._cell(sid, sealed)
            tomb = TombstoneRecord(v.cell_str(cell[0]), v.cell_bytes(cell[1]), v.cell_int(cell[2]))
            self._item(conn, tomb, None)
        self._refresh_contacts(conn, now_ms)

    def _refresh_contacts(self, conn: sqlite3.Connection, now_ms: int) -> None:
        held: dict[bytes, tuple[bytes, str, int]] = {}
        for sid, ref_tag, state, sealed in conn.execute(_ITEMS_OF_KIND, (CONTACT,)).fetchall():
            changed = v.cell_int(self._cell(sid, sealed)[1])
            held[bytes(ref_tag)] = (bytes(sid), str(state), changed)
        for contact in self._contacts(conn):
            tag = self._rows.contact_tag(contact.node_id)
            known = held.pop(tag, None)
            if known is not None and known[1] == contact.trust.value:
                continue
            if known is not None:
                conn.execute(_ITEM_DELETE, (known[0],))
            if contact.trust.value not in TRUSTS:
                continue
            changed = contact.added_ms if known is None else max(now_ms, known[2] + 1)
            try:
                self._item(conn, _contact_record(contact, changed), None)
            except PacketError:  # a name longer than records carry: this contact is not synced
                continue
        for sid, _, _ in held.values():
            conn.execute(_ITEM_DELETE, (sid,))

    def _sync_before_delete(self, conn: sqlite3.Connection, now_ms: int) -> None:
        """Index what is about to be deleted, so its tombstone item can be made."""
        self._sync_refresh(conn, now_ms)

    # -- reading ----------------------------------------------------------------------------

    def sync_listing(self, now_ms: int) -> list[tuple[int, bytes]]:
        """Every synced item as ``(ts, sid)``, sorted; brings the index up to date first."""
        now_ms = v.integer(now_ms, "now_ms")
        with self._writing() as conn:
            self._sync_refresh(conn, now_ms)
            return [(int(ts), bytes(sid)) for ts, sid in conn.execute(_LISTING)]

    def sync_records(self, sids: Iterable[bytes]) -> list[Record]:
        """The records with these sync ids, in that order; unknown ids are skipped."""
        out: list[Record] = []
        with self._reading() as conn:
            for sid in sids:
                if len(out) >= MAX_RECORDS_AT_ONCE:
                    break
                found = conn.execute(_ITEM_BY_SID, (v.blob(sid, "sid"),)).fetchone()
                if found is not None:
                    record = self._record(conn, sid, *found)
                    if record is not None:
                        out.append(record)
        return out

    def _record(
        self,
        conn: sqlite3.Connection,
        sid: bytes,
        kind: int,
        ref_row: Any,
        ref_tag: Any,
        sealed: Any,
    ) -> Record | None:
        if kind in (MESSAGE, STATE):
            row = conn.execute(_ROW, (ref_row,)).fetchone()
            if row is None:
                return None
            m = self._rows.open_message(row)[0]
            if kind == MESSAGE:
                return self._message_record(m)
            if not m.outgoing:
                return None
            return StateRecord(m.conversation, m.msg_id, m.created_ms, m.state.value)
        if kind == READ:
            return self._open_read(sid, sealed)
        cell = self._cell(sid, sealed)
        if kind == TOMBSTONE:
            return TombstoneRecord(v.cell_str(cell[0]), v.cell_bytes(cell[1]), v.cell_int(cell[2]))
        row = conn.execute(q.CONTACT_BY_TAG, (ref_tag,)).fetchone()
        if row is None:
            return None
        return _contact_record(self._rows.open_contact(row), v.cell_int(cell[1]))

    # -- writing ----------------------------------------------------------------------------

    def apply_sync(self, records: Sequence[Record], now_ms: int) -> SyncApplied:
        """Apply records received from one of my devices, in one transaction.

        A message is stored where it belongs (held if it waits for a parent; an outgoing one
        gets no outbox row: its own device sends it); one already here may move its state
        forward. A tombstone erases the message and stays. A contact is added, or takes the
        trust of the newer change. Records for ids deleted here are refused.
        """
        now_ms = v.integer(now_ms, "now_ms")
        applied = SyncApplied()
        with self._writing() as conn:
            self._refresh_contacts(conn, now_ms)  # date local trust changes before comparing
            for record in records:
                applied.sids.append(record.sid)
                if isinstance(record, MessageRecord):
                    self._apply_message(conn, record, now_ms, applied)
                elif isinstance(record, TombstoneRecord):
                    self._apply_tombstone(conn, record, now_ms, applied)
                elif isinstance(record, StateRecord):
                    self._apply_state(conn, record, now_ms, applied)
                elif isinstance(record, ReadRecord):
                    self._read_arrived(conn, record, applied)
                else:
                    self._apply_contact(conn, record, applied)
            for conversation, msg_id in applied.stored:  # a Read item that waited for them
                conv_tag, msg_tag = self._rows.conv_tag(conversation), self._rows.msg_tag(msg_id)
                moved = self._reads_arrived(conn, conv_tag, msg_tag)
                if moved and conversation not in applied.reads:
                    applied.reads.append(conversation)
            if applied.erased:
                self._history.forget()
        return applied

    def _apply_message(
        self, conn: sqlite3.Connection, r: MessageRecord, now_ms: int, applied: SyncApplied
    ) -> None:
        msg_tag = self._rows.msg_tag(r.msg_id)
        conv_tag = self._rows.conv_tag(r.conversation)
        if not synced_conversation(r.conversation):
            applied.refused += 1
            return
        if conn.execute(_TOMBSTONED, (msg_tag,)).fetchone() is not None:
            applied.refused += 1
            return
        existing = conn.execute(_ANY_ROW, (msg_tag,)).fetchall()
        if existing:
            here = [row for row in existing if bytes(row[1]) == conv_tag]
            state = MessageState(r.state)
            moved = bool(here and here[0][2] and state in RANK)
            if moved and self._advance(conn, r.msg_id, state, now_ms):
                applied.states += 1
            elif not here:
                applied.refused += 1
            return
        try:
            state = MessageState(r.state)
            message = checks.message(
                r.conversation,
                r.msg_id,
                r.sender,
                r.sender_name,
                r.text,
                r.created_ms,
                state=state,
                updated_ms=now_ms,
                parents=r.parents,
                loose=r.loose,
            )
        except StoreError:
            applied.refused += 1
            return
        received = state is MessageState.RECEIVED
        row_id = self._dag.store(conn, message, now_ms, received=received)
        if row_id is None:
            applied.refused += 1
            return
        self._message_items(conn, r, row_id)
        if received and r.conversation.startswith("#"):
            sender_tag = self._rows.sender_tag(r.sender)
            self._history.after_insert(conn, conv_tag, sender_tag, row_id, now_ms)
        applied.stored.append((r.conversation, r.msg_id))
        if is_announcement(message.text) and len(applied.announced) < MAX_ANNOUNCED:
            applied.announced.append(message)

    def _read_arrived(self, conn: sqlite3.Connection, r: ReadRecord, applied: SyncApplied) -> None:
        moved = self._apply_read(conn, r)
        if moved is None:
            applied.refused += 1
        elif moved and r.conversation not in applied.reads:
            applied.reads.append(r.conversation)

    def _apply_state(
        self, conn: sqlite3.Connection, r: StateRecord, now_ms: int, applied: SyncApplied
    ) -> None:
        """A delivery state: moves the stored outgoing message forward, never back."""
        conv_tag = self._rows.conv_tag(r.conversation)
        rows = conn.execute(_ANY_ROW, (self._rows.msg_tag(r.msg_id),)).fetchall()
        if not any(bytes(row[1]) == conv_tag and row[2] for row in rows):
            applied.refused += 1  # not stored here (yet: its message record brings it)
            return
        if self._advance(conn, r.msg_id, MessageState(r.state), now_ms):
            applied.states += 1

    def _apply_tombstone(
        self, conn: sqlite3.Connection, r: TombstoneRecord, now_ms: int, applied: SyncApplied
    ) -> None:
        conv_tag, msg_tag = self._rows.conv_tag(r.conversation), self._rows.msg_tag(r.msg_id)
        count, outgoing = self._dag.delete(conn, conv_tag, msg_tag, now_ms)
        if outgoing:
            conn.execute(q.OUTBOX_DELETE, (self._rows.outbox_tag(r.msg_id),))
        if conn.execute(d.TOMBSTONED_HERE, (msg_tag, conv_tag)).fetchone() is None:
            applied.refused += 1  # the id lives in another conversation here: left alone
            return
        conn.execute(
            "DELETE FROM sync_items WHERE kind IN (?, ?) AND ref_tag = ?", (MESSAGE, STATE, msg_tag)
        )
        self._item(conn, r, None)
        if count:
            applied.erased.append((r.conversation, r.msg_id))

    def _apply_contact(
        self, conn: sqlite3.Connection, r: ContactRecord, applied: SyncApplied
    ) -> None:
        if node_id_of(r.sign_public, r.box_public) != r.node_id:
            applied.refused += 1
            return
        tag = self._rows.contact_tag(r.node_id)
        row = conn.execute(q.CONTACT_BY_TAG, (tag,)).fetchone()
        mine = None if row is None else self._rows.open_contact(row)
        if mine is not None and mine.trust.value not in TRUSTS:
            applied.refused += 1  # my own device, or a state sync does not carry
            return
        if mine is not None:
            item = conn.execute(
                "SELECT sid, sealed FROM sync_items WHERE kind = ? AND ref_tag = ?",
                (CONTACT, tag),
            ).fetchone()
            changed = 0 if item is None else v.cell_int(self._cell(item[0], item[1])[1])
            current = _contact_record(mine, changed)
            if not r.wins_over(current):
                return
            if item is not None:
                conn.execute(_ITEM_DELETE, (item[0],))
            contact = Contact(
                mine.node_id,
                mine.sign_public,
                mine.box_public,
                mine.name,
                Trust(r.trust),
                mine.added_ms,
                mine.card or _card_of(r),
                mine.account_id,
            )
        else:
            contact = checks.contact(
                Contact(
                    r.node_id,
                    r.sign_public,
                    r.box_public,
                    r.name,
                    Trust(r.trust),
                    r.changed_ms,
                    _card_of(r),
                    r.account_id,
                )
            )
        self._put_contact(conn, contact)
        self._item(conn, r, None)
        applied.contacts.append(r.node_id)


def _contact_record(contact: Contact, changed_ms: int) -> ContactRecord:
    card = contact.card if len(contact.card.encode()) <= MAX_CARD_TEXT else ""
    return ContactRecord(
        contact.node_id,
        contact.sign_public,
        contact.box_public,
        contact.name,
        contact.trust.value,
        changed_ms,
        contact.account_id,
        card,
    )


def _card_of(r: ContactRecord) -> str:
    """The record's card if it is a valid signed card of the record's keys, else ''."""
    if not r.card:
        return ""
    try:
        card = ContactCard.from_text(r.card)
    except IdentityError:
        return ""
    keys = card.identity
    return r.card if (keys.sign_public, keys.box_public) == (r.sign_public, r.box_public) else ""
