"""Accounts in the store: signed device lists, and contacts as devices of accounts.

A part of :class:`~meshchat.store.Store` (a mixin, like ``_state.py``). The store only stores:
which list may replace which is decided by :mod:`meshchat.account` before anything is written.
Trust is per account: :meth:`AccountTables.set_account_trust` sets it on every device row of
the account at once (devices the user's own account lists are ``OWN`` and stay so).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import replace

from meshchat.errors import UsageError
from meshchat.store import _checks as checks
from meshchat.store import _sql as q
from meshchat.store import _values as v
from meshchat.store._rows import Rows
from meshchat.store.records import Contact, Trust

__all__ = ["AccountTables"]


class AccountTables:
    """Device lists and account-wide contact changes (mixed into :class:`Store`)."""

    _rows: Rows
    _reading: Callable[[], AbstractContextManager[sqlite3.Connection]]
    _writing: Callable[[], AbstractContextManager[sqlite3.Connection]]
    _contacts: Callable[[sqlite3.Connection], list[Contact]]
    _put_contact: Callable[[sqlite3.Connection, Contact], None]

    # -- device lists -----------------------------------------------------------------------

    def put_device_list(self, account_id: bytes, blob: bytes) -> None:
        """Keep an account's encoded device list (sealed), replacing the one before it."""
        tag, sealed = self._rows.seal_device_list(
            v.blob(account_id, "account_id"), v.blob(blob, "device list")
        )
        with self._writing() as conn:
            conn.execute(q.DEVICE_LIST_PUT, (tag, sealed))

    def delete_device_list(self, account_id: bytes) -> bool:
        tag = self._rows.device_list_tag(v.blob(account_id, "account_id"))
        with self._writing() as conn:
            return conn.execute(q.DEVICE_LIST_DELETE, (tag,)).rowcount > 0

    def device_lists(self) -> dict[bytes, bytes]:
        """Every stored device list: account id -> encoded list."""
        with self._reading() as conn:
            rows = conn.execute(q.DEVICE_LISTS_ALL).fetchall()
            return dict(self._rows.open_device_list(row) for row in rows)

    # -- contacts by account ----------------------------------------------------------------

    def contacts_of_account(self, account_id: bytes) -> list[Contact]:
        """The device rows of one account (the rows stored before accounts are accounts of
        their own node id)."""
        account_id = v.blob(account_id, "account_id")
        with self._reading() as conn:
            return [c for c in self._contacts(conn) if c.account_id == account_id]

    def put_device_contact(self, contact: Contact) -> Contact:
        """Store a device of an account as a contact row (added because a held device list
        names it): no key-change rule applies (its name is the account's); an existing row
        keeps its name, card and the time it was added, and takes the account and trust."""
        contact = checks.contact(contact)
        with self._writing() as conn:
            existing = conn.execute(q.CONTACT_BY_TAG, (self._rows.contact_tag(contact.node_id),))
            row = existing.fetchone()
            if row is not None:
                old = self._rows.open_contact(row)
                contact = replace(old, account_id=contact.account_id, trust=contact.trust)
            self._put_contact(conn, contact)
        return contact

    def remove_contact(self, node_id: bytes) -> bool:
        """Delete a contact row (a revoked device); False if there was none."""
        tag = self._rows.contact_tag(v.blob(node_id, "node_id"))
        with self._writing() as conn:
            return conn.execute(q.CONTACT_DELETE, (tag,)).rowcount > 0

    def set_account_trust(self, account_id: bytes, trust: Trust) -> list[Contact]:
        """Set the trust of every device row of an account (``OWN`` rows stay ``OWN``);
        raises :class:`UsageError` when no contact belongs to it."""
        trust = v.member(Trust, trust, "trust")
        account_id = v.blob(account_id, "account_id")
        with self._writing() as conn:
            rows = [c for c in self._contacts(conn) if c.account_id == account_id]
            if not rows:
                raise UsageError(f"no contact belongs to account {account_id.hex()}")
            changed = []
            for contact in rows:
                if contact.trust is Trust.OWN or contact.trust is trust:
                    changed.append(contact)
                    continue
                updated = replace(contact, trust=trust)
                self._put_contact(conn, updated)
                changed.append(updated)
        return changed
