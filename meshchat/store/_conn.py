"""The store's one SQLite connection: opening it privately, unlocking it, and transactions.

:class:`Database` owns the connection and the lock that serialises calls on it. Reads run under
the lock (:meth:`Database.reading`); each write runs in its own ``BEGIN IMMEDIATE`` ...
``COMMIT`` (:meth:`Database.writing`), or in a savepoint when it is part of a group of writes
(:meth:`Database.transaction`) that commits once. Every ``sqlite3`` error becomes a
:class:`StoreError` that keeps it as its cause.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path

from meshchat.errors import StoreError, StoreReason
from meshchat.store import _sql as q
from meshchat.store import _values as v
from meshchat.store._legacy import has_legacy_rows, seal_legacy_rows
from meshchat.store._rows import Rows
from meshchat.store.schema import migrate

__all__ = ["COMMITS_KEPT", "Database"]

#: How many of the latest commits the database remembers the duration of.
COMMITS_KEPT = 8

#: How long a write waits for another process holding the database's write lock.
_BUSY_TIMEOUT_S = 10.0
_KEY_CHECK = "store_key_check"


def _create_private_file(path: Path) -> None:
    """Create ``path`` with mode 0600 (its parents with 0700) before SQLite opens it."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        os.close(fd)
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)
    except OSError as exc:
        raise StoreError(f"cannot create the database file {path}: {exc}", path=str(path)) from exc


def _connect(path: Path) -> sqlite3.Connection:
    _create_private_file(path)
    try:
        conn = sqlite3.connect(
            path, timeout=_BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open the database {path}: {exc}", path=str(path)) from exc
    try:
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()
        if mode is None or str(mode[0]).lower() != "wal":
            raise StoreError(f"cannot put {path} in WAL mode (got {mode!r})", path=str(path))
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA secure_delete = ON")
        migrate(conn)
    except sqlite3.Error as exc:
        conn.close()
        raise StoreError(f"cannot open the database {path}: {exc}", path=str(path)) from exc
    except BaseException:
        conn.close()
        raise
    return conn


def _unlock(conn: sqlite3.Connection, path: Path, rows: Rows) -> None:
    """Check the key against the file's key check (writing one on first use); seal old rows."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        row = conn.execute(q.META_GET, (_KEY_CHECK,)).fetchone()
        if row is None:
            conn.execute(q.META_INSERT, (_KEY_CHECK, rows.cipher.key_check().hex()))
        else:
            try:
                check = bytes.fromhex(v.cell_str(row[0]))
            except ValueError:
                check = b""
            if not rows.cipher.matches(check):
                raise StoreError(
                    f"wrong store key for {path} (or its key check is damaged)",
                    reason=StoreReason.WRONG_KEY,
                    path=str(path),
                )
        legacy = has_legacy_rows(conn)
        if legacy:
            seal_legacy_rows(conn, rows)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    if legacy:
        # Rewrite the file without the plaintext pages, and empty the WAL that held them.
        conn.execute("VACUUM")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


class Database:
    """One open SQLite file, its lock and its transactions.

    ``on_rollback`` is called whenever a write or group of writes is rolled back, so that
    caches kept beside the data (the history totals) can be dropped.
    """

    def __init__(self, path: Path, rows: Rows, on_rollback: Callable[[], None]) -> None:
        self.path = path
        self.lock = threading.RLock()
        self._batch_depth = 0  # > 0 inside transaction(): writes become savepoints
        self._on_rollback = on_rollback
        #: nanoseconds each of the latest commits took (the disk sync, mostly)
        self.commit_ns: deque[int] = deque(maxlen=COMMITS_KEPT)
        conn = _connect(path)
        try:
            _unlock(conn, path, rows)
        except sqlite3.Error as exc:
            conn.close()
            raise StoreError(f"cannot open the database {path}: {exc}", path=str(path)) from exc
        except BaseException:
            conn.close()
            raise
        self.conn: sqlite3.Connection | None = conn

    def _error(self, what: str, exc: sqlite3.Error) -> StoreError:
        return StoreError(f"{what} failed: {exc}", path=str(self.path))

    def _open_conn(self) -> sqlite3.Connection:
        if self.conn is None:
            raise StoreError("the store is closed", reason=StoreReason.CLOSED, path=str(self.path))
        return self.conn

    def close(self) -> None:
        with self.lock:
            conn, self.conn = self.conn, None
            if conn is not None:
                try:
                    conn.close()
                except sqlite3.Error as exc:
                    raise self._error("closing the database", exc) from exc

    @contextlib.contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """The connection, under the lock, for statements that only read."""
        with self.lock:
            conn = self._open_conn()
            try:
                yield conn
            except sqlite3.Error as exc:
                raise self._error("reading the store", exc) from exc

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Group the writes made inside into one durable commit (see ``Store.transaction``)."""
        with self.lock:
            conn = self._open_conn()
            if self._batch_depth:
                self._batch_depth += 1
                try:
                    yield
                finally:
                    self._batch_depth -= 1
                return
            try:
                conn.execute("BEGIN IMMEDIATE")
                self._batch_depth = 1
                try:
                    yield
                    self._commit(conn)
                except BaseException:
                    self._rollback(conn)
                    raise
                finally:
                    self._batch_depth = 0
            except sqlite3.Error as exc:
                raise self._error("writing to the store", exc) from exc

    @contextlib.contextmanager
    def writing(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: committed (durably) on exit, rolled back on any error.

        Inside :meth:`transaction` it is a savepoint of the group instead.
        """
        with self.lock:
            conn = self._open_conn()
            try:
                if self._batch_depth:
                    conn.execute("SAVEPOINT write")
                    try:
                        yield conn
                        conn.execute("RELEASE write")
                    except BaseException:
                        self._on_rollback()
                        with contextlib.suppress(sqlite3.Error):
                            conn.execute("ROLLBACK TO write")
                            conn.execute("RELEASE write")
                        raise
                    return
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                    self._commit(conn)
                except BaseException:
                    self._rollback(conn)
                    raise
            except sqlite3.Error as exc:
                raise self._error("writing to the store", exc) from exc

    def _commit(self, conn: sqlite3.Connection) -> None:
        began = time.perf_counter_ns()
        conn.execute("COMMIT")
        self.commit_ns.append(time.perf_counter_ns() - began)

    @contextlib.contextmanager
    def held_if_free(self) -> Iterator[bool]:
        """Hold the lock if no other thread holds it now (yields True), without waiting."""
        held = self.lock.acquire(blocking=False)
        try:
            yield held
        finally:
            if held:
                self.lock.release()

    def _rollback(self, conn: sqlite3.Connection) -> None:
        self._on_rollback()
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
