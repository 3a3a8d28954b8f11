"""``meshchat device sync``: the lines it prints, and what it says with no node running."""

from __future__ import annotations

import json
from pathlib import Path

from clirun import run_cli

from meshchat.cli.sync_cmds import sync_line
from meshchat.node._sync import summary

ENTRY = {
    "device": "ab" * 16,
    "name": "lap\x1b[2Jtop",
    "session": "00" * 8,
    "started_ms": 1_000,
    "last_ms": 6_000,
    "rounds": 3,
    "sent": 12,
    "received": 1_300,
    "left": 0,
    "done": True,
    "error": None,
}


def test_a_line_per_device_with_its_name_sanitized() -> None:
    line = sync_line(ENTRY, 16_000)
    assert "\x1b" not in line and line.startswith("lap")
    assert "(abababab): in sync; sent 12, received 1,300, 3 round(s), 10 s ago" in line
    assert "syncing, 40 left" in sync_line({**ENTRY, "left": 40, "done": False}, 16_000)
    assert "cut off: too-many-wanted" in sync_line({**ENTRY, "error": "too-many-wanted"}, 0)


def test_the_summary_counts_what_is_left() -> None:
    assert summary([]) == ""
    assert summary([ENTRY]) == "in sync"
    busy = {**ENTRY, "left": 1_200, "done": False}
    assert summary([ENTRY, busy]) == "syncing, 1,200 left"
    assert summary([{**ENTRY, "error": "too-many-rounds", "done": False}]) == "sync cut off"


def test_with_no_node_running_it_says_so(tmp_path: Path) -> None:
    done = run_cli(tmp_path / "home", "pw", "device", "sync", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"running": False, "devices": []}
    text = run_cli(tmp_path / "home", "pw", "device", "sync")
    assert "no node is running" in text.stdout
