"""The store's schema and its migrations.

Theory of operation
-------------------
The schema version lives in the ``meta`` table under ``schema_version``; a database without
that table is version 0 (empty). :data:`MIGRATIONS` is the list of steps, and step ``i`` (from
0) takes the database from version ``i`` to ``i + 1``. On open, :func:`migrate` applies the
steps the database has not had yet, in order, each in its own ``BEGIN IMMEDIATE`` transaction
that also records the new version, so a crash leaves the database at a whole version and the
next open carries on. The version is read again inside each transaction, so two processes
opening the same file at once do not apply a step twice. A database whose version is higher than
this code knows was written by a newer meshchat: it is refused, never touched.

Steps are only ever appended. A released step is never edited, because databases in the field
have already run it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from meshchat.errors import StoreError, StoreReason

__all__ = [
    "LEGACY_TABLES",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "V5_BACKFILL",
    "Migration",
    "migrate",
    "schema_version",
]

#: One migration: SQL statements run in order inside one transaction.
Migration = tuple[str, ...]

_V1: Migration = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE contacts (
        node_id BLOB PRIMARY KEY,
        sign_public BLOB NOT NULL UNIQUE,
        box_public BLOB NOT NULL,
        name TEXT NOT NULL,
        trust TEXT NOT NULL,
        added_ms INTEGER NOT NULL
    )""",
    """CREATE TABLE peers (
        node_id BLOB PRIMARY KEY,
        sign_public BLOB NOT NULL UNIQUE,
        box_public BLOB NOT NULL,
        name TEXT NOT NULL,
        seen_ms INTEGER NOT NULL
    )""",
    "CREATE INDEX peers_by_seen ON peers (seen_ms)",
    """CREATE TABLE channels (
        name TEXT PRIMARY KEY,
        channel_id BLOB NOT NULL UNIQUE,
        key BLOB,
        joined_ms INTEGER NOT NULL
    )""",
    # local_ms: when this store learnt of the message (created for outgoing, received for
    # incoming); it orders the conversation list without trusting other nodes' clocks.
    """CREATE TABLE messages (
        row_id INTEGER PRIMARY KEY AUTOINCREMENT,
        conversation TEXT NOT NULL,
        msg_id BLOB NOT NULL,
        outgoing INTEGER NOT NULL,
        sender BLOB NOT NULL,
        sender_name TEXT NOT NULL,
        text TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        state TEXT NOT NULL,
        updated_ms INTEGER NOT NULL,
        local_ms INTEGER NOT NULL,
        UNIQUE (sender, msg_id)
    )""",
    "CREATE UNIQUE INDEX messages_outgoing_id ON messages (msg_id) WHERE outgoing = 1",
    "CREATE INDEX messages_by_conversation ON messages (conversation, row_id)",
    """CREATE TABLE outbox (
        msg_id BLOB PRIMARY KEY,
        conversation TEXT NOT NULL,
        destination BLOB NOT NULL,
        text TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        attempts INTEGER NOT NULL,
        next_try_ms INTEGER NOT NULL,
        expires_ms INTEGER NOT NULL
    )""",
    "CREATE INDEX outbox_by_expiry ON outbox (expires_ms)",
    """CREATE TABLE carried (
        packet_id BLOB PRIMARY KEY,
        frame BLOB NOT NULL,
        destination BLOB NOT NULL,
        expires_ms INTEGER NOT NULL
    )""",
    "CREATE INDEX carried_by_expiry ON carried (expires_ms)",
    """CREATE TABLE read_marks (
        conversation TEXT PRIMARY KEY,
        last_read_row INTEGER NOT NULL
    )""",
    "CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
)

