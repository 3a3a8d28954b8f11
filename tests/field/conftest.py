"""Fixtures for tests that run real ``meshchat daemon`` processes (some in namespaces)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[2] / "field-tests"))

from meshlab import Lab


@pytest.fixture
def lab() -> Iterator[Lab]:
    with Lab() as the_lab:
        yield the_lab
