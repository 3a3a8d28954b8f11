"""Messages and each conversation's causal history: a part of :class:`Store`.

Kept apart from ``db.py`` as a mixin, like ``_state.py``: every method runs on the store's
connection through ``_reading`` / ``_writing`` and seals with its ``_rows``; the order itself
(placing, holding, releasing, deleting) is ``_dag.py``, the rules :mod:`meshchat.causal`.

Order shown: by ``(order_ms, msg_id)``; held messages (``order_ms`` None) come after, oldest
held first. Deletion erases rows (``secure_delete`` zeroes their pages) and leaves a tombstone
per message id, which this device never sends anywhere and which keeps the id from being stored
again (:meth:`MessageTables.add_incoming` returns None for it).
"""

from __future__ import annotations

import itertools
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import replace
from typing import Any

from meshchat.causal import HOLD_MS, MAX_PARENTS, MAX_WANTS
from meshchat.errors import StoreError, StoreReason
from meshchat.store import _checks as checks
from meshchat.store import _dag as d
from meshchat.store import _sql as q
from meshchat.store import _values as v
from meshchat.store._dag import Dag, order_key
from meshchat.store._rows import Rows
from meshchat.store.history import HistoryTrimmer
from meshchat.store.records import Message, MessageState

__all__ = ["MessageTables"]

BAD = StoreReason.BAD_VALUE
_QUERY_ROWS_MAX = 1_000_000
#: The most message ids one call to the id-list methods takes.
_IDS_MAX = 10_000


#: how many recent messages a store keeps opened for naming its heads (see _remember)
_HEADS_REMEMBERED = 64


def _now_ms() -> int:
    return int(time.time() * 1000)


def _ids(msg_ids: Iterable[bytes]) -> list[bytes]:
    if isinstance(msg_ids, (bytes, str)):
        raise StoreError("msg_ids must be a sequence of message ids", reason=BAD, field="msg_ids")
    out = [v.blob(i, "msg_id") for i in itertools.islice(msg_ids, _IDS_MAX + 1)]
    if len(out) > _IDS_MAX:
        raise StoreError(f"at most {_IDS_MAX} message ids at once", reason=BAD, field="msg_ids")
    return out


