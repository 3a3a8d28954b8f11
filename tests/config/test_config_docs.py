"""docs/configuration.md lists every key, with its default, and no key that does not exist."""

from __future__ import annotations

import re
from pathlib import Path

from meshchat.config import KEYS, render

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_every_key_is_documented_with_its_default() -> None:
    text = DOC.read_text()
    rows = {m.group(1): m.group(0) for m in re.finditer(r"^\| `([a-z_.]+)` \|.*$", text, re.M)}
    assert set(rows) == {k.name for k in KEYS}
    for key in KEYS:
        assert f"| `{render(key.default)}` |" in rows[key.name], key.name
