"""The causal order of each conversation, in SQL: placing, holding, releasing, heads, deletion.

Theory of operation
-------------------
The rules are :mod:`meshchat.causal`'s; this module applies them inside the store's write
transactions. A message row carries, in clear, its place in the order (``order_ms``, NULL
while held; ``late``; ``held_ms``, when it started waiting; ``head``, 1 while no shown message
names it). Its parents' ids travel inside its sealed cell; what SQL needs of them is in
``links``, one row per (conversation, parent tag, child row), ``waiting`` = 1 while that
blocking parent is not shown. Every step is a handful of indexed lookups:

* **store** a message: look up each parent by tag in its conversation (shown: its order time;
  held or absent: wait for it; tombstoned or stored in another conversation: ignored). With
  nothing to wait for, the message is placed at once (``order_time`` then ``place`` against the
  newest shown order time, an index seek); otherwise it is held. Its links are written; if it
  is shown its parents stop being heads (a held message's parents stay heads until it is
  shown); it is a head unless a shown message already names it.
* **show** a message (placed at insert, or released): its waiting children stop waiting for it;
  each child left with nothing to wait for is placed in turn (a queue, never recursion, so a
  chain or a cycle of any length costs one step per message).
* **release** a held message (after :data:`~meshchat.causal.HOLD_MS`, or the oldest when more
  than :data:`~meshchat.causal.MAX_HELD` wait in one conversation): it is placed after the
  parents that are shown; its links to the others stay ``waiting``, which is its gap marker
  (``missing`` counts them) until they arrive.
* **delete** a message: its row goes (a trigger removes its own links), children waiting for it
  stop waiting (a tombstoned parent is ignored), parents it alone named become heads again, and
  a tombstone keeps its tag.

A message shown is never moved again. Sorting is by ``(order_ms, msg_id)``; the id is sealed,
so SQL sorts by ``order_ms`` and the few rows tied at the edge of a page are sorted after
opening them.
"""

from __future__ import annotations

import sqlite3
from collections import deque
from collections.abc import Iterable
from typing import Any

from meshchat.causal import MAX_HELD, MAX_PARENTS, order_time, place
from meshchat.store._rows import Rows
from meshchat.store.records import Message

__all__ = ["COLUMNS", "Dag", "order_key"]

# The columns :meth:`Rows.open_message` reads with ``dag=True``: the row, its place in the
# order, and how many blocking parents it still waits for.
COLUMNS = """m.row_id, m.conv_tag, m.msg_tag, m.sender_tag, m.outgoing, m.state,
    m.updated_ms, m.sealed, m.order_ms, m.late,
    (SELECT COUNT(*) FROM links l WHERE l.child_row = m.row_id AND l.waiting = 1)"""

INSERT = """
    INSERT INTO messages (conv_tag, msg_tag, sender_tag, outgoing, state, updated_ms, sealed,
                          order_ms, late, held_ms, head)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
INSERT_INCOMING = INSERT + " ON CONFLICT (sender_tag, msg_tag) DO NOTHING"
_IN_CONV = "SELECT row_id, order_ms, outgoing FROM messages WHERE msg_tag = ? AND conv_tag = ?"
_ELSEWHERE = "SELECT 1 FROM messages WHERE msg_tag = ? AND conv_tag != ? LIMIT 1"
TOMBSTONED = "SELECT conv_tag FROM tombstones WHERE msg_tag = ?"
_NEWEST_SHOWN = """
    SELECT order_ms FROM messages WHERE conv_tag = ? AND order_ms IS NOT NULL
    ORDER BY order_ms DESC LIMIT 1
"""
# Named by a shown message: a held message's parents stay heads until it is shown, so a
# sender whose newest messages are all named only by held ones still has heads to name.
_NAMED = """
    SELECT 1 FROM links l JOIN messages c ON c.row_id = l.child_row
    WHERE l.conv_tag = ? AND l.parent_tag = ? AND c.order_ms IS NOT NULL LIMIT 1
"""
_LINK = "INSERT OR IGNORE INTO links (conv_tag, parent_tag, child_row, waiting) VALUES (?, ?, ?, ?)"
_NOT_HEAD = "UPDATE messages SET head = 0 WHERE msg_tag = ? AND conv_tag = ? AND head = 1"
_HEAD_AGAIN = "UPDATE messages SET head = 1 WHERE msg_tag = ? AND conv_tag = ?"
_WAITING_CHILDREN = """
    SELECT child_row FROM links WHERE conv_tag = ? AND parent_tag = ? AND waiting = 1