# Version 2: every private value is sealed under the store key (see ``_crypt.py``); rows are
# found by keyed tags. SQL cannot encrypt, so this step only sets the version 1 tables aside as
# ``legacy_*``; the store seals their rows into the new tables and drops them the first time it
# is opened with a key (``_legacy.py``), in one transaction, then vacuums the plaintext away.
_LEGACY_TABLES = (
    "contacts",
    "peers",
    "channels",
    "messages",
    "outbox",
    "carried",
    "read_marks",
    "settings",
)
_V2: Migration = (
    "DROP INDEX peers_by_seen",
    "DROP INDEX messages_outgoing_id",
    "DROP INDEX messages_by_conversation",
    "DROP INDEX outbox_by_expiry",
    "DROP INDEX carried_by_expiry",
    *(f"ALTER TABLE {t} RENAME TO legacy_{t}" for t in _LEGACY_TABLES),
    """CREATE TABLE contacts (
        tag BLOB PRIMARY KEY,
        sign_tag BLOB NOT NULL,
        sealed BLOB NOT NULL
    )""",
    "CREATE INDEX contacts_by_sign_tag ON contacts (sign_tag)",
    """CREATE TABLE peers (
        tag BLOB PRIMARY KEY,
        sign_tag BLOB NOT NULL UNIQUE,
        seen_ms INTEGER NOT NULL,
        sealed BLOB NOT NULL
    )""",
    "CREATE INDEX peers_by_seen_ms ON peers (seen_ms)",
    """CREATE TABLE channels (
        name_tag BLOB PRIMARY KEY,
        id_tag BLOB NOT NULL UNIQUE,
        sealed BLOB NOT NULL
    )""",
    """CREATE TABLE messages (
        row_id INTEGER PRIMARY KEY AUTOINCREMENT,
        conv_tag BLOB NOT NULL,
        msg_tag BLOB NOT NULL,
        sender_tag BLOB NOT NULL,
        outgoing INTEGER NOT NULL,
        state TEXT NOT NULL,
        updated_ms INTEGER NOT NULL,
        sealed BLOB NOT NULL,
        UNIQUE (sender_tag, msg_tag)
    )""",
    "CREATE UNIQUE INDEX messages_outgoing_tag ON messages (msg_tag) WHERE outgoing = 1",
    "CREATE INDEX messages_by_conv_tag ON messages (conv_tag, row_id)",
    """CREATE TABLE outbox (
        msg_tag BLOB PRIMARY KEY,
        attempts INTEGER NOT NULL,
        next_try_ms INTEGER NOT NULL,
        expires_ms INTEGER NOT NULL,
        sealed BLOB NOT NULL
    )""",
    "CREATE INDEX outbox_by_expires_ms ON outbox (expires_ms)",
    """CREATE TABLE carried (
        id_tag BLOB PRIMARY KEY,
        expires_ms INTEGER NOT NULL,
        sealed BLOB NOT NULL
    )""",
    "CREATE INDEX carried_by_expires_ms ON carried (expires_ms)",
    """CREATE TABLE read_marks (
        conv_tag BLOB PRIMARY KEY,
        last_read_row INTEGER NOT NULL
    )""",
    "CREATE TABLE settings (key_tag BLOB PRIMARY KEY, sealed BLOB NOT NULL)",
)

#: The version 1 tables that version 2 sets aside until they are sealed.
LEGACY_TABLES = tuple(f"legacy_{t}" for t in _LEGACY_TABLES)

# Version 3: sealed key-value state for the crypto layer (ratchet sessions, prekeys), found by
# the tag of (kind, key) and listed by the tag of its kind.
_V3: Migration = (
    """CREATE TABLE crypto_state (
        tag BLOB PRIMARY KEY,
        kind_tag BLOB NOT NULL,
        sealed BLOB NOT NULL
    )""",
    "CREATE INDEX crypto_state_by_kind ON crypto_state (kind_tag)",
)

# Version 4: crypto state that could not be decoded is set aside here with the reason, never
# overwritten (each row has its own random tag), so it can be examined or recovered later.
_V4: Migration = (
    """CREATE TABLE set_aside (
        tag BLOB PRIMARY KEY,
        set_ms INTEGER NOT NULL,
        sealed BLOB NOT NULL
    )""",
)

