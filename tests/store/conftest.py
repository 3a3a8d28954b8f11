"""Fixtures for the message store tests: real SQLite files in a temporary directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from meshchat.store import Store

from .helpers import KEY


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "meshchat.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[Store]:
    with Store.open(db_path, key=KEY) as opened:
        yield opened
