"""Erasing a home at once: what ``meshchat panic`` and the control op ``panic`` do.

Theory of operation
-------------------
:func:`erase_home` takes the home's secret files (:meth:`Home.secret_files`) most secret first
and, for each regular file: opens it without following links, overwrites its whole length with
random bytes, syncs it to disk, closes and unlinks it. Anything else there (the control socket) is
only unlinked. Then the folder itself is synced and, if empty, removed. A file that
cannot be erased does not stop the others; the report names it.

Overwriting is best effort: flash translation layers, copy-on-write and journaling file
systems, and backups may keep old blocks. What makes the erasure sound anyway is that it is a
**crypto-erasure**: every private value in the database is sealed under the store key, whose
only copy is inside the keystore, which goes first. Once the keystore is gone, whatever is left
of the database anywhere is ciphertext that nobody can open, even with the passphrase.

Nothing here asks for the passphrase: panic is for when there is no time to type it.
"""

from __future__ import annotations

import contextlib
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from meshchat.home import Home

__all__ = ["PanicReport", "erase_file", "erase_home"]

_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class PanicReport:
    """What :func:`erase_home` removed, what it could not, and how long it took."""

    erased: tuple[Path, ...]
    failed: tuple[tuple[Path, str], ...]
    seconds: float

    @property
    def ok(self) -> bool:
        return not self.failed


def erase_file(path: Path) -> bool:
    """Overwrite ``path`` with random bytes, ``fsync`` it and unlink it.

    Returns False if there was nothing at ``path``; raises :class:`OSError` if it could not
    be erased. A non-regular file (a socket, a link) is only unlinked.
    """
    try:
        info = path.lstat()
    except FileNotFoundError:
        return False
    if stat.S_ISREG(info.st_mode):
        fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW)
        try:
            remaining = os.fstat(fd).st_size
            while remaining > 0:
                chunk = os.urandom(min(remaining, _CHUNK))
                written = os.write(fd, chunk)
                remaining -= written
            os.fsync(fd)
        finally:
            os.close(fd)
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def erase_home(home: Home) -> PanicReport:
    """Erase every secret file of ``home``, the keystore first. Never asks, never waits."""
    start = time.monotonic()
    erased: list[Path] = []
    failed: list[tuple[Path, str]] = []
    for path in home.secret_files():
        try:
            if erase_file(path):
                erased.append(path)
        except OSError as exc:
            failed.append((path, exc.strerror or str(exc)))
    _fsync_dir(home.path)
    with contextlib.suppress(OSError):
        home.voice_notes.rmdir()
    with contextlib.suppress(OSError):
        home.path.rmdir()  # only if nothing else is in it
    return PanicReport(tuple(erased), tuple(failed), time.monotonic() - start)
