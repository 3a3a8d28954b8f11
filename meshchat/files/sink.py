"""The file system side of a transfer: the partial file a download writes, and the file a
sender serves from. The rest of :mod:`meshchat.files` touches no file.

A download writes into ``DOWNLOADS/.meshchat-partial/`` (mode 0700), under names made from the
root hash (never from the sender's name):

* ``ROOT.part``: the plaintext, each chunk at ``index * chunk_size`` (a sparse file until
  complete), mode 0600;
* ``ROOT.hashes``: the checked hash pieces, appended as records
  ``level (1 byte) || index (4) || length (2) || run``.

Neither is trusted after a restart: :meth:`Sink.held_hash_pieces` and :meth:`Sink.held_chunks`
hand their contents to :meth:`meshchat.files.transfer.Download.restore`, which checks every
hash piece against the root and every chunk against its leaf, so a chunk half-written when the
process died (or the disk filled) is simply pulled again. :meth:`Sink.finish` checks the whole
file against the root once more, and its first bytes against the announced media type, and only
then links it under its final name: the sender's name
made safe (:func:`~meshchat.files.names.safe_name`), numbered if taken (``photo (1).jpg``), never
replacing a file. A full disk (or a file-size limit) raises :class:`TransferError` with reason
``NO_SPACE``; other failures ``IO``; neither leaves anything under the final name.
"""

from __future__ import annotations

import errno
import os
import struct
from collections.abc import Iterator
from pathlib import Path

from meshchat.errors import TransferError, TransferReason
from meshchat.files.chunks import prepare, seal_chunk
from meshchat.files.manifest import DEFAULT_CHUNK_SIZE, MAX_FILE_SIZE, FileKind, FileManifest
from meshchat.files.media import HEAD_BYTES, check_media
from meshchat.files.names import numbered, safe_name
from meshchat.files.tree import HashTree, leaf_hash

__all__ = ["PARTIAL_DIR", "FileSource", "Sink", "prepare_file"]

PARTIAL_DIR = ".meshchat-partial"
_RECORD = struct.Struct(">BIH")
_NO_SPACE = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT})
_MAX_NUMBER = 999
#: errno values of a file system that has no hard links
_NO_LINKS = frozenset({errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS})


def _error(exc: OSError, what: str, root: bytes | None, path: Path | str) -> TransferError:
    reason = TransferReason.NO_SPACE if exc.errno in _NO_SPACE else TransferReason.IO
    detail = f"{what}: {exc.strerror or exc}"
    return TransferError(reason, detail, root=root, path=str(path))