"""
_STOP_WAITING = "UPDATE links SET waiting = 0 WHERE conv_tag = ? AND parent_tag = ? AND waiting = 1"
_STILL_WAITS = "SELECT 1 FROM links WHERE child_row = ? AND waiting = 1 LIMIT 1"
_HELD_ROW = """
    SELECT row_id, conv_tag, msg_tag, sender_tag, outgoing, state, updated_ms, sealed
    FROM messages WHERE row_id = ? AND order_ms IS NULL
"""
_PLACE = "UPDATE messages SET order_ms = ?, late = ? WHERE row_id = ?"
_HELD_COUNT = "SELECT COUNT(*) FROM messages WHERE conv_tag = ? AND order_ms IS NULL"
_HELD_OLDEST = """
    SELECT row_id FROM messages WHERE conv_tag = ? AND order_ms IS NULL
    ORDER BY held_ms, row_id LIMIT ?
"""
_HELD_DUE = """
    SELECT row_id, conv_tag FROM messages WHERE order_ms IS NULL AND held_ms <= ?
    ORDER BY held_ms, row_id
"""
_HEAD_CUTOFF = """
    SELECT order_ms FROM messages WHERE conv_tag = ? AND head = 1 AND order_ms IS NOT NULL
    ORDER BY order_ms DESC LIMIT 1 OFFSET ?
"""
_HEADS_FROM = """
    SELECT m.row_id, m.conv_tag, m.msg_tag, m.sender_tag, m.outgoing, m.state,
    m.updated_ms, m.sealed, m.order_ms, m.late,
    (SELECT COUNT(*) FROM links l WHERE l.child_row = m.row_id AND l.waiting = 1) FROM messages m
    WHERE m.conv_tag = ? AND m.head = 1 AND m.order_ms IS NOT NULL AND m.order_ms >= ?
    ORDER BY m.order_ms DESC LIMIT 64
"""
_SHOWN_CUTOFF = """
    SELECT order_ms FROM messages WHERE conv_tag = ? AND order_ms IS NOT NULL
    ORDER BY order_ms DESC LIMIT 1 OFFSET ?
"""
SHOWN_FROM = """
    SELECT m.row_id, m.conv_tag, m.msg_tag, m.sender_tag, m.outgoing, m.state,
    m.updated_ms, m.sealed, m.order_ms, m.late,
    (SELECT COUNT(*) FROM links l WHERE l.child_row = m.row_id AND l.waiting = 1) FROM messages m
    WHERE m.conv_tag = ? AND m.order_ms IS NOT NULL AND m.order_ms >= ?
"""
HELD = """
    SELECT m.row_id, m.conv_tag, m.msg_tag, m.sender_tag, m.outgoing, m.state,
    m.updated_ms, m.sealed, m.order_ms, m.late,
    (SELECT COUNT(*) FROM links l WHERE l.child_row = m.row_id AND l.waiting = 1)
    FROM messages m WHERE m.conv_tag = ? AND m.order_ms IS NULL
    ORDER BY m.held_ms, m.row_id
"""
GAPS_BASE = """
    SELECT row_id, conv_tag, msg_tag, sender_tag, outgoing, state, updated_ms, sealed
    FROM messages m WHERE conv_tag = ? AND order_ms IS NOT NULL AND held_ms >= ?
    AND EXISTS (SELECT 1 FROM links l WHERE l.child_row = m.row_id AND l.waiting = 1)
    ORDER BY held_ms, row_id
"""
_FIRST_SHOWN_CHILD = """
    SELECT MIN(c.order_ms) FROM links l JOIN messages c ON c.row_id = l.child_row
    WHERE l.conv_tag = ? AND l.parent_tag = ? AND c.order_ms IS NOT NULL
"""
HELD_BASE = """
    SELECT row_id, conv_tag, msg_tag, sender_tag, outgoing, state, updated_ms, sealed
    FROM messages WHERE conv_tag = ? AND order_ms IS NULL
    ORDER BY held_ms, row_id
"""
BY_ROW = """
    SELECT m.row_id, m.conv_tag, m.msg_tag, m.sender_tag, m.outgoing, m.state,
    m.updated_ms, m.sealed, m.order_ms, m.late,
    (SELECT COUNT(*) FROM links l WHERE l.child_row = m.row_id AND l.waiting = 1)
    FROM messages m WHERE m.row_id = ?
