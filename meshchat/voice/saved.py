"""Voice notes on disk: the notes made here, kept while they are served, and received notes
read back within their bound."""

from __future__ import annotations

import os
from pathlib import Path

from meshchat.errors import VoiceError, VoiceReason
from meshchat.voice.encode import VoiceNote
from meshchat.voice.params import MAX_NOTE_BYTES, SUFFIX

__all__ = ["free_path", "keep_note", "note_name", "read_note"]


def free_path(path: Path) -> Path:
    """``path``, or the first of ``stem-1.suffix``, ``stem-2.suffix``... not taken."""
    candidate, n = path, 0
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
    return candidate


def note_name(duration: float) -> str:
    """The file name a note is kept and announced under: its length (``voice-7s.ogg``,
    ``voice-2m05s.ogg``), which the recipient sees before pulling it. No time or place: the
    message that announces it carries its sent time already."""
    minutes, seconds = divmod(max(1, round(duration)), 60)
    length = f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"
    return f"voice-{length}{SUFFIX}"


def keep_note(folder: Path, note: VoiceNote) -> Path:
    """Write ``note`` into ``folder`` (made 0700 if missing) under a new name, mode 0600."""
    folder.mkdir(mode=0o700, exist_ok=True)
    path = free_path(folder / note_name(note.duration))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(note.data)
    return path


def read_note(path: Path) -> bytes:
    """The bytes of the note at ``path``; never more than one byte over the bound, so a huge
    file is refused by the decoder's size check without being read whole."""
    try:
        with path.open("rb") as source:
            return source.read(MAX_NOTE_BYTES + 1)
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the name
        why = exc.strerror if isinstance(exc, OSError) else exc
        raise VoiceError(VoiceReason.NOT_AUDIO, f"cannot read {path}: {why}") from exc
