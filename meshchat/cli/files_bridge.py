"""What the voice commands ask of the file transfer: send a file of kind voice, find a
received note by its message id."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from meshchat.errors import UsageError
from meshchat.home import Home

__all__ = ["received_note", "send_file"]


def send_file(home: Home, target: str, path: Path, *, caption: str = "") -> dict[str, Any]:
    """Announce the voice note at ``path`` to ``target`` through the running node."""
    raise UsageError("sending files is not available in this build")


def received_note(home: Home, which: str) -> Path:
    """The saved file of the received voice note whose message id starts with ``which``."""
    raise UsageError(f"no received voice note {which!r}: give its message id or a file")
