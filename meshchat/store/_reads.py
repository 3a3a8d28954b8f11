"""Read marks: this device's position in each conversation, and the Read records my devices sync.

A part of :class:`~meshchat.store.Store` (a mixin, like ``_sync.py``).

Theory of operation
-------------------
The unread count of a conversation is the number of incoming rows above its
``read_marks.last_read_row``: a position in this device's own row order, which differs on
every device (each stores messages in the order they reached it). What my devices tell each
other is therefore not a position but a :class:`~meshchat.sync.records.ReadRecord`: "read up
to these messages" (the newest message read and the newest causal heads, at most
:data:`~meshchat.sync.records.MAX_PARENTS` ids), one sync item per conversation.

* **Marking read here** (:meth:`ReadTables.mark_read` with a time) moves the mark to the newest
  row and, if it moved, replaces the conversation's Read item by a new record dated
  ``max(now, previous + 1)`` (so a device with a slower clock still replaces the newest item it
  holds, and both devices keep the same one).
* **A record from my device** (:meth:`ReadTables._apply_read`, inside ``apply_sync``'s
  transaction): every stored message of the conversation that it names, or that is an ancestor
  of one (the ``links`` of the causal order, at most :data:`MAX_WALK` rows visited), is read;
  the mark moves forward to the highest of their rows, never back. The item kept is the newest
  version (``read_ms``, then sync id); an older one still moves the mark forward, so what two
  devices read concurrently ends read on both.
* **Pending**: a named id not stored here (and not deleted here) leaves the item ``pending``;
  when a message it names is stored later (received, a carbon, or synced), the item applies
  again. Each message stored costs one indexed lookup for this (and opening the conversation's
  one pending item, if there is one); only a named message costs a walk.

Approximations: the position model, kept from before (a message this device stored at a
lower row than one read elsewhere counts as read here too, even if the other device had not
seen it); an ancestor of a named message that arrives here after the record is not read by it
(only the named messages are waited for); a pending version that loses to a newer one is
dropped.
"""

from __future__ import annotations

import sqlite3
from collections import deque
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from meshchat.errors import PacketError
from meshchat.store import _values as v
from meshchat.store._rows import Rows
from meshchat.sync.records import MAX_PARENTS, READ, ReadRecord

__all__ = ["MAX_WALK", "ReadTables", "synced_conversation"]

#: The most message rows one record's ancestor walk visits (a long history is cut there: its
#: newest rows are the ones that matter for a position).
MAX_WALK = 4_096
PENDING = "pending"

_MARK = "SELECT last_read_row FROM read_marks WHERE conv_tag = ?"
_NEWEST_ROW = "SELECT MAX(row_id) FROM messages WHERE conv_tag = ?"
_MARK_FORWARD = """
    INSERT INTO read_marks (conv_tag, last_read_row) VALUES (?, ?)
    ON CONFLICT (conv_tag) DO UPDATE SET last_read_row = excluded.last_read_row
    WHERE excluded.last_read_row > read_marks.last_read_row
"""
_MARK_SET = """
    INSERT INTO read_marks (conv_tag, last_read_row) VALUES (?, ?)
    ON CONFLICT (conv_tag) DO UPDATE SET last_read_row = excluded.last_read_row
"""
# The newest row and the newest heads, newest first: what a record names.
_NAMED_ROWS = """
    SELECT row_id, conv_tag, msg_tag, sender_tag, outgoing, state, updated_ms, sealed
    FROM messages WHERE conv_tag = ? AND (row_id = ? OR head = 1) AND row_id <= ?
    ORDER BY row_id DESC LIMIT ?
"""
_ROWS_OF = "SELECT row_id FROM messages WHERE msg_tag = ? AND conv_tag = ?"
_PARENTS_OF = "SELECT parent_tag FROM links WHERE child_row = ?"
_TOMBSTONED = "SELECT 1 FROM tombstones WHERE msg_tag = ? AND conv_tag = ?"
_READ_ITEM = "SELECT sid, state, sealed FROM sync_items WHERE kind = ? AND ref_tag = ?"
_READ_PENDING = """
    SELECT sid, sealed FROM sync_items WHERE kind = ? AND ref_tag = ? AND state = 'pending'
"""
_ITEM_INSERT = """
    INSERT OR REPLACE INTO sync_items (sid, ts, kind, ref_row, ref_tag, state, sealed)
    VALUES (?, ?, ?, NULL, ?, ?, ?)
"""
_ITEM_DELETE = "DELETE FROM sync_items WHERE sid = ?"
_ITEM_STATE = "UPDATE sync_items SET state = ? WHERE sid = ?"


def synced_conversation(conversation: str) -> bool:
    """Whether a conversation's messages are synced: direct and group ones are; channels
    (``#name``) are not: each device hears them itself, and their history is trimmed to a
    budget, which sync would undo over and over."""
    return not conversation.startswith("#")


