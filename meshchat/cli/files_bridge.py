"""What the voice commands ask of the running node's file transfer: send a file of kind
voice, and find a received (or sent) note by its message id."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from meshchat.cli.common import node_request
from meshchat.errors import UsageError
from meshchat.home import Home
from meshchat.voice import MEDIA_TYPE

__all__ = ["received_note", "send_file"]

_NEEDS_NODE = "needs the running node ('meshchat run' or 'meshchat daemon')"
_HEX = frozenset("0123456789abcdef")


def send_file(home: Home, target: str, path: Path, *, caption: str = "") -> dict[str, Any]:
    """Announce the voice note at ``path`` to ``target`` through the running node, which
    serves it from there; the transfer as the node describes it."""
    request = {
        "op": "send_file",
        "to": target,
        "path": str(path.resolve()),
        "kind": "voice",
        "caption": caption,
        "media_type": MEDIA_TYPE,
    }
    reply = node_request(home, request)
    if reply is None:
        raise UsageError(f"sending a voice note {_NEEDS_NODE}: it serves the note")
    transfer: dict[str, Any] = reply["transfer"]
    return transfer


def received_note(home: Home, which: str) -> Path:
    """The file of the voice note whose message id starts with ``which`` (hex), received
    whole or sent from here: as the running node lists its transfers, or without one as it
    kept them when it last ran."""
    prefix = which.strip().lower()
    if not prefix or not set(prefix) <= _HEX:
        raise UsageError(f"{which!r} is neither a file nor a message id (hex digits)")
    reply = node_request(home, {"op": "transfers"})
    if reply is not None:
        transfers = list(reply["transfers"])
    else:  # no node: the transfers it kept when it last ran (read only)
        from meshchat.node._filestate import load_transfers

        transfers = [t.to_json() for t in load_transfers(str(home.transfers))]
    notes = [
        t
        for t in transfers
        if t.get("kind") == "voice" and str(t.get("msg_id", "")).startswith(prefix)
    ]
    if not notes:
        raise UsageError(f"no voice note has a message id starting {prefix}")
    if len(notes) > 1:
        raise UsageError(f"{len(notes)} voice notes have message ids starting {prefix}")
    (note,) = notes
    if not note.get("path") or (note.get("direction") == "in" and note.get("state") != "done"):
        raise UsageError(f"voice note {prefix} is not here yet ({note.get('state')})")
    return Path(str(note["path"]))
