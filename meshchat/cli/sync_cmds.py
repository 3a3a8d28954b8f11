"""``meshchat device sync [--json]``: where the history sync with each of my devices stands.

Sync runs inside the node (whenever one of my devices is in reach); this command asks the
running node. With no node running there is nothing in progress, and it says so.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from meshchat.cli.common import emit_json, node_request, say
from meshchat.display import safe_line
from meshchat.home import Home

__all__ = ["add_sync_parser", "sync_line"]


def add_sync_parser(dsub: Any) -> None:
    """``device sync`` under the ``device`` command."""
    p = dsub.add_parser(
        "sync",
        help="history sync with this account's other devices: progress",
        description="Show the latest history sync with each of this account's other devices "
        "(records sent and received, items left, rounds).",
    )
    p.set_defaults(fn=cmd_device_sync)
    p.add_argument("--json", action="store_true", help="machine-readable output")


def sync_line(entry: dict[str, Any], now_ms: int) -> str:
    """One device's sync as a line of text (the device name is sanitized)."""
    name = safe_line(str(entry.get("name") or "")) or "device"
    who = f"{name} ({str(entry['device'])[:8]})"
    ago = max(0, (now_ms - int(entry["last_ms"])) // 1000)
    if entry.get("error"):
        state = f"cut off: {entry['error']}"
    elif entry["done"]:
        state = "in sync"
    else:
        state = f"syncing, {entry['left']:,} left"
    return (
        f"{who}: {state}; sent {entry['sent']:,}, received {entry['received']:,}, "
        f"{entry['rounds']} round(s), {ago} s ago"
    )


def cmd_device_sync(args: argparse.Namespace, home: Home) -> int:
    reply = node_request(home, {"op": "sync_status"})
    running = reply is not None
    entries: list[dict[str, Any]] = list(reply.get("sync", [])) if reply is not None else []
    if args.json:
        emit_json({"running": running, "devices": entries})
        return 0
    if not running:
        say("no node is running for this home: history sync runs while it does")
        return 0
    if not entries:
        say("no sync yet: it starts when one of this account's other devices is in reach")
        return 0
    now = int(time.time() * 1000)
    for entry in entries:
        say(sync_line(entry, now))
    return 0
