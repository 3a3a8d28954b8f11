"""A file announcement as the text of a message, so it travels as any message does.

An announced file is a message of its conversation like any other: sealed and forward secret
to a contact, under the group's or channel's encryption in a ``+group`` or ``#channel``, queued
and retried, stored, placed in the causal history (it names its parents; later messages may
name it), synced to the sender's other devices. Only its text differs::

    "\\x01F1:" base64url( sender node id (16) || announcement (meshchat.files.manifest) )

without padding. The first character is a control character no keyboard types, so a text
written by a person is never read as an announcement (and a face that does not know files
shows it escaped). The sender's node id tells members of a channel, who know only the
sender's signing key, where to ask for pieces. The whole text is at most
:data:`MAX_TEXT_BYTES` (a message's limit): an announcement of at most
:data:`MAX_ANNOUNCED_BYTES`, so a caption is shorter than the manifest alone allows.

:func:`parse_text` returns None for any text that is not an announcement, and raises
:class:`PacketError` for one that claims to be and is not well formed.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from meshchat.errors import PacketError, PacketReason
from meshchat.files.manifest import FileKind, FileManifest
from meshchat.wire.payloads import MAX_TEXT_BYTES

__all__ = [
    "MAX_ANNOUNCED_BYTES",
    "PREFIX",
    "Announced",
    "announce_text",
    "describe",
    "is_announcement",
    "parse_text",
    "shown_text",
    "size_text",
]

PREFIX = "\x01F1:"
_NODE_ID = 16
#: The largest announcement (manifest bytes) that fits a message's text.
MAX_ANNOUNCED_BYTES = (MAX_TEXT_BYTES - len(PREFIX)) * 3 // 4 - _NODE_ID


@dataclass(frozen=True, slots=True)
class Announced:
    """An announcement read from a message text: the file and where to ask for it."""

    manifest: FileManifest
    sender: bytes  #: the node id the sender says it serves the file from


def announce_text(manifest: FileManifest, sender: bytes) -> str:
    """The message text announcing ``manifest`` from node ``sender``. Raises
    :class:`PacketError` (``OVERSIZED``) when it would not fit a message."""
    if len(sender) != _NODE_ID:
        raise PacketError(PacketReason.BAD_FIELD, "sender node id size")
    encoded = manifest.encode()
    if len(encoded) > MAX_ANNOUNCED_BYTES:
        raise PacketError(
            PacketReason.OVERSIZED,
            f"announcement of {len(encoded)} bytes > {MAX_ANNOUNCED_BYTES}: shorten the caption",
        )
    return PREFIX + base64.urlsafe_b64encode(sender + encoded).decode().rstrip("=")


def is_announcement(text: str) -> bool:
    return text.startswith(PREFIX)


def parse_text(text: str) -> Announced | None:
    """The announcement a message text carries; None for an ordinary text."""
    if not text.startswith(PREFIX):
        return None
    blob = text[len(PREFIX) :]
    if len(blob.encode()) > MAX_TEXT_BYTES:
        raise PacketError(PacketReason.OVERSIZED, "announcement text")
    try:
        raw = base64.urlsafe_b64decode(blob + "=" * (-len(blob) % 4))
    except (binascii.Error, ValueError) as exc:
        raise PacketError(PacketReason.MALFORMED, "announcement: not base64url") from exc
    if len(raw) <= _NODE_ID:
        raise PacketError(PacketReason.MALFORMED, "announcement: too short")
    return Announced(FileManifest.decode(raw[_NODE_ID:]), raw[:_NODE_ID])


_KIND_WORD = {FileKind.FILE: "file", FileKind.IMAGE: "picture", FileKind.VOICE: "voice note"}


def size_text(size: int) -> str:
    """``532 B``, ``14.2 kB``, ``5.0 MB``."""
    if size < 1000:
        return f"{size} B"
    for unit in ("kB", "MB", "GB"):
        size_f = size / 1000
        if size_f < 1000 or unit == "GB":
            return f"{size_f:.1f} {unit}"
        size = int(size_f)
    return f"{size} B"  # pragma: no cover - the loop always returns


def describe(manifest: FileManifest) -> str:
    """One line for a person: ``[picture] IMG_1.jpg (1.2 MB) caption``. The name and caption
    are the sender's: the caller escapes them for the terminal (:mod:`meshchat.display`)."""
    line = f"[{_KIND_WORD[manifest.kind]}] {manifest.name} ({size_text(manifest.size)})"
    return f"{line} {manifest.caption}" if manifest.caption else line


def shown_text(text: str) -> str:
    """A message's text as faces show it: a file announcement as what it announces
    (unescaped: the caller escapes it), any other text (a malformed announcement too) as is."""
    try:
        announced = parse_text(text)
    except PacketError:
        return text
    return text if announced is None else describe(announced.manifest)
