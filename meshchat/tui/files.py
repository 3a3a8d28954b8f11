"""``/file`` and ``/accept``: files from the chat screen (the grammar, what it does, and the
marker a file's line shows).

    /file <path> [caption]   SendFile(path, caption)   send a file to this conversation
    /accept [id]             Accept(which)             take a file the node asked about (the
                                                       last one asked about here, or the one
                                                       whose id starts with ``id``)

A file's line in the conversation shows what was announced (kind, name, size, caption; the
sender's texts escaped) and a marker: how much of it is held while it is pulled, that the node
asks (``/accept``), where it was saved, or why it failed.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from meshchat.errors import UsageError
from meshchat.files.announce import describe, shown_text
from meshchat.files.manifest import FileKind
from meshchat.node._filestate import Direction, State, Transfer

if TYPE_CHECKING:
    from meshchat.tui.actions import Actions
    from meshchat.tui.controller import ChatController

__all__ = [
    "FILE_HELP",
    "Accept",
    "FileActions",
    "FileCommand",
    "SendFile",
    "marker",
    "parse_file",
    "shown_text",
]

FILE_HELP = """\
  /file <path> [caption]       send a file (a picture: .jpg, .png...) to this conversation
  /accept [id]                 take a file the node asked about (default: the last one)"""

_IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".gif", ".webp", ".heic", ".avif"})


@dataclass(frozen=True, slots=True)
class SendFile:
    path: str
    caption: str = ""


@dataclass(frozen=True, slots=True)
class Accept:
    which: str = ""


FileCommand = SendFile | Accept


def parse_file(name: str, rest: str) -> FileCommand:
    """``/file`` (``name`` "file") or ``/accept`` with their arguments."""
    rest = rest.strip()
    if name == "accept":
        return Accept(rest)
    if not rest:
        raise UsageError("usage: /file <path> [caption]")
    try:
        words = shlex.split(rest)
    except ValueError as exc:
        raise UsageError(f"/file: {exc}") from exc
    return SendFile(str(Path(words[0]).expanduser()), " ".join(words[1:]))


def marker(transfer: Transfer | None) -> str:
    """The marker of a file's line (empty when the node knows no transfer for it)."""
    if transfer is None:
        return ""
    state = transfer.state
    if transfer.direction is Direction.OUT:
        return "sending" if state is State.ACTIVE else state.value
    if state is State.ACTIVE:
        held = transfer.progress.held if transfer.progress is not None else 0
        return f"{held * 100 // max(transfer.manifest.size, 1)}%"
    if state is State.ASKING:
        return f"/accept {transfer.root.hex()[:8]}"
    if state is State.DONE:
        return f"saved: {transfer.path}"
    return f"{state.value}: {transfer.error}"


class FileActions:
    """``/file`` and ``/accept`` for one chat screen."""

    def __init__(self, controller: ChatController, actions: Actions) -> None:
        self.ctl = controller
        self.actions = actions
        self.node = controller.node

    async def execute(self, command: FileCommand) -> None:
        if isinstance(command, Accept):
            await self._accept(command.which)
            return
        key = self.ctl.current
        self.actions._check_can_send(key)
        path = Path(command.path)
        kind = FileKind.IMAGE if path.suffix.lower() in _IMAGE_SUFFIXES else FileKind.FILE
        target = key[len("dm:") :] if key.startswith("dm:") else key
        sent = await self.node.files.send(target, path, kind=kind, caption=command.caption)
        self.ctl.note(f"file announced: {describe(sent.manifest)}")

    async def _accept(self, which: str) -> None:
        if not which:
            asking = [
                t
                for t in await self.node.files.transfers()
                if t.state is State.ASKING and t.conversation == self.ctl.current
            ]
            if not asking:
                raise UsageError("no file waits for /accept in this conversation")
            which = asking[-1].root.hex()
        taken = await self.node.files.accept(which)
        self.ctl.note(f"taking {describe(taken.manifest)}")
