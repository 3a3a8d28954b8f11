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

Files received are erased too (see docs/security.md, "Panic"): after the home's own files
(the transfers file, which holds the files' keys, among them) come the partial files of
downloads in progress, in every downloads folder the transfers file or the home names, then
the files received that the transfers file lists as saved, wherever the folder is, and
everything else in the home's own ``downloads`` folder (received files older than that list).
Files this node sent are the person's originals and are left alone (voice notes recorded here
are in the home and go with it); so is anything else in a downloads folder chosen outside the
home. Links are unlinked, never followed.

Nothing here asks for the passphrase: panic is for when there is no time to type it.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from meshchat.files.sink import PARTIAL_DIR
from meshchat.home import Home

__all__ = ["PanicReport", "download_files", "erase_file", "erase_home"]

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


def _listing(folder: Path) -> list[Path]:
    """What is in ``folder`` besides folders (nothing if it is missing)."""
    try:
        return sorted(p for p in folder.iterdir() if p.is_symlink() or not p.is_dir())
    except OSError:
        return []


def download_files(home: Home) -> tuple[list[Path], list[Path]]:
    """The files of downloads to erase (partial ones first, then saved ones) and the folders
    to remove afterwards if empty; read from the transfers file, before it is erased."""
    folders = [home.downloads]
    saved: list[Path] = []
    try:
        data = json.loads(home.transfers.read_text())
    except (OSError, ValueError):
        data = None
    if isinstance(data, dict):
        chosen = data.get("downloads")
        if isinstance(chosen, str) and chosen and Path(chosen) != home.downloads:
            folders.append(Path(chosen))
        entries = data.get("transfers")
        for entry in entries if isinstance(entries, list) else []:
            if (
                isinstance(entry, dict)
                and entry.get("direction") == "in"
                and entry.get("state") == "done"
                and isinstance(entry.get("path"), str)
                and entry["path"]
            ):
                saved.append(Path(entry["path"]))
    files: list[Path] = []
    for folder in folders:
        files += _listing(folder / PARTIAL_DIR)
    files += [p for p in saved if p not in files]
    files += [p for p in _listing(home.downloads) if p not in files]
    return files, [*(folder / PARTIAL_DIR for folder in folders), home.downloads]


def erase_home(home: Home) -> PanicReport:
    """Erase every secret file of ``home``, the keystore first, then the downloads (see the
    module's docstring). Never asks, never waits."""
    start = time.monotonic()
    erased: list[Path] = []
    failed: list[tuple[Path, str]] = []
    downloads, folders = download_files(home)
    for path in [*home.secret_files(), *downloads]:
        try:
            if erase_file(path):
                erased.append(path)
        except OSError as exc:
            failed.append((path, exc.strerror or str(exc)))
    for folder in folders:
        with contextlib.suppress(OSError):
            folder.rmdir()  # only if nothing else is in it
    _fsync_dir(home.path)
    with contextlib.suppress(OSError):
        home.voice_notes.rmdir()
    with contextlib.suppress(OSError):
        home.path.rmdir()  # only if nothing else is in it
    return PanicReport(tuple(erased), tuple(failed), time.monotonic() - start)