class MessageTables:
    """Messages, their order, and deletion (mixed into :class:`Store`)."""

    _rows: Rows
    _dag: Dag
    _history: HistoryTrimmer
    _reading: Callable[[], AbstractContextManager[sqlite3.Connection]]
    _writing: Callable[[], AbstractContextManager[sqlite3.Connection]]
    _sync_before_delete: Callable[[sqlite3.Connection, int], None]
    _reads_arrived: Callable[[sqlite3.Connection, bytes, bytes], bool]
    #: recent messages by their row's cells (see _remember)
    _opened_heads: dict[tuple[Any, ...], Message]

    def _open(self, rows: Iterable[Any]) -> list[Message]:
        return [self._rows.open_message(row, dag=True)[0] for row in rows]

    def _by_rows(self, conn: sqlite3.Connection, row_ids: Iterable[int]) -> list[Message]:
        found = (conn.execute(d.BY_ROW, (r,)).fetchone() for r in row_ids)
        return self._open(row for row in found if row is not None)

    def _written(self, conn: sqlite3.Connection, message: Message, row_id: int) -> Message:
        """``message`` as stored in row ``row_id`` just now: the columns the store computed
        (state, order, late, missing) read back; its sealed fields are the ones it was
        written with, so they are not opened again."""
        row = conn.execute(d.STATE_BY_ROW, (row_id,)).fetchone()
        if row is None:
            return replace(message, row_id=row_id)
        state, updated_ms, order_ms, late, missing = row[:5]
        self._remember(row[5:], message)
        return replace(
            message,
            row_id=row_id,
            state=v.cell_enum(MessageState, state),
            updated_ms=v.cell_int(updated_ms),
            order_ms=None if order_ms is None else v.cell_int(order_ms),
            late=bool(v.cell_int(late)),
            missing=v.cell_int(missing),
        )

    def _remember(self, cells: tuple[Any, ...], message: Message) -> None:
        """Keep ``message`` (what its sealed cell holds) under its row's cells ``(conv_tag,
        msg_tag, sender_tag, outgoing, sealed)``, for :meth:`head_messages`: the newest
        messages, asked before every message sent, are then not opened again. A row whose
        cells are these holds this message (the cell is bound to the first four and never
        rewritten). Bounded; the oldest go first; emptied when messages are erased."""
        known = self._opened_heads
        known[tuple(cells)] = message
        if len(known) > _HEADS_REMEMBERED:
            del known[next(iter(known))]

    def _open_head(self, row: tuple[Any, ...]) -> Message:
        """A head row as :meth:`_open` gives it, from :meth:`_remember` when it can."""
        known = self._opened_heads.get((row[1], row[2], row[3], row[4], row[7]))
        if known is None:
            message = self._rows.open_message(row, dag=True)[0]
            self._remember((row[1], row[2], row[3], row[4], row[7]), message)
            return message
        order_ms, late, missing = row[8], row[9], row[10]
        return replace(
            known,
            row_id=v.cell_int(row[0]),
            state=v.cell_enum(MessageState, row[5]),
            updated_ms=v.cell_int(row[6]),
            order_ms=None if order_ms is None else v.cell_int(order_ms),
            late=bool(v.cell_int(late)),
            missing=v.cell_int(missing),
        )

    # -- writing ----------------------------------------------------------------------------

    def add_outgoing(
        self,
        conversation: str,
        msg_id: bytes,
        destination: bytes,
        sender: bytes,
        sender_name: str,
        text: str,
        created_ms: int,
        expires_ms: int,
        *,
        parents: Sequence[bytes] = (),
        loose: Sequence[bytes] = (),
    ) -> Message:
        """Store a new outgoing message (``QUEUED``) and its outbox row, in one transaction.

        It names ``parents`` (normally :meth:`heads`) and ``loose`` parents; its order time is
        ``order_time(created_ms, their order times)`` and it is never held. The outbox row
        starts with no attempts, is due at ``created_ms`` and keeps the parents, so a retry
        sends the same body. Raises :class:`StoreError` if an outgoing message with this
        ``msg_id`` already exists, or the parents are malformed (see ``_checks.parents``).
        """
        msg_id = v.blob(msg_id, "msg_id")
        named = checks.parents(msg_id, parents, loose)
        message = checks.message(
            conversation,
            msg_id,
            sender,
            sender_name,
            text,
            created_ms,
            state=MessageState.QUEUED,
            updated_ms=created_ms,
            parents=named[0],
            loose=named[1],
        )
        destination = v.blob(destination, "destination")
        expires_ms = v.integer(expires_ms, "expires_ms")
        out_tag, out_sealed = self._rows.seal_outbox(
            msg_id, conversation, destination, text, created_ms, *named
        )
        with self._writing() as conn:
            row_id = self._dag.store(conn, message, created_ms, received=False)
            if row_id is None:
                raise StoreError("SQLite did not report the new message's row id")
            conn.execute(q.OUTBOX_INSERT, (out_tag, created_ms, expires_ms, out_sealed))
            return self._written(conn, message, row_id)

    def add_incoming(
        self,
        conversation: str,
        msg_id: bytes,
        sender: bytes,
        sender_name: str,
        text: str,
        created_ms: int,
        received_ms: int,
        *,
        parents: Sequence[bytes] = (),
        loose: Sequence[bytes] = (),
    ) -> Message | None:
        """Store a received message in its place in the order, or held; None if refused.

        ``created_ms`` is the sender's ``sent_ms``. Refused (None): this sender's ``msg_id``
        is already stored (a copy over a second path, or one's own channel message echoed
        back), the id is already used in this conversation by another sender, or it was
        deleted here (tombstoned). Storing it releases held messages that waited only for it.
        """
        msg_id = v.blob(msg_id, "msg_id")
        named = checks.parents(msg_id, parents, loose)
        message = checks.message(
            conversation,
            msg_id,
            sender,
            sender_name,
            text,
            created_ms,
            state=MessageState.RECEIVED,
            updated_ms=received_ms,
            parents=named[0],
            loose=named[1],
        )
        conv_tag, msg_tag = self._rows.conv_tag(conversation), self._rows.msg_tag(msg_id)
        with self._writing() as conn:
            if conn.execute(d.STORED_HERE, (msg_tag, conv_tag)).fetchone() is not None:
                return None
            if self.is_deleted_in(conn, msg_tag):
                return None
            row_id = self._dag.store(conn, message, received_ms, received=True)
            if row_id is None:
                return None
            if conversation.startswith("#"):
                sender_tag = self._rows.sender_tag(message.sender)
                self._history.after_insert(conn, conv_tag, sender_tag, row_id, received_ms)
            else:
                self._reads_arrived(conn, conv_tag, msg_tag)  # a mark from my device waited
            return self._written(conn, message, row_id)

    def add_own_copy(
        self,
        conversation: str,
        msg_id: bytes,
        sender: bytes,
        sender_name: str,
        text: str,
        created_ms: int,
        now_ms: int,
        *,
        parents: Sequence[bytes] = (),
        loose: Sequence[bytes] = (),
    ) -> Message | None:
        """Store a message another device of this person sent (a carbon): outgoing,
        ``SENT``, with no outbox row (its own device sends it). None if the id is already
        stored anywhere here (the carbon came twice, or sync brought it first) or was
        deleted here."""
        msg_id = v.blob(msg_id, "msg_id")
        named = checks.parents(msg_id, parents, loose)
        message = checks.message(
            conversation,
            msg_id,
            sender,
            sender_name,
            text,
            created_ms,
            state=MessageState.SENT,
            updated_ms=now_ms,
            parents=named[0],
            loose=named[1],
        )
        msg_tag = self._rows.msg_tag(msg_id)
        with self._writing() as conn:
            if conn.execute(q.MESSAGE_ANY_ROW, (msg_tag,)).fetchone() is not None:
                return None
            if self.is_deleted_in(conn, msg_tag):
                return None
            row_id = self._dag.store(conn, message, now_ms, received=False)
            if row_id is None:
                return None
            self._reads_arrived(conn, self._rows.conv_tag(conversation), msg_tag)
            return self._written(conn, message, row_id)

    def release_held(self, now_ms: int) -> list[Message]:
        """Show every message held for ``HOLD_MS`` or more at ``now_ms``, with its gap.

        Returns the messages shown, in the order they were released (those that waited only
        for a released one come right after it).
        """
        now_ms = v.integer(now_ms, "now_ms")
        with self._writing() as conn:
            released = self._dag.release_due(conn, now_ms - HOLD_MS)
            return self._by_rows(conn, released)

    # -- deleting ---------------------------------------------------------------------------

    def delete_messages(
        self, conversation: str, msg_ids: Iterable[bytes], *, now_ms: int | None = None
    ) -> int:
        """Erase these messages from ``conversation``; return how many rows were erased.

        Each id gets a tombstone (kept on this device only) so a retry, a relay or a group
        member offering it again is refused; an outgoing message's outbox row goes too. An id
        stored only in another conversation is left alone.
        """
        conv_tag = self._rows.conv_tag(v.text(conversation, "conversation"))
        ids = _ids(msg_ids)
        when = _now_ms() if now_ms is None else v.integer(now_ms, "now_ms")
        erased = 0
        self._opened_heads.clear()
        with self._writing() as conn:
            self._sync_before_delete(conn, when)
            for msg_id in ids:
                count, outgoing = self._dag.delete(conn, conv_tag, self._rows.msg_tag(msg_id), when)
                erased += count
                if outgoing:
                    conn.execute(q.OUTBOX_DELETE, (self._rows.outbox_tag(msg_id),))
            if erased:
                self._history.forget()
        return erased

    def delete_conversation(self, conversation: str, *, now_ms: int | None = None) -> int:
        """Erase every message of ``conversation`` (tombstoning each); return how many."""
        conv_tag = self._rows.conv_tag(v.text(conversation, "conversation"))
        when = _now_ms() if now_ms is None else v.integer(now_ms, "now_ms")
        self._opened_heads.clear()
        with self._writing() as conn:
            self._sync_before_delete(conn, when)
            for row in conn.execute(d.CONV_OUTGOING_LIVE, (conv_tag,)).fetchall():
                msg_id = self._rows.open_message(row)[0].msg_id
                conn.execute(q.OUTBOX_DELETE, (self._rows.outbox_tag(msg_id),))
            conn.execute(d.CONV_TOMBSTONES, (when, conv_tag))
            conn.execute(d.CONV_UNLINK, (conv_tag,))
            erased = conn.execute(d.CONV_DELETE, (conv_tag,)).rowcount
            conn.execute(d.CONV_READ_MARK_DELETE, (conv_tag,))
            self._history.forget()
        return int(erased)

    @staticmethod
    def is_deleted_in(conn: sqlite3.Connection, msg_tag: bytes) -> bool:
        return (
            conn.execute("SELECT 1 FROM tombstones WHERE msg_tag = ?", (msg_tag,)).fetchone()
            is not None
        )

    def is_deleted(self, msg_id: bytes) -> bool:
        """True if a message with this id was deleted on this device."""
        tag = self._rows.msg_tag(v.blob(msg_id, "msg_id"))
        with self._reading() as conn:
            return self.is_deleted_in(conn, tag)

    # -- reading ----------------------------------------------------------------------------

    def history(self, conversation: str, limit: int = 200) -> list[Message]:
        """The last ``limit`` shown messages of a conversation in order, then the held ones.

        Shown messages sort by ``(order_ms, msg_id)``; held ones follow, the oldest held first.
        """
        limit = max(0, min(v.integer(limit, "limit"), _QUERY_ROWS_MAX))
        conv_tag = self._rows.conv_tag(v.text(conversation, "conversation"))
        with self._reading() as conn:
            shown = self._open(self._dag.shown_rows(conn, conv_tag, limit))
            held = self._open(conn.execute(d.HELD, (conv_tag,)).fetchall())
        shown.sort(key=order_key)
        return [*shown[max(0, len(shown) - limit) :], *held] if limit else held

    def messages(self, conversation: str, limit: int = 200) -> list[Message]:
        """The same as :meth:`history` (the last ``limit`` shown, in order, then held)."""
        return self.history(conversation, limit)

    def heads(self, conversation: str) -> tuple[bytes, ...]:
        """The ids a new message in ``conversation`` names: the newest shown messages no
        stored message names yet, at most ``MAX_PARENTS``, newest first."""
        return tuple(m.msg_id for m in self.head_messages(conversation))

    def head_messages(self, conversation: str) -> list[Message]:
        """The messages :meth:`heads` names (to tell file announcements, named loose, apart:
        :func:`meshchat.causal.split_heads`)."""
        conv_tag = self._rows.conv_tag(v.text(conversation, "conversation"))
        with self._reading() as conn:
            found = [self._open_head(row) for row in self._dag.head_rows(conn, conv_tag)]
        found.sort(key=order_key, reverse=True)
        return found[:MAX_PARENTS]

    def missing_parents(
        self, conversation: str, gaps_since_ms: int | None = None
    ) -> tuple[bytes, ...]:
        """Ids that held messages of ``conversation`` wait for and that are not stored here,
        the oldest held message's first, at most ``MAX_WANTS``; with ``gaps_since_ms``, then
        the parents still missing of messages shown with a gap whose wait began since then."""
        conv_tag = self._rows.conv_tag(v.text(conversation, "conversation"))
        out: list[bytes] = []
        with self._reading() as conn:
            rows = conn.execute(d.HELD_BASE, (conv_tag,)).fetchall()
            if gaps_since_ms is not None:
                since = v.integer(gaps_since_ms, "gaps_since_ms")
                rows += conn.execute(d.GAPS_BASE, (conv_tag, since)).fetchall()
            for row in rows:
                message = self._rows.open_message(row)[0]
                for parent in message.parents:
                    tag = self._rows.msg_tag(parent)
                    if parent in out:
                        continue
                    if (
                        conn.execute(d.WAITS_FOR, (conv_tag, tag, message.row_id)).fetchone()
                        is None
                    ):
                        continue
                    if conn.execute(d.STORED_HERE, (tag, conv_tag)).fetchone() is not None:
                        continue
                    out.append(parent)
                    if len(out) >= MAX_WANTS:
                        return tuple(out)
        return tuple(out)

    def knows(self, conversation: str, msg_id: bytes) -> bool:
        """True if ``msg_id`` is stored in ``conversation``, or was deleted there."""
        conv_tag = self._rows.conv_tag(v.text(conversation, "conversation"))
        tag = self._rows.msg_tag(v.blob(msg_id, "msg_id"))
        with self._reading() as conn:
            return any(
                conn.execute(sql, (tag, conv_tag)).fetchone() is not None
                for sql in (d.STORED_HERE, d.TOMBSTONED_HERE)
            )

    def own_messages(self, conversation: str, msg_ids: Iterable[bytes]) -> list[Message]:
        """Our own outgoing messages of ``conversation`` with these ids, in order.

        Ids of other conversations, of other senders' messages, or unknown, give nothing.
        """
        conv_tag = self._rows.conv_tag(v.text(conversation, "conversation"))
        tags = {self._rows.msg_tag(i) for i in _ids(msg_ids)}
        with self._reading() as conn:
            rows = [
                row
                for tag in tags
                for row in conn.execute(d.OUTGOING_IN_CONV, (tag, conv_tag)).fetchall()
            ]
            found = self._open(rows)
        return sorted(found, key=order_key)

    def get_message(self, msg_id: bytes) -> Message | None:
        """The outgoing message with this ``msg_id``, if any."""
        params = (self._rows.msg_tag(v.blob(msg_id, "msg_id")),)
        with self._reading() as conn:
            row = conn.execute(q.MESSAGE_OUTGOING_BY_TAG, params).fetchone()
            if row is None:
                return None
            found = self._by_rows(conn, [int(row[0])])
        return found[0] if found else None
