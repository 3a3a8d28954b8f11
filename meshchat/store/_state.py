"""Settings, the crypto layer's sealed state, and state set aside: a part of :class:`Store`.

Kept apart from ``db.py`` as a mixin: every method runs on the store's connection through the
``_reading`` / ``_writing`` context managers and seals with its ``_rows``, like the rest.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from contextlib import AbstractContextManager

from meshchat.errors import StoreError
from meshchat.store import _sql as q
from meshchat.store import _values as v
from meshchat.store._rows import Rows
from meshchat.store.records import SetAside

__all__ = ["StateTables"]


class StateTables:
    """Settings, crypto state and what was set aside (mixed into :class:`Store`)."""

    _rows: Rows
    _reading: Callable[[], AbstractContextManager[sqlite3.Connection]]
    _writing: Callable[[], AbstractContextManager[sqlite3.Connection]]

    # -- settings ---------------------------------------------------------------------------

    def get_setting(self, key: str) -> str | None:
        tag = self._rows.setting_tag(v.text(key, "setting key"))
        with self._reading() as conn:
            row = conn.execute(q.SETTING_GET, (tag,)).fetchone()
            return None if row is None else self._rows.open_setting(tag, row[0])

    def set_setting(self, key: str, value: str) -> None:
        params = self._rows.seal_setting(v.text(key, "setting key"), v.text(value, "setting value"))
        with self._writing() as conn:
            conn.execute(q.SETTING_SET, params)

    # -- crypto state -----------------------------------------------------------------------

    def put_state(self, kind: str, key: bytes, blob: bytes) -> None:
        """Keep ``blob`` (sealed) as the state ``key`` of ``kind``, replacing any before it.

        For the crypto layer's serialised state: ratchet sessions per peer, signed prekeys.
        ``kind`` names the sort of state (``"session"``, ``"prekeys"``); ``key`` tells the
        states of one kind apart (a peer's node id; ``b""`` for a single one).
        """
        tag, kind_tag, sealed = self._rows.seal_state(
            v.text(kind, "state kind"), v.blob(key, "state key"), v.blob(blob, "state")
        )
        with self._writing() as conn:
            conn.execute(q.STATE_PUT, (tag, kind_tag, sealed))

    def get_state(self, kind: str, key: bytes) -> bytes | None:
        """The state ``key`` of ``kind``, or None."""
        tag, _ = self._rows.state_tags(v.text(kind, "state kind"), v.blob(key, "state key"))
        with self._reading() as conn:
            row = conn.execute(q.STATE_GET, (tag,)).fetchone()
            return None if row is None else self._rows.open_state(row)[2]

    def delete_state(self, kind: str, key: bytes) -> bool:
        """Forget the state ``key`` of ``kind``; False if there was none."""
        tag, _ = self._rows.state_tags(v.text(kind, "state kind"), v.blob(key, "state key"))
        with self._writing() as conn:
            return conn.execute(q.STATE_DELETE, (tag,)).rowcount > 0

    def states(self, kind: str) -> dict[bytes, bytes]:
        """Every state of ``kind``: key -> blob."""
        _, kind_tag = self._rows.state_tags(v.text(kind, "state kind"), b"")
        with self._reading() as conn:
            rows = conn.execute(q.STATES_OF_KIND, (kind_tag,)).fetchall()
            opened = [self._rows.open_state(row) for row in rows]
        return {key: blob for _, key, blob in opened}

    def set_aside_state(self, kind: str, key: bytes, reason: str, now_ms: int) -> bool:
        """Move the state ``key`` of ``kind`` aside, with ``reason`` (it could not be decoded).

        It is never overwritten: each one set aside is a new row (:meth:`set_aside`). False if
        there was no such state.
        """
        tag, _ = self._rows.state_tags(v.text(kind, "state kind"), v.blob(key, "state key"))
        reason, now_ms = v.text(reason, "reason"), v.integer(now_ms, "now_ms")
        with self._writing() as conn:
            row = conn.execute(q.STATE_GET, (tag,)).fetchone()
            if row is None:
                return False
            aside_tag = os.urandom(16)
            try:
                blob = self._rows.open_state(row)[2]
            except StoreError:  # the seal itself is damaged: keep the sealed cell as it is
                blob, reason = v.cell_bytes(row[2]), f"{reason} (sealed cell did not open)"
            sealed = self._rows.seal_set_aside(aside_tag, kind, key, blob, reason)
            conn.execute(q.SET_ASIDE_INSERT, (aside_tag, now_ms, sealed))
            conn.execute(q.STATE_DELETE, (tag,))
        return True

    def set_aside(self) -> list[SetAside]:
        """Every state set aside, the oldest first."""
        with self._reading() as conn:
            return [self._rows.open_set_aside(r) for r in conn.execute(q.SET_ASIDE_ALL)]