"""
#: The columns of a row that the store computes (all but the sealed cell): what a message
#: just written needs read back, its sealed fields being the ones it was written with.
STATE_BY_ROW = """
    SELECT m.state, m.updated_ms, m.order_ms, m.late,
    (SELECT COUNT(*) FROM links l WHERE l.child_row = m.row_id AND l.waiting = 1),
    m.conv_tag, m.msg_tag, m.sender_tag, m.outgoing, m.sealed
    FROM messages m WHERE m.row_id = ?
"""
OUTGOING_IN_CONV = """
    SELECT m.row_id, m.conv_tag, m.msg_tag, m.sender_tag, m.outgoing, m.state,
    m.updated_ms, m.sealed, m.order_ms, m.late,
    (SELECT COUNT(*) FROM links l WHERE l.child_row = m.row_id AND l.waiting = 1)
    FROM messages m WHERE m.msg_tag = ? AND m.conv_tag = ? AND m.outgoing = 1
"""
STORED_HERE = "SELECT 1 FROM messages WHERE msg_tag = ? AND conv_tag = ? LIMIT 1"
TOMBSTONED_HERE = "SELECT 1 FROM tombstones WHERE msg_tag = ? AND conv_tag = ?"
TOMBSTONE = "INSERT OR IGNORE INTO tombstones (msg_tag, conv_tag, deleted_ms) VALUES (?, ?, ?)"
_PARENTS_OF = "SELECT DISTINCT parent_tag FROM links WHERE child_row = ?"
_DELETE_ROW = "DELETE FROM messages WHERE row_id = ?"
_UNLINK_PARENT = "DELETE FROM links WHERE conv_tag = ? AND parent_tag = ?"
WAITS_FOR = (
    "SELECT 1 FROM links WHERE conv_tag = ? AND parent_tag = ? AND child_row = ? AND waiting = 1"
)
# A whole conversation.
CONV_OUTGOING_LIVE = """
    SELECT row_id, conv_tag, msg_tag, sender_tag, outgoing, state, updated_ms, sealed FROM messages
    WHERE conv_tag = ? AND outgoing = 1 AND state IN ('queued', 'sent')
"""
CONV_TOMBSTONES = """
    INSERT OR IGNORE INTO tombstones (msg_tag, conv_tag, deleted_ms)
    SELECT msg_tag, conv_tag, ? FROM messages WHERE conv_tag = ?