# Version 5: the causal history (``_dag.py``, ``meshchat.causal``). Each message row gains its
# place in the conversation's order: ``order_ms`` (NULL while the message is held back waiting
# for a parent), ``late`` (put at the end instead of where its time claimed), ``held_ms`` (when
# it started waiting) and ``head`` (1 while no stored message names it as a parent). ``links``
# holds, per conversation, which message names which (tags only), ``waiting`` = 1 where the
# child waits for that parent to be shown, so a message shown releases its waiting children by
# an indexed lookup. ``tombstones`` keeps the tag of each deleted message so it is never stored
# again. The parents themselves (ids) travel inside each row's sealed cell.
#
# Rows written before this version name no parents: they keep the order they were shown in
# (``order_ms`` = their row id, a small number, so every later message sorts after them), and
# only the newest row of each conversation is a head. ``V5_BACKFILL`` is also run after the
# rows of a version 1 file are sealed in (``_legacy.py``), since those arrive after this step.
V5_BACKFILL: Migration = (
    "UPDATE messages SET order_ms = row_id WHERE order_ms IS NULL AND held_ms IS NULL",
    """UPDATE messages SET head = 1
        WHERE row_id IN (SELECT MAX(row_id) FROM messages GROUP BY conv_tag)""",
)
_V5: Migration = (
    "ALTER TABLE messages ADD COLUMN order_ms INTEGER",
    "ALTER TABLE messages ADD COLUMN late INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE messages ADD COLUMN held_ms INTEGER",
    "ALTER TABLE messages ADD COLUMN head INTEGER NOT NULL DEFAULT 0",
    "CREATE INDEX messages_by_msg_tag ON messages (msg_tag, conv_tag)",
    "CREATE INDEX messages_by_order ON messages (conv_tag, order_ms)",
    "CREATE INDEX messages_heads ON messages (conv_tag, order_ms) WHERE head = 1",
    "CREATE INDEX messages_held ON messages (conv_tag, held_ms) WHERE order_ms IS NULL",
    "CREATE INDEX messages_held_by_time ON messages (held_ms) WHERE order_ms IS NULL",
    """CREATE TABLE links (
        conv_tag BLOB NOT NULL,
        parent_tag BLOB NOT NULL,
        child_row INTEGER NOT NULL,
        waiting INTEGER NOT NULL,
        PRIMARY KEY (conv_tag, parent_tag, child_row)
    ) WITHOUT ROWID""",
    "CREATE INDEX links_by_child ON links (child_row, waiting)",
    """CREATE TABLE tombstones (
        msg_tag BLOB PRIMARY KEY,
        conv_tag BLOB NOT NULL,
        deleted_ms INTEGER NOT NULL
    )""",
    # However a row goes (deleted, trimmed from a channel's history), its own links go with it.
    """CREATE TRIGGER messages_unlink AFTER DELETE ON messages BEGIN
        DELETE FROM links WHERE child_row = OLD.row_id;
    END""",
    *V5_BACKFILL,
)

SCHEMA = StoreReason.SCHEMA

#: Every migration, oldest first. Append only.
# Version 6: messages shown with a gap (released before a parent came) are found by when their
# wait began, so a node keeps asking for the missing parents for a while after the release.
_V6: Migration = (
    "CREATE INDEX messages_gaps ON messages (conv_tag, held_ms) "
    "WHERE order_ms IS NOT NULL AND held_ms IS NOT NULL",
)

# Version 7: accounts. Each account's signed device list (the user's own and contacts'),
# sealed, found by the tag of the account id. A contact's account id lives in its sealed cell
# (a cell from before this version has none: the contact is its own account), so nothing is
# rewritten; the node writes the genesis list of the user's own account on its first open.
_V7: Migration = (
    """CREATE TABLE device_lists (
        account_tag BLOB PRIMARY KEY,
        sealed BLOB NOT NULL
    )""",
)