class Sink:
    """One download's partial file in ``folder``. Open with :meth:`open`."""

    def __init__(self, folder: Path, manifest: FileManifest, fd: int) -> None:
        self.folder = folder
        self.manifest = manifest
        self.root = manifest.root
        partial = folder / PARTIAL_DIR
        self.data_path = partial / f"{self.root.hex()}.part"
        self.hashes_path = partial / f"{self.root.hex()}.hashes"
        self._fd: int | None = fd

    @classmethod
    def open(cls, folder: Path | str, manifest: FileManifest) -> Sink:
        """The partial file of ``manifest`` in ``folder`` (created, or kept from before)."""
        folder = Path(folder)
        partial = folder / PARTIAL_DIR
        path = partial / f"{manifest.root.hex()}.part"
        try:
            partial.mkdir(mode=0o700, parents=True, exist_ok=True)
            flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
            fd = os.open(path, flags, 0o600)
        except OSError as exc:
            raise _error(exc, "cannot open the partial file", manifest.root, path) from exc
        return cls(folder, manifest, fd)

    def _fileno(self) -> int:
        if self._fd is None:
            raise TransferError(TransferReason.IO, "sink closed", root=self.root)
        return self._fd

    def write(self, offset: int, plaintext: bytes) -> None:
        """Write a checked chunk at ``offset``."""
        fd = self._fileno()
        if offset < 0 or offset + len(plaintext) > self.manifest.size:
            raise TransferError(TransferReason.IO, "write outside the file", root=self.root)
        view = memoryview(plaintext)
        try:
            while view:
                written = os.pwrite(fd, view, offset)
                view = view[written:]
                offset += written
        except OSError as exc:
            raise _error(exc, "cannot write a chunk", self.root, self.data_path) from exc

    def read(self, index: int) -> bytes:
        """Plaintext chunk ``index`` as written (to serve a held chunk to another member)."""
        fd = self._fileno()
        offset = index * self.manifest.chunk_size
        try:
            return os.pread(fd, self.manifest.chunk_length(index), offset)
        except OSError as exc:
            raise _error(exc, "cannot read the partial file", self.root, self.data_path) from exc

    def keep_hashes(self, level: int, index: int, data: bytes) -> None:
        """Keep a checked hash piece for a restart."""
        record = _RECORD.pack(level, index, len(data)) + data
        try:
            with self.hashes_path.open("ab") as out:
                out.write(record)
        except OSError as exc:
            raise _error(exc, "cannot keep hashes", self.root, self.hashes_path) from exc

    def held_hash_pieces(self) -> Iterator[tuple[int, int, bytes]]:
        """The hash pieces kept before (unchecked; a torn last record is left out)."""
        try:
            blob = self.hashes_path.read_bytes()
        except FileNotFoundError:
            return
        except OSError as exc:
            raise _error(exc, "cannot read hashes", self.root, self.hashes_path) from exc
        pos = 0
        while pos + _RECORD.size <= len(blob):
            level, index, size = _RECORD.unpack_from(blob, pos)
            pos += _RECORD.size
            if pos + size > len(blob):
                return
            yield level, index, blob[pos : pos + size]
            pos += size

    def held_chunks(self) -> Iterator[tuple[int, bytes]]:
        """Every chunk the partial file has bytes for (unchecked; zeros where never written)."""
        fd = self._fileno()
        manifest = self.manifest
        try:
            length = os.fstat(fd).st_size
            for index in range(manifest.chunk_count):
                offset = index * manifest.chunk_size
                size = manifest.chunk_length(index)
                if offset + size > length:
                    break
                yield index, os.pread(fd, size, offset)
        except OSError as exc:
            raise _error(exc, "cannot read the partial file", self.root, self.data_path) from exc

    def finish(self) -> Path:
        """Check the whole file against the root, then give it its final name; returns it.

        Raises :class:`TransferError`: ``BAD_HASH`` if the file on disk is not the announced
        one, ``BAD_MEDIA`` if its bytes are not of the announced media type
        (:func:`~meshchat.files.media.check_media`; in both cases the partial data is
        erased), ``NO_SPACE`` / ``IO`` if the disk fails,
        ``BAD_NAME`` if every numbered name is taken.
        """
        fd = self._fileno()
        manifest = self.manifest
        count = manifest.chunk_count
        try:
            os.fsync(fd)
            leaves = (
                leaf_hash(seal_chunk(manifest.key, index, count, plain))
                for index, plain in self._all_chunks(fd)
            )
            root = HashTree(leaves).root
        except OSError as exc:
            raise _error(exc, "cannot check the file", self.root, self.data_path) from exc
        except ValueError as exc:
            root = b""
            self._mismatch(exc)
        if root != self.root:
            self._mismatch(None)
        try:
            check_media(manifest.kind, manifest.media_type, os.pread(fd, HEAD_BYTES, 0))
        except TransferError as exc:
            self.erase()
            raise TransferError(exc.reason, exc.detail, root=self.root) from exc
        except OSError as exc:
            raise _error(exc, "cannot check the file", self.root, self.data_path) from exc
        final = self._place()
        self.close()
        self.hashes_path.unlink(missing_ok=True)
        return final

    def _all_chunks(self, fd: int) -> Iterator[tuple[int, bytes]]:
        manifest = self.manifest
        if os.fstat(fd).st_size != manifest.size:
            raise ValueError("the partial file has the wrong length")
        for index in range(manifest.chunk_count):
            size = manifest.chunk_length(index)
            yield index, os.pread(fd, size, index * manifest.chunk_size)

    def _mismatch(self, cause: Exception | None) -> None:
        self.erase()
        error = TransferError(
            TransferReason.BAD_HASH, "the file on disk is not the announced one", root=self.root
        )
        raise error from cause

    def _place(self) -> Path:
        """Link the partial file under the first free numbered safe name; unlink the old.

        A hard link never replaces a file (it fails if the name exists). On a file system
        without hard links (FAT on a memory card), the name is reserved by creating it
        exclusively, then the partial file is renamed over that empty reservation.
        """
        name = safe_name(self.manifest.name)
        for number in range(_MAX_NUMBER + 1):
            final = self.folder / numbered(name, number)
            try:
                os.link(self.data_path, final)
            except FileExistsError:
                continue
            except OSError as exc:
                if exc.errno not in _NO_LINKS:
                    raise _error(exc, "cannot name the file", self.root, final) from exc
                if not self._reserve(final):
                    continue
                try:
                    os.replace(self.data_path, final)
                except OSError as exc2:
                    final.unlink(missing_ok=True)
                    raise _error(exc2, "cannot name the file", self.root, final) from exc2
                return final
            self.data_path.unlink()
            return final
        raise TransferError(
            TransferReason.BAD_NAME, f"{_MAX_NUMBER + 1} names taken", root=self.root, path=name
        )

    def _reserve(self, final: Path) -> bool:
        """Create ``final`` empty and exclusively; False if the name is taken."""
        try:
            fd = os.open(final, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return False
        except OSError as exc:
            raise _error(exc, "cannot name the file", self.root, final) from exc
        os.close(fd)
        return True

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def erase(self) -> None:
        """Remove the partial data (an abandoned or failed download)."""
        self.close()
        for path in (self.data_path, self.hashes_path):
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:
                raise _error(exc, "cannot erase partial data", self.root, path) from exc


class FileSource:
    """A file being served: reads plaintext chunks of it (the caller seals them). The file
    stays open until :meth:`close`, so a file replaced under the same name is still read."""

    def __init__(self, path: Path | str, manifest: FileManifest) -> None:
        self.path = Path(path)
        self.manifest = manifest
        self._fd: int | None = None

    def read(self, index: int) -> bytes:
        """Plaintext chunk ``index`` as the file holds it now."""
        size = self.manifest.chunk_length(index)
        try:
            if self._fd is None:
                self._fd = os.open(self.path, os.O_RDONLY)
            return os.pread(self._fd, size, index * self.manifest.chunk_size)
        except OSError as exc:
            raise _error(exc, "cannot read the file", self.manifest.root, self.path) from exc

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def prepare_file(
    path: Path | str,
    *,
    kind: FileKind,
    media_type: str,
    key: bytes,
    name: str | None = None,
    caption: str = "",
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> tuple[FileManifest, HashTree]:
    """Read the file at ``path`` once, seal its chunks and build the announcement and tree.

    Raises :class:`TransferError`: ``IO`` if it cannot be read, ``TOO_LARGE`` if it is over
    :data:`~meshchat.files.manifest.MAX_FILE_SIZE`, ``CHANGED`` if it changes size while
    read; :class:`~meshchat.errors.PacketError` if the announcement would be refused (a
    media type that is not ``type/subtype``, a name over 255 bytes).
    """
    path = Path(path)
    try:
        with path.open("rb") as source:
            size = os.fstat(source.fileno()).st_size
            if size > MAX_FILE_SIZE:
                raise TransferError(
                    TransferReason.TOO_LARGE, f"{size} bytes > {MAX_FILE_SIZE}", path=str(path)
                )
            chunks = iter(lambda: source.read(chunk_size), b"") if size else iter([b""])
            return prepare(
                chunks,
                kind=kind,
                name=name or path.name,
                size=size,
                media_type=media_type,
                key=key,
                chunk_size=chunk_size,
                caption=caption,
            )
    except OSError as exc:
        raise _error(exc, "cannot read the file", None, path) from exc
    except ValueError as exc:
        raise TransferError(TransferReason.CHANGED, str(exc), path=str(path)) from exc
