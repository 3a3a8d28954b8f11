"""``meshchat send-file``, ``transfers`` and ``accept``: files through the running node.

A file is served by the node that announced it, so these commands need a running node
(``meshchat daemon`` or ``meshchat run``). ``send-file TARGET PATH`` announces the file and
returns (``--wait``: shows how much of it has been served, until one whole copy has);
``transfers`` lists live and finished transfers (``--watch``: progress bars of bytes, rate and
time left, with ``rich``, until none is active); ``accept ID`` pulls a file the node asked
about. Names and captions come from other people: they are shown escaped.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from meshchat.cli.common import emit_json, node_request, say
from meshchat.control import request
from meshchat.display import safe_line
from meshchat.errors import UsageError
from meshchat.files.announce import size_text
from meshchat.home import Home

__all__ = ["add_file_parsers", "send_file_request"]

_NO_NODE = "no node is running for this home: start 'meshchat daemon' or 'meshchat run'"
#: how long the node may take to read and seal a large file before it answers
_SEND_TIMEOUT_S = 600.0
_POLL_S = 0.25


def add_file_parsers(sub: Any) -> None:
    """``send-file``, ``transfers`` and ``accept`` on the ``meshchat`` parser's commands."""
    text = "send a file (or a picture, --image) to a contact, #channel or +group"
    p = sub.add_parser("send-file", help=text, description=text)
    p.set_defaults(fn=cmd_send_file)
    p.add_argument("to", help="contact name, node id prefix, #channel or +group")
    p.add_argument("path", help="the file")
    p.add_argument("--caption", default="", help="a line of text shown with the file")
    p.add_argument("--image", action="store_true", help="announce it as a picture")
    p.add_argument("--media-type", help="its media type (default: from its name)")
    p.add_argument("--wait", action="store_true", help="show progress until a copy is served")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    text = "list file transfers, live and finished"
    p = sub.add_parser("transfers", help=text, description=text)
    p.set_defaults(fn=cmd_transfers)
    p.add_argument("--watch", action="store_true", help="progress bars until none is active")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    text = "take a file the node asked about (its root or message id, first hex digits)"
    p = sub.add_parser("accept", help=text, description=text)
    p.set_defaults(fn=cmd_accept)
    p.add_argument("id", help="as 'meshchat transfers' shows it")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def send_file_request(
    home: Home,
    target: str,
    path: Path,
    *,
    kind: str = "file",
    caption: str = "",
    media_type: str | None = None,
) -> dict[str, Any]:
    """Ask the running node to announce and serve ``path``; the transfer as it lists it."""
    if not home.control_socket.exists():
        raise UsageError(_NO_NODE)
    payload = {
        "op": "send_file",
        "to": target,
        "path": str(path.resolve()),
        "kind": kind,
        "caption": caption,
        "media_type": media_type,
    }
    reply = request(home.control_socket, payload, timeout=_SEND_TIMEOUT_S)
    if not reply.get("ok"):
        raise UsageError(str(reply.get("error", "the node refused the file")))
    transfer: dict[str, Any] = reply["transfer"]
    return transfer


def _transfers(home: Home) -> list[dict[str, Any]]:
    reply = node_request(home, {"op": "transfers"})
    if reply is None:
        raise UsageError(_NO_NODE)
    listed: list[dict[str, Any]] = reply["transfers"]
    return listed


def describe(t: dict[str, Any]) -> str:
    """One line of ``meshchat transfers`` (names escaped)."""
    arrow = "->" if t["direction"] == "out" else "<-"
    size = int(t["size"])
    if t["direction"] == "in" and t["state"] == "active" and t.get("held") is not None:
        state = f"{int(t['held']) * 100 // max(size, 1)}%"
    else:
        state = str(t["state"])
    line = (
        f"{t['root'][:12]} {arrow} {safe_line(str(t['peer']))}: {safe_line(str(t['name']))} "
        f"({size_text(size)}, {t['media_type']}) {state}"
    )
    if t.get("path") and t["state"] == "done":
        line += f" {safe_line(str(t['path']))}"
    if t.get("error"):
        line += f" ({safe_line(str(t['error']))})"
    return line


def cmd_send_file(args: argparse.Namespace, home: Home) -> int:
    path = Path(args.path)
    if not path.is_file():
        raise UsageError(f"not a file: {args.path}")
    kind = "image" if args.image else "file"
    transfer = send_file_request(
        home, args.to, path, kind=kind, caption=args.caption, media_type=args.media_type
    )
    if args.json and not args.wait:
        emit_json(transfer)
        return 0
    say(f"announced {describe(transfer)}")
    if args.wait:
        transfer = _wait_served(home, transfer)
        if args.json:
            emit_json(transfer)
    return 0


def _wait_served(home: Home, transfer: dict[str, Any]) -> dict[str, Any]:
    """A progress bar of the pieces served, until one whole copy has been."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    chunk = 1536
    size = int(transfer["size"])
    chunks = max(1, -(-size // chunk))
    with Progress(
        "{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn()
    ) as bar:
        task = bar.add_task(safe_line(str(transfer["name"]))[:40], total=size)
        while True:
            now = {t["root"]: t for t in _transfers(home)}.get(transfer["root"], transfer)
            served = min(int(now.get("served", 0)), chunks)
            bar.update(task, completed=min(size, served * chunk))
            if served >= chunks or now["state"] == "failed":
                return now
            time.sleep(_POLL_S)


def cmd_transfers(args: argparse.Namespace, home: Home) -> int:
    listed = _transfers(home)
    if args.watch:
        listed = _watch(home)
    if args.json:
        emit_json({"transfers": listed})
        return 0
    if not listed:
        say("no transfers")
    for t in listed:
        say(describe(t))
    return 0


def _watch(home: Home) -> list[dict[str, Any]]:
    """Progress bars (bytes, rate, time left) of incoming transfers until none is active."""
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    tasks: dict[str, Any] = {}
    with Progress(
        "{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    ) as bar:
        while True:
            listed = _transfers(home)
            active = [t for t in listed if t["direction"] == "in" and t["state"] == "active"]
            for t in listed:
                if t["direction"] != "in" or (t["root"] not in tasks and t not in active):
                    continue
                if t["root"] not in tasks:
                    label = safe_line(str(t["name"]))[:40]
                    tasks[t["root"]] = bar.add_task(label, total=int(t["size"]))
                held = int(t["held"] or 0) if t["state"] != "done" else int(t["size"])
                bar.update(tasks[t["root"]], completed=held)
            if not active:
                return listed
            time.sleep(_POLL_S)


def cmd_accept(args: argparse.Namespace, home: Home) -> int:
    reply = node_request(home, {"op": "accept_file", "id": args.id})
    if reply is None:
        raise UsageError(_NO_NODE)
    if args.json:
        emit_json(reply["transfer"])
    else:
        say(f"accepted {describe(reply['transfer'])}")
    return 0
