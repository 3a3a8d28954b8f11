"""The message store: contacts, channels, messages, the outbox and carried packets, in SQLite.

Theory of operation
-------------------
One :class:`Store` owns one SQLite connection to one file, opened with the 32-byte store key
from the keystore. Every private value (texts, names, keys, card, carried frames) is sealed
per row under that key and rows are found by keyed tags (``_crypt.py``, ``_rows.py``); SQLite
only ever sees ciphertext, tags, counters, states and times. A key check in the ``meta`` table
makes a wrong key a :class:`StoreError` at open. Lookups by name (:meth:`Store.find_contact`)
decrypt the few contacts and match in memory. A version 1 (plaintext) file is sealed on its
first open with a key (``_legacy.py``). Messages, their causal order and deletion are the
mixin in ``_messages.py`` (the ordering SQL in ``_dag.py``); settings and crypto state the one
in ``_state.py``. Every method is synchronous and
blocking; the node calls them from one dedicated worker thread so the event loop never waits on
the disk. A ``threading.Lock`` serialises calls, so a second thread (a face reading the history)
is safe too.

Durability: the database runs in WAL mode with ``synchronous=FULL``, and the connection is in
autocommit mode. Every write method runs in its own ``BEGIN IMMEDIATE`` ... ``COMMIT`` and
returns only after the commit, which in that mode has reached the disk. So whatever a method
returned from survives a crash, a ``kill -9`` or a power cut, and what a method did not finish is
rolled back whole: a message and its outbox row are written together or not at all.

Bounds: text is at most :data:`MAX_TEXT_BYTES` bytes, binary values at most
:data:`MAX_BLOB_BYTES`; the peers table keeps at most ``max_peers`` rows (the longest unseen
go first) and the carried-packets table at most ``max_carried`` (the soonest to expire go
first). A channel's incoming history keeps to a :class:`~meshchat.store.history.HistoryBudget`
(per channel, per sender, by age); other messages and the outbox are bounded by the node's
policy, not here. ``secure_delete``
is on, so deleted rows' pages are zeroed rather than left in the file.

Errors: every ``sqlite3`` error becomes :class:`StoreError`; a bad argument is a
:class:`StoreError` raised before anything is written. :meth:`Store.find_contact`,
:meth:`Store.set_trust` and :meth:`Store.join_channel` raise :class:`UsageError` for requests
the user can correct. The file is created with mode 0600 (SQLite gives its ``-wal`` and ``-shm``
files the same mode) in a directory created with mode 0700.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from meshchat.errors import StoreError, StoreReason, UsageError
from meshchat.identity import ContactCard
from meshchat.store import _checks as checks
from meshchat.store import _sql as q
from meshchat.store import _values as v
from meshchat.store._accounts import AccountTables
from meshchat.store._conn import Database
from meshchat.store._crypt import StoreCipher
from meshchat.store._dag import Dag
from meshchat.store._deliveries import DeliveryTables
from meshchat.store._find import MIN_ID_PREFIX, contact_order, find_contact
from meshchat.store._messages import MessageTables
from meshchat.store._rows import Rows
from meshchat.store._state import StateTables
from meshchat.store._sync import SyncTables
from meshchat.store.history import DEFAULT_HISTORY, HistoryBudget, HistoryTrimmer
from meshchat.store.records import (
    CarriedPacket,
    Channel,
    Contact,
    Conversation,
    Message,
    MessageState,
    OutboxEntry,
    Trust,
)
from meshchat.store.states import OUTBOX_ENDING, advance
from meshchat.store.trust import CardResult, plan_card

__all__ = [
    "DEFAULT_MAX_CARRIED",
    "DEFAULT_MAX_PEERS",
    "MIN_ID_PREFIX",
    "Store",
]

DEFAULT_MAX_CARRIED = 5000
DEFAULT_MAX_PEERS = 10_000
_QUERY_ROWS_MAX = 1_000_000


class Store(MessageTables, StateTables, AccountTables, SyncTables, DeliveryTables):
    """A meshchat message store in one SQLite file. See the module docstring."""

    def __init__(
        self,
        path: Path,
        *,
        key: bytes,
        max_carried: int = DEFAULT_MAX_CARRIED,
        max_peers: int = DEFAULT_MAX_PEERS,
        history: HistoryBudget = DEFAULT_HISTORY,
    ) -> None:
        """Open (creating and migrating as needed) the store at ``path`` with its store key."""
        if max_carried < 1 or max_peers < 1:
            raise StoreError(
                "max_carried and max_peers must be at least 1", reason=StoreReason.BAD_VALUE
            )
        self._rows = Rows(StoreCipher(key))
        self._dag = Dag(self._rows)
        self._path = Path(path)
        self._max_carried = max_carried
        self._max_peers = max_peers
        self._history: HistoryTrimmer = HistoryTrimmer(history)
        self._db = Database(self._path, self._rows, self._history.forget)
        self._reading = self._db.reading
        self._writing = self._db.writing
        self._opened_heads: dict[tuple[Any, ...], Message] = {}
        #: contacts opened by the latest read of them all, by their row's cells
        self._opened_contacts: dict[tuple[bytes, ...], Contact] = {}

    @classmethod
    def open(
        cls,
        path: Path,
        *,
        key: bytes,
        max_carried: int = DEFAULT_MAX_CARRIED,
        max_peers: int = DEFAULT_MAX_PEERS,
    ) -> Store:
        """Open the store at ``path`` with its 32-byte store key.

        Raises :class:`StoreError` if the file cannot be opened or the key is not this file's.
        """
        return cls(path, key=key, max_carried=max_carried, max_peers=max_peers)

    @property
    def path(self) -> Path:
        return self._path

    @property
    def history_budget(self) -> HistoryBudget:
        return self._history.budget

    def set_history_budget(self, budget: HistoryBudget) -> None:
        """Bound each channel's incoming history from the next write on (see history.py)."""
        with self._db.lock:
            self._history.budget = budget

    def recent_commits_ns(self) -> tuple[int, ...]:
        """How long each of the latest commits took, in nanoseconds (oldest first; at most
        :data:`~meshchat.store._conn.COMMITS_KEPT`): what a durable write costs here."""
        with self._db.lock:
            return tuple(self._db.commit_ns)

    def held_if_free(self) -> contextlib.AbstractContextManager[bool]:
        """Hold the store for the calling thread if no other thread is using it now (True),
        else at once False: a caller that must not wait for another call can go elsewhere."""
        return self._db.held_if_free()

    def close(self) -> None:
        """Close the connection. Idempotent; any later call raises :class:`StoreError`."""
        self._opened_heads.clear()
        self._opened_contacts = {}
        self._db.close()

    @property
    def _conn(self) -> sqlite3.Connection | None:
        return self._db.conn

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._conn is None else "open"
        return f"<Store {str(self._path)!r} {state}>"

    # -- transactions -----------------------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Group the writes made inside into one durable commit (one disk sync).

        Each write method called inside still succeeds or fails on its own (it runs in a
        savepoint), and nothing of the group is on disk until the group commits, so a caller
        must not act on the writes (acknowledge, relay, report sent) before this returns.
        Calls from other threads wait until the group is done.
        """
        with self._db.transaction():
            yield

    # -- contacts ---------------------------------------------------------------------------

    def _contacts(self, conn: sqlite3.Connection) -> list[Contact]:
        # Every message sent to a contact looks it up among all of them (names are sealed),
        # so each row is opened once: a row whose cells are those of a row opened before gives
        # the same contact (a changed contact is sealed again under a new random nonce, here or
        # by another connection). Only the rows of the latest read are kept.
        known = self._opened_contacts
        opened: dict[tuple[bytes, ...], Contact] = {}
        for row in conn.execute(q.CONTACTS_ALL).fetchall():
            key = tuple(row)
            contact = known.get(key)
            opened[key] = self._rows.open_contact(row) if contact is None else contact
        self._opened_contacts = opened
        return sorted(opened.values(), key=contact_order)

    def _put_contact(self, conn: sqlite3.Connection, contact: Contact) -> None:
        tag, sign_tag, sealed = self._rows.seal_contact(contact)
        if conn.execute(q.CONTACT_UPDATE, (sealed, tag)).rowcount == 0:
            conn.execute(q.CONTACT_INSERT, (tag, sign_tag, sealed))

    def add_contact(self, contact: Contact) -> None:
        """Add a contact; if its node id is already a contact, only its name (and card) change.

        A node id is a hash of the two public keys, so the same node id means the same keys.
        This takes bare keys and applies no key-change rule: faces add what people type or scan
        with :meth:`add_card`.
        """
        contact = checks.contact(contact)
        with self._writing() as conn:
            row = conn.execute(q.CONTACT_BY_TAG, (self._rows.contact_tag(contact.node_id),))
            existing = row.fetchone()
            if existing is not None:
                old = self._rows.open_contact(existing)
                contact = replace(old, name=contact.name, card=contact.card or old.card)
            self._put_contact(conn, contact)

    def add_card(
        self,
        card: ContactCard,
        *,
        name: str | None = None,
        now_ms: int,
        replace_keys: bool = False,
    ) -> CardResult:
        """Add the contact a signed card describes, under ``name`` (default: the card's).

        Applies the key-change rules of :mod:`meshchat.store.trust` in one transaction:
        raises :class:`~meshchat.store.trust.KeyChangeError` when the card clashes with a
        known contact and ``replace_keys`` is False, and :class:`IdentityError` when the card's
        signature does not verify (so a forged card never replaces a key).
        """
        text = ContactCard.from_text(card.to_text()).to_text()  # verifies the signature
        label = card.name if name is None else name
        if not label.strip():
            raise UsageError("the card has no name: give one")
        public = card.identity
        new = checks.contact(
            Contact(
                public.node_id,
                public.sign_public,
                public.box_public,
                label,
                Trust.UNVERIFIED,
                now_ms,
                text,
            )
        )
        with self._writing() as conn:
            result, writes = plan_card(self._contacts(conn), new, replace_keys=replace_keys)
            for contact in writes:
                self._put_contact(conn, contact)
        return result

    def add_announced(self, contact: Contact, *, replace_keys: bool = False) -> CardResult:
        """Add a contact from the keys a peer announced (signed by it; no card to keep),
        under the same key-change rules as :meth:`add_card`."""
        new = checks.contact(contact)
        with self._writing() as conn:
            result, writes = plan_card(self._contacts(conn), new, replace_keys=replace_keys)
            for row in writes:
                self._put_contact(conn, row)
        return result

    def get_contact(self, node_id: bytes) -> Contact | None:
        params = (self._rows.contact_tag(v.blob(node_id, "node_id")),)
        with self._reading() as conn:
            row = conn.execute(q.CONTACT_BY_TAG, params).fetchone()
            return None if row is None else self._rows.open_contact(row)

    def contact_by_sign_key(self, sign_public: bytes) -> Contact | None:
        """The contact with this signing key; an active one before a compromised one."""
        params = (self._rows.contact_sign_tag(v.blob(sign_public, "sign_public")),)
        with self._reading() as conn:
            rows = conn.execute(q.CONTACTS_BY_SIGN_TAG, params).fetchall()
            found = sorted(
                (self._rows.open_contact(row) for row in rows),
                key=lambda c: (c.trust is Trust.COMPROMISED, -c.added_ms),
            )
        return found[0] if found else None

    def list_contacts(self) -> list[Contact]:
        """Every contact, by name (ignoring ASCII case), then node id."""
        with self._reading() as conn:
            return self._contacts(conn)

    def find_contact(self, query: str) -> Contact:
        """The one contact a user means by ``query``.

        ``query`` is a contact's name (case-insensitive, exact) or, failing that, a prefix of
        at least :data:`MIN_ID_PREFIX` hex digits of a node id. A name match wins over an id
        match, and an active contact's name over a compromised one's (after a key change both
        keep the name). Raises :class:`UsageError` when nothing or more than one contact
        matches.
        """
        return find_contact(self.list_contacts(), query)

    def set_trust(self, node_id: bytes, trust: Trust) -> Contact:
        """Set a contact's trust, on every device of its account (trust is per account);
        raises :class:`UsageError` if it is not a contact, or is one of the user's own
        devices (those are trusted by the own device list: revoke one instead)."""
        trust = v.member(Trust, trust, "trust")
        tag = self._rows.contact_tag(v.blob(node_id, "node_id"))
        with self._writing() as conn:
            row = conn.execute(q.CONTACT_BY_TAG, (tag,)).fetchone()
            if row is None:
                raise UsageError(f"no contact has node id {node_id.hex()}")
            contact = replace(self._rows.open_contact(row), trust=trust)
            if Trust.OWN in (trust, self._rows.open_contact(row).trust):
                raise UsageError("own devices are trusted by the device list: revoke instead")
            self._put_contact(conn, contact)
            for other in self._contacts(conn):
                if (
                    other.account_id == contact.account_id
                    and other.node_id != node_id
                    and other.trust not in (Trust.OWN, trust)
                ):
                    self._put_contact(conn, replace(other, trust=trust))
        return contact

    # -- peers seen -------------------------------------------------------------------------

    def remember_peer(
        self, node_id: bytes, sign_public: bytes, box_public: bytes, name: str, seen_ms: int
    ) -> None:
        """Record the name and keys a node announced, keeping the table within ``max_peers``.

        A signing key announced under a new node id replaces its old row; beyond
        ``max_peers`` rows, the peers seen longest ago are forgotten.
        """
        tag, sign_tag, sealed = self._rows.seal_peer(
            v.blob(node_id, "node_id"),
            v.blob(sign_public, "sign_public"),
            v.blob(box_public, "box_public"),
            v.text(name, "name"),
        )
        seen_ms = v.integer(seen_ms, "seen_ms")
        with self._writing() as conn:
            conn.execute(q.PEER_DELETE_OLD_ID, (sign_tag, tag))
            conn.execute(q.PEER_UPSERT, (tag, sign_tag, seen_ms, sealed))
            excess = int(conn.execute(q.PEER_COUNT).fetchone()[0]) - self._max_peers
            if excess > 0:
                conn.execute(q.PEER_EVICT_OLDEST, (excess,))

    def peer_by_sign_key(self, sign_public: bytes) -> tuple[bytes, str] | None:
        """``(node_id, name)`` of the peer that announced this signing key, if remembered."""
        params = (self._rows.peer_sign_tag(v.blob(sign_public, "sign_public")),)
        with self._reading() as conn:
            row = conn.execute(q.PEER_BY_SIGN_TAG, params).fetchone()
            if row is None:
                return None
            node_id, _, _, name = self._rows.open_peer(row)
        return node_id, name

    # -- channels ---------------------------------------------------------------------------

    def join_channel(self, channel: Channel) -> None:
        """Join ``channel``, replacing any channel of the same name.

        Raises :class:`UsageError` if the same channel id is already joined under another name.
        """
        channel = checks.channel(channel)
        name_tag, id_tag, sealed = self._rows.seal_channel(channel)
        with self._writing() as conn:
            other = conn.execute(q.CHANNEL_OTHER_NAME, (id_tag, name_tag)).fetchone()
            if other is not None:
                other_name = self._rows.open_channel(other).name
                raise UsageError(f"this channel is already joined as {other_name!r}")
            conn.execute(q.CHANNEL_UPSERT, (name_tag, id_tag, sealed))

    def leave_channel(self, name: str) -> bool:
        """Leave the channel called ``name``; False if no such channel was joined."""
        params = (self._rows.channel_name_tag(v.text(name, "channel name")),)
        with self._writing() as conn:
            return conn.execute(q.CHANNEL_DELETE, params).rowcount > 0

    def get_channel(self, name: str) -> Channel | None:
        params = (self._rows.channel_name_tag(v.text(name, "channel name")),)
        with self._reading() as conn:
            row = conn.execute(q.CHANNEL_BY_NAME_TAG, params).fetchone()
            return None if row is None else self._rows.open_channel(row)

    def channel_by_id(self, channel_id: bytes) -> Channel | None:
        params = (self._rows.channel_id_tag(v.blob(channel_id, "channel_id")),)
        with self._reading() as conn:
            row = conn.execute(q.CHANNEL_BY_ID_TAG, params).fetchone()
            return None if row is None else self._rows.open_channel(row)

    def list_channels(self) -> list[Channel]:
        """Every joined channel, by name."""
        with self._reading() as conn:
            rows = conn.execute(q.CHANNELS_ALL).fetchall()
            return sorted((self._rows.open_channel(row) for row in rows), key=lambda c: c.name)

    # -- messages ---------------------------------------------------------------------------

    def set_state(
        self, msg_id: bytes, state: MessageState, now_ms: int, *, keep_outbox: bool = False
    ) -> bool:
        """Report what happened to an outgoing message; True if its state changed.

        Reports that would move the state backwards are ignored (see ``states.py``). Entering
        ``DELIVERED`` or ``FAILED`` deletes the outbox row in the same transaction, unless
        ``keep_outbox`` (one device of several acked: the others are still tried). An unknown
        ``msg_id`` is ignored (the message may be gone). ``RECEIVED`` is refused.
        """
        state = v.member(MessageState, state, "state")
        if state is MessageState.RECEIVED:
            raise StoreError(
                "RECEIVED is not a state of an outgoing message",
                reason=StoreReason.BAD_VALUE,
                field="state",
            )
        msg_id = v.blob(msg_id, "msg_id")
        now_ms = v.integer(now_ms, "now_ms")
        with self._writing() as conn:
            return self._advance(conn, msg_id, state, now_ms, keep_outbox=keep_outbox)

    def conversations(self) -> list[Conversation]:
        """One summary per conversation, the one with the latest stored message first.

        ``last_ms`` is when this device stored that message (sent or received), so other
        nodes' clocks cannot reorder the list; ``unread`` counts incoming messages stored
        after the last :meth:`mark_read`.
        """
        with self._reading() as conn:
            rows = conn.execute(q.CONVERSATIONS).fetchall()
            out = []
            for row in rows:
                message, local_ms = self._rows.open_message(row)
                out.append(
                    Conversation(message.conversation, local_ms, v.cell_int(row[8]), message.text)
                )
        return out

    # -- outbox -----------------------------------------------------------------------------

    def pending_outbox(self, now_ms: int) -> list[OutboxEntry]:
        """Every outbox row not yet expired at ``now_ms``, the soonest due first."""
        params = (v.integer(now_ms, "now_ms"),)
        with self._reading() as conn:
            rows = conn.execute(q.OUTBOX_PENDING, params).fetchall()
            entries = [self._rows.open_outbox(row) for row in rows]
        return sorted(entries, key=lambda e: (e.next_try_ms, e.created_ms, e.msg_id))

    def record_attempt(self, msg_id: bytes, attempts: int, next_try_ms: int) -> bool:
        """Record a transmission attempt; False if the outbox row is gone (delivered, failed)."""
        params = (
            v.integer(attempts, "attempts"),
            v.integer(next_try_ms, "next_try_ms"),
            self._rows.outbox_tag(v.blob(msg_id, "msg_id")),
        )
        with self._writing() as conn:
            return conn.execute(q.OUTBOX_RECORD_ATTEMPT, params).rowcount > 0

    def expire_outbox(self, now_ms: int) -> list[bytes]:
        """Delete outbox rows expired at ``now_ms`` and mark their messages ``FAILED``.

        Returns the expired message ids, the earliest expiry first.
        """
        now_ms = v.integer(now_ms, "now_ms")
        with self._writing() as conn:
            rows = conn.execute(q.OUTBOX_EXPIRED, (now_ms,)).fetchall()
            entries = sorted(
                (self._rows.open_outbox(row) for row in rows),
                key=lambda e: (e.expires_ms, e.msg_id),
            )
            for entry in entries:
                conn.execute(q.OUTBOX_DELETE, (self._rows.outbox_tag(entry.msg_id),))
                self._advance(conn, entry.msg_id, MessageState.FAILED, now_ms)
        return [e.msg_id for e in entries]

    # -- carried packets --------------------------------------------------------------------

    def carry(self, packet: CarriedPacket) -> bool:
        """Hold another node's packet; True if it is newly held (not a duplicate, not evicted).

        Beyond ``max_carried`` packets, those expiring soonest are dropped.
        """
        packet = checks.carried(packet)
        tag, sealed = self._rows.seal_carried(packet)
        with self._writing() as conn:
            if conn.execute(q.CARRIED_INSERT, (tag, packet.expires_ms, sealed)).rowcount == 0:
                return False
            excess = int(conn.execute(q.CARRIED_COUNT).fetchone()[0]) - self._max_carried
            if excess <= 0:
                return True
            conn.execute(q.CARRIED_EVICT_SOONEST, (excess,))
            return conn.execute(q.CARRIED_HAS, (tag,)).fetchone() is not None

    def drop_carried(self, packet_id: bytes) -> bool:
        """Stop carrying a packet; False if it was not held."""
        params = (self._rows.carried_tag(v.blob(packet_id, "packet_id")),)
        with self._writing() as conn:
            return conn.execute(q.CARRIED_DELETE, params).rowcount > 0

    def carried(self, now_ms: int) -> list[CarriedPacket]:
        """Every held packet not yet expired at ``now_ms``, in the order received."""
        params = (v.integer(now_ms, "now_ms"),)
        with self._reading() as conn:
            rows = conn.execute(q.CARRIED_LIVE, params).fetchall()
            return [self._rows.open_carried(row) for row in rows]

    def expire_carried(self, now_ms: int) -> int:
        """Drop every packet expired at ``now_ms``; return how many."""
        params = (v.integer(now_ms, "now_ms"),)
        with self._writing() as conn:
            return conn.execute(q.CARRIED_EXPIRE, params).rowcount

    # -- state changes inside a transaction -------------------------------------------------

    def _advance(
        self,
        conn: sqlite3.Connection,
        msg_id: bytes,
        reported: MessageState,
        now_ms: int,
        *,
        keep_outbox: bool = False,
    ) -> bool:
        """Apply a state report inside the caller's transaction; True if the state changed."""
        msg_tag = self._rows.msg_tag(msg_id)
        row = conn.execute(q.MESSAGE_OUTGOING_STATE, (msg_tag,)).fetchone()
        if row is None:
            return False
        new = advance(v.cell_enum(MessageState, row[0]), reported)
        if new is None:
            return False
        conn.execute(q.MESSAGE_SET_STATE, (new.value, now_ms, msg_tag))
        if new in OUTBOX_ENDING and not keep_outbox:
            conn.execute(q.OUTBOX_DELETE, (self._rows.outbox_tag(msg_id),))
        return True


def _row_id(row_id: int | None) -> int:
    if row_id is None:
        raise StoreError("SQLite did not report the new message's row id")
    return row_id
