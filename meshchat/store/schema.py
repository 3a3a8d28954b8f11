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

from meshchat.errors import StoreError

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "Migration", "migrate", "schema_version"]

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

#: Every migration, oldest first. Append only.
MIGRATIONS: tuple[Migration, ...] = (_V1,)

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
        raise StoreError("database has a meta table but no schema_version")
    try:
        version = int(row[0])
    except (TypeError, ValueError) as exc:
        raise StoreError(f"unreadable schema_version {row[0]!r}") from exc
    if version < 1:
        raise StoreError(f"invalid schema_version {version}")
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
                f"understands ({target}); upgrade meshchat to open it"
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
