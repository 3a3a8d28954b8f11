"""Per-device delivery of this device's direct messages: a part of :class:`Store`.

A direct message to a contact whose account has several devices is sent once per device (see
:mod:`meshchat.engine._fanout`). The message keeps one row in ``messages`` (one id, one state:
``DELIVERED`` once any device acked) and one outbox row (its body, so a restart sends the same
body); each device it is meant for has a row in ``deliveries`` with that copy's own state,
attempts and next try. A device without a row has not been tried yet: a restart sends it a
copy. An outbox row written by an older version has no delivery rows, so after an upgrade it
goes to every live device of the account, of which it knew one: the contact's only device.

The outbox row ends when the engine says the message's last copy ended (delivered or
expired), not when the first device acked, so the other devices keep being tried across
restarts. Deleting a message deletes its delivery rows.

In clear: the tags, ``state``, ``updated_ms``, ``attempts`` and ``next_try_ms`` (like the
outbox's counters); the message id and device id are sealed.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager

from meshchat.errors import StoreError, StoreReason
from meshchat.store import _values as v
from meshchat.store._rows import Rows
from meshchat.store.records import Delivery, MessageState
from meshchat.store.states import OUTBOX_ENDING, advance

__all__ = ["DeliveryTables"]


_UPSERT = """
    INSERT INTO deliveries
        (msg_tag, device_tag, state, updated_ms, attempts, next_try_ms, sealed)
    VALUES (?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (msg_tag, device_tag) DO UPDATE SET
        state = excluded.state, updated_ms = excluded.updated_ms,
        attempts = excluded.attempts, next_try_ms = excluded.next_try_ms
"""
_GET = """
    SELECT state, updated_ms, attempts, next_try_ms, sealed FROM deliveries
    WHERE msg_tag = ? AND device_tag = ?
"""
_OF_MESSAGE = """
    SELECT device_tag, state, updated_ms, attempts, next_try_ms, sealed FROM deliveries
    WHERE msg_tag = ?
"""
_DELETE_MESSAGE = "DELETE FROM deliveries WHERE msg_tag = ?"
_OUTBOX_DELETE = "DELETE FROM outbox WHERE msg_tag = ?"


class DeliveryTables:
    """Per-device delivery rows (mixed into :class:`Store`)."""

    _rows: Rows
    _reading: Callable[[], AbstractContextManager[sqlite3.Connection]]
    _writing: Callable[[], AbstractContextManager[sqlite3.Connection]]

    def _delivery_tags(self, msg_id: bytes, device: bytes) -> tuple[bytes, bytes]:
        return self._rows.msg_tag(msg_id), self._rows.cipher.tag("device", device)

    def _open_delivery(self, tags: tuple[bytes, bytes], row: tuple[object, ...]) -> Delivery:
        state, updated_ms, attempts, next_try_ms, sealed = row
        fields = self._rows.cipher.open("deliveries", tags, sealed)
        if len(fields) != 2:
            raise StoreError("a delivery row is damaged", reason=StoreReason.DAMAGED)
        return Delivery(
            msg_id=v.cell_bytes(fields[0]),
            device=v.cell_bytes(fields[1]),
            state=v.cell_enum(MessageState, state),
            updated_ms=v.cell_int(updated_ms),
            attempts=v.cell_int(attempts),
            next_try_ms=v.cell_int(next_try_ms),
        )

    def _put_delivery(
        self,
        conn: sqlite3.Connection,
        msg_id: bytes,
        device: bytes,
        state: MessageState | None,
        now_ms: int,
        attempt: tuple[int, int] | None = None,
    ) -> Delivery:
        """Write one device's row: ``state`` only moves forward (as a message's state does),
        ``attempt`` is (attempts, next_try_ms)."""
        tags = self._delivery_tags(msg_id, device)
        row = conn.execute(_GET, tags).fetchone()
        held = None if row is None else self._open_delivery(tags, row)
        current = held.state if held is not None else MessageState.QUEUED
        new = current
        if state is not None and state is not current:
            new = advance(current, state) or current
        attempts, next_try = (
            attempt
            if attempt is not None
            else ((held.attempts, held.next_try_ms) if held else (0, 0))
        )
        updated = now_ms if held is None or new is not current else held.updated_ms
        sealed = self._rows.cipher.seal("deliveries", tags, [msg_id, device])
        conn.execute(_UPSERT, (*tags, new.value, updated, attempts, next_try, sealed))
        return Delivery(msg_id, device, new, updated, attempts, next_try)

    def set_delivery(
        self,
        msg_id: bytes,
        device: bytes,
        state: MessageState,
        now_ms: int,
        *,
        last: bool = False,
    ) -> Delivery:
        """Report what happened to the copy of ``msg_id`` sent to ``device``. ``last``: it was
        the message's last copy in flight, so its outbox row ends (whatever the message's
        state: a copy expiring after another device acked ends it too)."""
        msg_id = v.blob(msg_id, "msg_id")
        device = v.blob(device, "device")
        state = v.member(MessageState, state, "state")
        if state is MessageState.RECEIVED:
            raise StoreError(
                "RECEIVED is not a delivery state", reason=StoreReason.BAD_VALUE, field="state"
            )
        now_ms = v.integer(now_ms, "now_ms")
        with self._writing() as conn:
            delivery = self._put_delivery(conn, msg_id, device, state, now_ms)
            if last and state in OUTBOX_ENDING:
                conn.execute(_OUTBOX_DELETE, (self._rows.outbox_tag(msg_id),))
            return delivery

    def record_copy_attempt(
        self, msg_id: bytes, device: bytes, attempts: int, next_try_ms: int, now_ms: int
    ) -> None:
        """A copy was tried: keep its attempts and next try (its row made if new)."""
        msg_id = v.blob(msg_id, "msg_id")
        device = v.blob(device, "device")
        attempt = (v.integer(attempts, "attempts"), v.integer(next_try_ms, "next_try_ms"))
        with self._writing() as conn:
            self._put_delivery(conn, msg_id, device, None, v.integer(now_ms, "now_ms"), attempt)

    def deliveries(self, msg_ids: Iterable[bytes]) -> dict[bytes, list[Delivery]]:
        """The delivery rows of each of ``msg_ids`` that has any, by device id."""
        out: dict[bytes, list[Delivery]] = {}
        with self._reading() as conn:
            for msg_id in msg_ids:
                msg_tag = self._rows.msg_tag(v.blob(msg_id, "msg_id"))
                rows = conn.execute(_OF_MESSAGE, (msg_tag,)).fetchall()
                found = [self._open_delivery((msg_tag, row[0]), row[1:]) for row in rows]
                if found:
                    out[msg_id] = sorted(found, key=lambda d: d.device)
        return out

    def _forget_deliveries(self, conn: sqlite3.Connection, msg_id: bytes) -> None:
        """Inside the caller's transaction: a deleted message's rows go with it."""
        conn.execute(_DELETE_MESSAGE, (self._rows.msg_tag(msg_id),))