# Version 8: history sync between the devices of one account (``_sync.py``,
# :mod:`meshchat.sync`). One row per synced item: its sync id and time in clear (what
# reconciliation sorts and fingerprints), its kind, what it stands for (``ref_row``: the message
# row; ``ref_tag``: the message or contact tag), the state it was indexed in, and a sealed cell
# with the record's identity (conversation, message id and time; or node id and change time),
# so a deleted message's tombstone can still be synced after its row is gone.
_V8: Migration = (
    """CREATE TABLE sync_items (
        sid BLOB PRIMARY KEY,
        ts INTEGER NOT NULL,
        kind INTEGER NOT NULL,
        ref_row INTEGER,
        ref_tag BLOB NOT NULL,
        state TEXT NOT NULL,
        sealed BLOB NOT NULL
    )""",
    "CREATE INDEX sync_items_by_ts ON sync_items (ts, sid)",
    "CREATE INDEX sync_items_by_row ON sync_items (ref_row) WHERE ref_row IS NOT NULL",
    "CREATE INDEX sync_items_by_tag ON sync_items (kind, ref_tag)",
)

# Version 9: a direct message goes to every device of the contact's account; each device's
# copy has its own state, attempts and next try (``_deliveries.py``). An outbox row written
# before has no delivery rows: it is the contact's only device, still pending. A deleted
# message's delivery rows go with it.
_V9: Migration = (
    """CREATE TABLE deliveries (
        msg_tag BLOB NOT NULL,
        device_tag BLOB NOT NULL,
        state TEXT NOT NULL,
        updated_ms INTEGER NOT NULL,
        attempts INTEGER NOT NULL,
        next_try_ms INTEGER NOT NULL,
        sealed BLOB NOT NULL,
        PRIMARY KEY (msg_tag, device_tag)
    ) WITHOUT ROWID""",
    """CREATE TRIGGER messages_undeliver AFTER DELETE ON messages WHEN OLD.outgoing = 1 BEGIN
        DELETE FROM deliveries WHERE msg_tag = OLD.msg_tag;
    END""",
)

MIGRATIONS: tuple[Migration, ...] = (_V1, _V2, _V3, _V4, _V5, _V6, _V7, _V8, _V9)

#: The version this code writes.
SCHEMA_VERSION = len(MIGRATIONS)


def schema_version(conn: sqlite3.Connection) -> int:
    """The version recorded in the database, 0 for one that has no ``meta`` table yet."""
    has_meta = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
    ).fetchone()
    if has_meta is None:
        return 0
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    if row is None:
        raise StoreError("database has a meta table but no schema_version", reason=SCHEMA)
    try:
        version = int(row[0])
    except (TypeError, ValueError) as exc:
        raise StoreError(f"unreadable schema_version {row[0]!r}", reason=SCHEMA) from exc
    if version < 1:
        raise StoreError(f"invalid schema_version {version}", reason=SCHEMA)
    return version


def migrate(conn: sqlite3.Connection, migrations: Sequence[Migration] = MIGRATIONS) -> int:
    """Bring the database up to ``len(migrations)``; return the version it ends at.

    ``conn`` must be in autocommit mode (``isolation_level=None``); each step runs in its own
    transaction. Raises :class:`StoreError` if the database is newer than ``migrations``, or on
    any SQLite error (the failing step is rolled back).
    """
    try:
        while True:
            version = _step(conn, migrations)
            if version == len(migrations):
                return version
    except sqlite3.Error as exc:
        raise StoreError(f"cannot prepare the database: {exc}") from exc


def _step(conn: sqlite3.Connection, migrations: Sequence[Migration]) -> int:
    """Apply the next missing migration, if any; return the version the database is now at."""
    target = len(migrations)
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = schema_version(conn)
        if version > target:
            raise StoreError(
                f"database schema version {version} is newer than this meshchat "
                f"understands ({target}); upgrade meshchat to open it",
                reason=SCHEMA,
            )
        if version < target:
            for statement in migrations[version]:
                conn.execute(statement)
            version += 1
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (str(version),),
            )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return version