"""
CONV_UNLINK = "DELETE FROM links WHERE conv_tag = ?"
CONV_DELETE = "DELETE FROM messages WHERE conv_tag = ?"
CONV_READ_MARK_DELETE = "DELETE FROM read_marks WHERE conv_tag = ?"


def order_key(message: Message) -> tuple[int, bytes]:
    """The sort key of a shown message: its order time, then its id."""
    return (-1 if message.order_ms is None else message.order_ms), message.msg_id


class Dag:
    """The causal order's writes and page reads, on the caller's connection and transaction."""

    __slots__ = ("rows",)

    def __init__(self, rows: Rows) -> None:
        self.rows = rows

    # -- lookups ----------------------------------------------------------------------------

    def _parent(self, conn: sqlite3.Connection, conv_tag: bytes, tag: bytes) -> int | bool:
        """A parent's order time if it is shown here; True to wait for it; False to ignore it."""
        found = conn.execute(_IN_CONV, (tag, conv_tag)).fetchall()
        if found:
            times = [int(r[1]) for r in found if r[1] is not None]
            return max(times) if times else True
        if conn.execute(TOMBSTONED, (tag,)).fetchone() is not None:
            return False
        return conn.execute(_ELSEWHERE, (tag, conv_tag)).fetchone() is None

    def _shown_times(self, conn: sqlite3.Connection, conv_tag: bytes, m: Message) -> list[int]:
        times = []
        for parent in (*m.parents, *m.loose):
            state = self._parent(conn, conv_tag, self.rows.msg_tag(parent))
            if not isinstance(state, bool):
                times.append(state)
        return times

    @staticmethod
    def _before_children(conn: sqlite3.Connection, conv_tag: bytes, tag: bytes, order: int) -> int:
        """``order``, or just before the first shown message naming this one: a parent that
        comes after its child was shown with a gap still goes before it."""
        row = conn.execute(_FIRST_SHOWN_CHILD, (conv_tag, tag)).fetchone()
        if row is None or row[0] is None or order < int(row[0]):
            return order
        return _int64(int(row[0]) - 1)

    @staticmethod
    def newest_shown(conn: sqlite3.Connection, conv_tag: bytes) -> int | None:
        row = conn.execute(_NEWEST_SHOWN, (conv_tag,)).fetchone()
        return None if row is None else int(row[0])

    # -- writes -----------------------------------------------------------------------------

    def store(
        self, conn: sqlite3.Connection, m: Message, local_ms: int, *, received: bool
    ) -> int | None:
        """Insert ``m`` in its place (or held) and show what it releases; its row id.

        None if an incoming ``m`` duplicates a stored ``(sender, msg_id)``. An outgoing message
        is never held: a parent it names that is not shown here is ignored.
        """
        rows = self.rows
        conv_tag, msg_tag, sender_tag, sealed = rows.seal_message(m, local_ms)
        parent_tags = [rows.msg_tag(p) for p in m.parents]
        loose_tags = [rows.msg_tag(p) for p in m.loose]
        times: list[int] = []
        waits: set[bytes] = set()
        for tag in parent_tags:
            state = self._parent(conn, conv_tag, tag)
            if state is True:
                if received:
                    waits.add(tag)
            elif state is not False:
                times.append(state)
        for tag in loose_tags:
            state = self._parent(conn, conv_tag, tag)
            if not isinstance(state, bool):
                times.append(state)
        order: int | None = None
        late = False
        if not waits:
            order = _int64(order_time(m.created_ms, times, local_ms if received else None))
            if received:
                placed = place(order, self.newest_shown(conn, conv_tag))
                order, late = _int64(placed.order_ms), placed.late
                order = self._before_children(conn, conv_tag, msg_tag, order)
        head = conn.execute(_NAMED, (conv_tag, msg_tag)).fetchone() is None
        params = (
            conv_tag,
            msg_tag,
            sender_tag,
            int(m.outgoing),
            m.state.value,
            m.updated_ms,
            sealed,
            order,
            int(late),
            None if order is not None else local_ms,
            int(head),
        )
        cur = conn.execute(INSERT_INCOMING if received else INSERT, params)
        if cur.rowcount == 0 or cur.lastrowid is None:
            return None
        row_id = cur.lastrowid
        for tag in (*parent_tags, *loose_tags):
            conn.execute(_LINK, (conv_tag, tag, row_id, int(tag in waits)))
            if order is not None:
                conn.execute(_NOT_HEAD, (tag, conv_tag))
        if order is not None:
            self.cascade(conn, conv_tag, [msg_tag])
        else:
            self.bound_held(conn, conv_tag)
        return row_id

    def show(self, conn: sqlite3.Connection, row_id: int) -> bytes | None:
        """Place the held message in row ``row_id`` now; its tag, or None if it was not held.

        It goes after every parent of it that is shown; whatever else it waits for stays
        waiting (its gap).
        """
        row = conn.execute(_HELD_ROW, (row_id,)).fetchone()
        if row is None:
            return None
        conv_tag = bytes(row[1])
        message, local_ms = self.rows.open_message(row)
        times = self._shown_times(conn, conv_tag, message)
        order = order_time(message.created_ms, times, None if message.outgoing else local_ms)
        placed = place(_int64(order), self.newest_shown(conn, conv_tag))
        at = self._before_children(conn, conv_tag, bytes(row[2]), _int64(placed.order_ms))
        conn.execute(_PLACE, (at, int(placed.late), row_id))
        for (parent_tag,) in conn.execute(_PARENTS_OF, (row_id,)).fetchall():
            conn.execute(_NOT_HEAD, (bytes(parent_tag), conv_tag))
        return bytes(row[2])

    def cascade(
        self, conn: sqlite3.Connection, conv_tag: bytes, shown: Iterable[bytes]
    ) -> list[int]:
        """The messages with these tags were just shown: release what only waited for them.

        Returns the row ids shown on the way, in order.
        """
        queue = deque(shown)
        released: list[int] = []
        while queue:
            tag = queue.popleft()
            children = [int(r[0]) for r in conn.execute(_WAITING_CHILDREN, (conv_tag, tag))]
            if not children:
                continue
            conn.execute(_STOP_WAITING, (conv_tag, tag))
            for child in children:
                if conn.execute(_STILL_WAITS, (child,)).fetchone() is not None:
                    continue
                child_tag = self.show(conn, child)
                if child_tag is not None:
                    released.append(child)
                    queue.append(child_tag)
        return released

    def release(self, conn: sqlite3.Connection, row_id: int, conv_tag: bytes) -> list[int]:
        """Release one held message with a gap, and what that releases; the row ids shown."""
        tag = self.show(conn, row_id)
        if tag is None:
            return []
        return [row_id, *self.cascade(conn, conv_tag, [tag])]

    def bound_held(self, conn: sqlite3.Connection, conv_tag: bytes) -> list[int]:
        """Release the oldest held messages of a conversation beyond ``MAX_HELD``."""
        excess = int(conn.execute(_HELD_COUNT, (conv_tag,)).fetchone()[0]) - MAX_HELD
        released: list[int] = []
        if excess > 0:
            for (row_id,) in conn.execute(_HELD_OLDEST, (conv_tag, excess)).fetchall():
                released += self.release(conn, int(row_id), conv_tag)
        return released

    def release_due(self, conn: sqlite3.Connection, held_before: int) -> list[int]:
        """Release every message held since ``held_before`` or earlier; the row ids shown."""
        released: list[int] = []
        for row_id, conv_tag in conn.execute(_HELD_DUE, (held_before,)).fetchall():
            released += self.release(conn, int(row_id), bytes(conv_tag))
        return released

    def delete(
        self, conn: sqlite3.Connection, conv_tag: bytes, msg_tag: bytes, now_ms: int
    ) -> tuple[int, bool]:
        """Erase a message from a conversation and tombstone it; ``(rows erased, outgoing)``.

        An id stored only in another conversation is left alone (no tombstone either).
        """
        found = conn.execute(_IN_CONV, (msg_tag, conv_tag)).fetchall()
        if not found and conn.execute(_ELSEWHERE, (msg_tag, conv_tag)).fetchone() is not None:
            return 0, False
        parents: set[bytes] = set()
        for row_id, _, _ in found:
            parents.update(bytes(r[0]) for r in conn.execute(_PARENTS_OF, (row_id,)))
            conn.execute(_DELETE_ROW, (row_id,))
        conn.execute(TOMBSTONE, (msg_tag, conv_tag, now_ms))
        children = [int(r[0]) for r in conn.execute(_WAITING_CHILDREN, (conv_tag, msg_tag))]
        conn.execute(_UNLINK_PARENT, (conv_tag, msg_tag))
        for child in children:
            if conn.execute(_STILL_WAITS, (child,)).fetchone() is None:
                self.release(conn, child, conv_tag)
        for tag in parents:
            if conn.execute(_NAMED, (conv_tag, tag)).fetchone() is None:
                conn.execute(_HEAD_AGAIN, (tag, conv_tag))
        return len(found), any(bool(r[2]) for r in found)

    # -- reads ------------------------------------------------------------------------------

    def head_rows(self, conn: sqlite3.Connection, conv_tag: bytes) -> list[Any]:
        """The rows of the newest ``MAX_PARENTS`` heads, and some tied with the last of them.

        At most 64 rows, so heads that all claim the same time (a flood of messages naming
        nothing) cost a bounded number of rows opened; which of such tied heads are named
        then depends on the index, not the ids.
        """
        cut = conn.execute(_HEAD_CUTOFF, (conv_tag, MAX_PARENTS - 1)).fetchone()
        return conn.execute(_HEADS_FROM, (conv_tag, _MIN if cut is None else cut[0])).fetchall()

    def shown_rows(self, conn: sqlite3.Connection, conv_tag: bytes, limit: int) -> list[Any]:
        """The rows of the last ``limit`` shown messages, and any tied with the first of them."""
        if limit <= 0:
            return []
        cut = conn.execute(_SHOWN_CUTOFF, (conv_tag, limit - 1)).fetchone()
        return conn.execute(SHOWN_FROM, (conv_tag, _MIN if cut is None else cut[0])).fetchall()


_MIN = -(2**63)
_MAX = 2**63 - 1


def _int64(value: int) -> int:
    """An order time kept within SQLite's integers, whatever a clock claimed."""
    return max(_MIN, min(value, _MAX - 1))
