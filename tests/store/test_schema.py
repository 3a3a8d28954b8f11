"""Schema versioning: migrations applied in order, newer databases refused untouched."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from meshchat.errors import StoreError
from meshchat.store import SCHEMA_VERSION, Store
from meshchat.store.schema import MIGRATIONS, migrate, schema_version

from .helpers import KEY


@pytest.fixture
def raw(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(tmp_path / "raw.db", isolation_level=None)
    yield conn
    conn.close()


def _version_of(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(
            conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]
        )
    finally:
        conn.close()


def test_a_new_store_is_at_the_current_version(db_path: Path) -> None:
    with Store.open(db_path, key=KEY):
        pass
    assert SCHEMA_VERSION == len(MIGRATIONS) >= 1
    assert _version_of(db_path) == SCHEMA_VERSION


def test_reopening_keeps_data_and_version(db_path: Path) -> None:
    with Store.open(db_path, key=KEY) as store:
        store.set_setting("k", "v")
    with Store.open(db_path, key=KEY) as store:
        assert store.get_setting("k") == "v"
    assert _version_of(db_path) == SCHEMA_VERSION


def test_a_newer_database_is_refused_and_left_alone(db_path: Path) -> None:
    with Store.open(db_path, key=KEY) as store:
        store.set_setting("k", "v")
    conn = sqlite3.connect(db_path)
    conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (SCHEMA_VERSION + 1,))
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="newer"):
        Store.open(db_path, key=KEY)
    assert _version_of(db_path) == SCHEMA_VERSION + 1


def test_migrations_run_in_order_once(raw: sqlite3.Connection) -> None:
    assert schema_version(raw) == 0
    assert migrate(raw) == SCHEMA_VERSION
    extra = (
        *MIGRATIONS,
        ("CREATE TABLE extra (a INTEGER)", "INSERT INTO extra (a) VALUES (1)"),
        ("ALTER TABLE extra ADD COLUMN b INTEGER", "UPDATE extra SET b = a + 1"),
    )
    assert migrate(raw, extra) == SCHEMA_VERSION + 2
    assert raw.execute("SELECT a, b FROM extra").fetchall() == [(1, 2)]
    # Running again applies nothing: the INSERT would otherwise add a second row.
    assert migrate(raw, extra) == SCHEMA_VERSION + 2
    assert raw.execute("SELECT COUNT(*) FROM extra").fetchone()[0] == 1
    # Code that knows fewer migrations refuses this database.
    with pytest.raises(StoreError, match="newer"):
        migrate(raw)


def test_a_failing_migration_is_rolled_back_whole(raw: sqlite3.Connection) -> None:
    migrate(raw)
    broken = (*MIGRATIONS, ("CREATE TABLE half (a INTEGER)", "THIS IS NOT SQL"))
    with pytest.raises(StoreError, match="cannot prepare the database"):
        migrate(raw, broken)
    assert schema_version(raw) == SCHEMA_VERSION
    assert raw.execute("SELECT name FROM sqlite_master WHERE name = 'half'").fetchone() is None
    assert not raw.in_transaction


@pytest.mark.parametrize(
    ("rows", "message"),
    [((), "no schema_version"), ((("schema_version", "two"),), "unreadable"),
     ((("schema_version", "0"),), "invalid")],
)  # fmt: skip
def test_a_damaged_meta_table_is_refused(
    raw: sqlite3.Connection, rows: tuple[tuple[str, str], ...], message: str
) -> None:
    raw.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    raw.executemany("INSERT INTO meta VALUES (?, ?)", rows)
    with pytest.raises(StoreError, match=message):
        migrate(raw)