class ReadTables:
    """Read marks and their Read records (mixed into :class:`Store`)."""

    _rows: Rows
    _writing: Callable[[], AbstractContextManager[sqlite3.Connection]]

    def mark_read(self, conversation: str, now_ms: int | None = None) -> bool:
        """Mark every message now in ``conversation`` as read; True if the mark moved.

        With ``now_ms`` (the user read it here), a mark that moved in a synced conversation
        also becomes the conversation's Read record, for my other devices.
        """
        conversation = v.text(conversation, "conversation")
        tag = self._rows.conv_tag(conversation)
        with self._writing() as conn:
            found = conn.execute(_MARK, (tag,)).fetchone()
            old = 0 if found is None else int(found[0])
            newest = int(conn.execute(_NEWEST_ROW, (tag,)).fetchone()[0] or 0)
            conn.execute(_MARK_SET, (tag, newest))
            if newest == old:
                return False
            if now_ms is not None and newest and synced_conversation(conversation):
                self._read_here(conn, conversation, tag, newest, v.integer(now_ms, "now_ms"))
            return True

    def _read_here(
        self, conn: sqlite3.Connection, conversation: str, tag: bytes, newest: int, now_ms: int
    ) -> None:
        rows = conn.execute(_NAMED_ROWS, (tag, newest, newest, MAX_PARENTS)).fetchall()
        msg_ids = tuple(self._rows.open_message(row)[0].msg_id for row in rows)
        current = self._read_item(conn, tag)
        read_ms = now_ms if current is None else max(now_ms, current[1].read_ms + 1)
        try:
            record = ReadRecord(conversation, msg_ids, read_ms)
        except PacketError:  # a conversation name longer than records carry: not synced
            return
        if current is not None:
            conn.execute(_ITEM_DELETE, (current[0],))
        self._put_read(conn, record, tag, pending=False)

    def _read_item(self, conn: sqlite3.Connection, tag: bytes) -> tuple[bytes, ReadRecord] | None:
        found = conn.execute(_READ_ITEM, (READ, tag)).fetchone()
        if found is None:
            return None
        return bytes(found[0]), self._open_read(found[0], found[2])

    def _open_read(self, sid: Any, sealed: Any) -> ReadRecord:
        cell = self._rows.cipher.open("sync_items", (bytes(sid),), sealed)
        ids = tuple(v.cell_bytes(i) for i in cell[1])
        return ReadRecord(v.cell_str(cell[0]), ids, v.cell_int(cell[2]))

    def _put_read(
        self, conn: sqlite3.Connection, r: ReadRecord, tag: bytes, *, pending: bool
    ) -> None:
        sid = r.sid
        cell = [r.conversation, list(r.msg_ids), r.read_ms]
        sealed = self._rows.cipher.seal("sync_items", (sid,), cell)
        state = PENDING if pending else ""
        conn.execute(_ITEM_INSERT, (sid, r.ts, READ, tag, state, sealed))

    def _read_position(
        self, conn: sqlite3.Connection, tag: bytes, msg_ids: tuple[bytes, ...]
    ) -> tuple[int, bool]:
        """The highest row among the named messages and their ancestors stored here (0: none),
        and whether a named one is neither stored nor deleted here (still to come)."""
        pending = False
        queue: deque[int] = deque()
        for msg_id in msg_ids:
            msg_tag = self._rows.msg_tag(msg_id)
            rows = [int(r[0]) for r in conn.execute(_ROWS_OF, (msg_tag, tag))]
            if not rows and conn.execute(_TOMBSTONED, (msg_tag, tag)).fetchone() is None:
                pending = True
            queue.extend(rows)
        seen: set[int] = set()
        while queue and len(seen) < MAX_WALK:
            row = queue.popleft()
            if row in seen:
                continue
            seen.add(row)
            for (parent_tag,) in conn.execute(_PARENTS_OF, (row,)).fetchall():
                queue.extend(int(r[0]) for r in conn.execute(_ROWS_OF, (parent_tag, tag)))
        return max(seen, default=0), pending

    def _move_mark(self, conn: sqlite3.Connection, tag: bytes, row: int) -> bool:
        """Move the conversation's mark forward to ``row``, never back; True if it moved."""
        if row <= 0:
            return False
        return conn.execute(_MARK_FORWARD, (tag, row)).rowcount > 0

    def _apply_read(self, conn: sqlite3.Connection, r: ReadRecord) -> bool | None:
        """A Read record from my device: moves the mark forward; keeps the newest version.
        None if refused (a channel's, which is never synced), else whether the mark moved."""
        if not synced_conversation(r.conversation):
            return None
        tag = self._rows.conv_tag(r.conversation)
        row, pending = self._read_position(conn, tag, r.msg_ids)
        moved = self._move_mark(conn, tag, row)
        current = self._read_item(conn, tag)
        if current is None or r.wins_over(current[1]):
            if current is not None:
                conn.execute(_ITEM_DELETE, (current[0],))
            self._put_read(conn, r, tag, pending=pending)
        return moved

    def _reads_arrived(self, conn: sqlite3.Connection, conv_tag: bytes, msg_tag: bytes) -> bool:
        """A message was stored in this conversation: apply the Read item that waited for it
        (if any: one indexed lookup when none waits; a walk only when the message is one the
        item names). True if the mark moved."""
        moved = False
        for sid, sealed in conn.execute(_READ_PENDING, (READ, conv_tag)).fetchall():
            r = self._open_read(sid, sealed)
            if msg_tag not in {self._rows.msg_tag(msg_id) for msg_id in r.msg_ids}:
                continue
            row, pending = self._read_position(conn, conv_tag, r.msg_ids)
            moved = self._move_mark(conn, conv_tag, row) or moved
            if not pending:
                conn.execute(_ITEM_STATE, ("", sid))
        return moved
