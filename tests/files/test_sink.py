"""The partial file: writing, resuming, checking, naming, and a full disk."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from files_pair import RECEIVER, Harness, make_file
from hypothesis import given, settings
from hypothesis import strategies as st

from meshchat.errors import TransferError, TransferReason
from meshchat.files import Downloads, FileKind, FileManifest, Sink, new_key, prepare_file
from meshchat.files.effects import Abandoned, Completed, KeepHashes, WriteChunk
from meshchat.files.manifest import MAX_FILE_SIZE
from meshchat.files.sink import PARTIAL_DIR, FileSource


def _pull(data: bytes, folder: Path, name: str = "data.bin") -> tuple[FileManifest, Sink, Harness]:
    """Pull ``data`` into a sink in ``folder`` (not finished)."""
    manifest, tree = make_file(data)
    manifest = FileManifest(
        manifest.kind, name, manifest.size, manifest.media_type, manifest.chunk_size,
        manifest.root, manifest.key,
    )  # fmt: skip
    h = Harness(Downloads(), data)
    h.seed("alice", manifest, tree)
    sink = Sink.open(folder, manifest)
    h.apply(RECEIVER, h.downloads.offer(manifest, "alice", 0))
    h.run()
    for effect in h.effects:
        if isinstance(effect, WriteChunk):
            sink.write(effect.offset, effect.plaintext)
        elif isinstance(effect, KeepHashes):
            sink.keep_hashes(effect.level, effect.index, effect.data)
    assert h.of(Completed)
    return manifest, sink, h


def test_nothing_has_the_final_name_until_the_file_checks(tmp_path: Path) -> None:
    data = os.urandom(100_000)
    _manifest, sink, _ = _pull(data, tmp_path, "../../.bashrc")
    assert sorted(p.name for p in tmp_path.iterdir()) == [PARTIAL_DIR]
    final = sink.finish()
    assert final == tmp_path / "bashrc"
    assert final.read_bytes() == data
    mode = final.stat().st_mode
    assert not mode & (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    assert stat.S_IMODE(mode) == 0o600
    assert list((tmp_path / PARTIAL_DIR).iterdir()) == []


def test_no_overwrite_numbered_names(tmp_path: Path) -> None:
    (tmp_path / "photo.jpg").write_bytes(b"mine")
    (tmp_path / "photo (1).jpg").write_bytes(b"mine too")
    data = os.urandom(5000)
    _, sink, _ = _pull(data, tmp_path, "photo.jpg")
    assert sink.finish() == tmp_path / "photo (2).jpg"
    assert (tmp_path / "photo.jpg").read_bytes() == b"mine"
    assert (tmp_path / "photo (2).jpg").read_bytes() == data


def test_device_and_absolute_names_land_in_the_folder(tmp_path: Path) -> None:
    for announced, expected in [("/dev/zero", "zero"), ("CON", "_CON"), ("x" * 255, None)]:
        _, sink, _ = _pull(os.urandom(100), tmp_path, announced)
        final = sink.finish()
        assert final.parent == tmp_path
        assert expected is None or final.name == expected
    assert Path("/dev/zero").is_char_device()


def test_a_file_altered_on_disk_never_gets_its_name(tmp_path: Path) -> None:
    data = os.urandom(10_000)
    _, sink, _ = _pull(data, tmp_path)
    with open(sink.data_path, "r+b") as f:
        f.seek(5000)
        f.write(b"X")
    with pytest.raises(TransferError) as caught:
        sink.finish()
    assert caught.value.reason is TransferReason.BAD_HASH
    assert sorted(p.name for p in tmp_path.iterdir()) == [PARTIAL_DIR]
    assert not sink.data_path.exists()  # erased


def test_resume_after_a_restart_from_the_partial_file(tmp_path: Path) -> None:
    data = os.urandom(120_000)
    manifest, tree = make_file(data)
    h = Harness(Downloads(), data)
    h.seed("alice", manifest, tree)
    h.tamper["alice"] = lambda p: None if p.level == 0 and p.index % 3 == 0 else p
    sink = Sink.open(tmp_path, manifest)
    h.apply(RECEIVER, h.downloads.offer(manifest, "alice", 0))
    h.run()
    for effect in h.effects:
        if isinstance(effect, WriteChunk):
            sink.write(effect.offset, effect.plaintext)
        elif isinstance(effect, KeepHashes):
            sink.keep_hashes(effect.level, effect.index, effect.data)
    sink.close()
    # the process dies here; a new one opens the same partial file
    sink = Sink.open(tmp_path, manifest)
    downloads = Downloads()
    downloads.resume(manifest, sink.held_hash_pieces(), sink.held_chunks(), 0)
    download = downloads.get(manifest.root)
    assert download is not None
    assert download.chunks_held == len(h.written)  # every one checked again
    h2 = Harness(downloads, data)
    h2.seed("alice", manifest, tree)
    h2.apply(RECEIVER, downloads.offer(manifest, "alice", 0))
    h2.run()
    pulled = sorted(e.index for e in h2.of(WriteChunk))  # type: ignore[attr-defined]
    assert pulled == [i for i in range(manifest.chunk_count) if i not in h.written]
    assert 0 in pulled and 1 not in pulled
    for effect in h2.of(WriteChunk):
        sink.write(effect.offset, effect.plaintext)  # type: ignore[attr-defined]
    assert sink.finish().read_bytes() == data


def test_a_torn_hashes_record_is_ignored(tmp_path: Path) -> None:
    data = os.urandom(100_000)
    _manifest, sink, h = _pull(data, tmp_path)
    with open(sink.hashes_path, "ab") as f:
        f.write(b"\x01\x00\x00\x00\x07\x06\x00")  # a record cut short
    assert list(sink.held_hash_pieces()) == h.hashes


def test_abandoned_partial_data_is_erased(tmp_path: Path) -> None:
    data = os.urandom(50_000)
    manifest, tree = make_file(data)
    h = Harness(Downloads(), data)
    h.seed("alice", manifest, tree)
    h.tamper["alice"] = lambda p: None if p.level == 0 and p.index > 10 else p
    sink = Sink.open(tmp_path, manifest)
    h.apply(RECEIVER, h.downloads.offer(manifest, "alice", 0))
    h.run()
    for effect in h.of(WriteChunk):
        sink.write(effect.offset, effect.plaintext)  # type: ignore[attr-defined]
    assert sink.data_path.stat().st_size > 0
    h.tick(Downloads().limits.idle_ms)
    assert h.of(Abandoned) == [Abandoned(manifest.root, TransferReason.EXPIRED)]
    sink.erase()
    assert list((tmp_path / PARTIAL_DIR).iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == [PARTIAL_DIR]


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs (the tests run as root, as the namespace tests do)."""
    mount = tmp_path / f"disk-{uuid.uuid4().hex[:8]}"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def _write_all(manifest: FileManifest, sink: Sink, h: Harness) -> TransferError:
    for effect in h.of(WriteChunk):
        try:
            sink.write(effect.offset, effect.plaintext)  # type: ignore[attr-defined]
        except TransferError as exc:
            return exc
    raise AssertionError("the disk never filled")


def test_disk_full_gives_a_typed_error_and_nothing_corrupt(tiny_disk: Path) -> None:
    data = os.urandom(200_000)
    manifest, tree = make_file(data)
    h = Harness(Downloads(), data)
    h.seed("alice", manifest, tree)
    h.apply(RECEIVER, h.downloads.offer(manifest, "alice", 0))
    h.run()
    sink = Sink.open(tiny_disk, manifest)
    error = _write_all(manifest, sink, h)
    assert error.reason is TransferReason.NO_SPACE
    assert error.root == manifest.root and "cannot write a chunk" in str(error)
    assert isinstance(error.__cause__, OSError)
    # what the partial file holds is exactly what checks (a torn chunk does not)
    downloads = Downloads()
    downloads.resume(manifest, h.hashes, sink.held_chunks(), 0)
    download = downloads.get(manifest.root)
    assert download is not None and 0 < download.chunks_held < manifest.chunk_count
    for index in range(manifest.chunk_count):
        if download.holds(0, index):
            start = index * manifest.chunk_size
            assert h.written[index] == data[start : start + manifest.chunk_size]
    assert sorted(p.name for p in tiny_disk.iterdir()) == [PARTIAL_DIR]
    sink.erase()  # frees the space
    assert list((tiny_disk / PARTIAL_DIR).iterdir()) == []


def test_a_file_size_limit_gives_the_same_error(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import os, resource, signal, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from files_pair import RECEIVER, Harness, make_file
        from meshchat.errors import TransferError
        from meshchat.files import Downloads, Sink
        from meshchat.files.effects import WriteChunk
        data = os.urandom(100_000)
        manifest, tree = make_file(data)
        h = Harness(Downloads(), data)
        h.seed("alice", manifest, tree)
        h.apply(RECEIVER, h.downloads.offer(manifest, "alice", 0))
        h.run()
        sink = Sink.open({str(tmp_path)!r}, manifest)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))
        try:
            for e in h.of(WriteChunk):
                sink.write(e.offset, e.plaintext)
        except TransferError as exc:
            print(exc.reason.name)
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.strip() == "NO_SPACE", out.stderr


def test_serving_reads_the_file_and_notices_a_change(tmp_path: Path) -> None:
    from meshchat.files import Seeder, SentFile

    path = tmp_path / "send me.png"
    data = os.urandom(4000)
    path.write_bytes(data)
    manifest, tree = prepare_file(path, kind=FileKind.IMAGE, media_type="image/png", key=new_key())
    assert manifest.name == "send me.png" and manifest.size == 4000
    seeder = Seeder(0)
    seeder.add(SentFile(manifest, tree))
    source = FileSource(path, manifest)
    piece = seeder.seal(manifest.root, 1, source.read(1))
    assert piece.index == 1
    with open(path, "r+b") as f:
        f.write(b"\x00" if data[0] else b"\x01")  # changed in place
    with pytest.raises(TransferError) as caught:
        seeder.seal(manifest.root, 0, source.read(0))
    assert caught.value.reason is TransferReason.CHANGED
    source.close()
    path.unlink()
    with pytest.raises(TransferError) as caught:
        source.read(0)
    assert caught.value.reason is TransferReason.IO


def test_prepare_file_refusals(tmp_path: Path) -> None:
    with pytest.raises(TransferError) as caught:
        prepare_file(tmp_path / "absent", kind=FileKind.FILE, media_type="a/b", key=new_key())
    assert caught.value.reason is TransferReason.IO
    huge = tmp_path / "huge"
    with open(huge, "wb") as f:
        f.truncate(MAX_FILE_SIZE + 1)  # sparse
    with pytest.raises(TransferError) as caught:
        prepare_file(huge, kind=FileKind.FILE, media_type="a/b", key=new_key())
    assert caught.value.reason is TransferReason.TOO_LARGE
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    manifest, _ = prepare_file(empty, kind=FileKind.FILE, media_type="a/b", key=new_key())
    assert manifest.size == 0 and manifest.chunk_count == 1


def test_without_hard_links_the_name_is_reserved_then_renamed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # FAT (memory cards) has no hard links; no such file system can be made here, so link()
    # fails as it does there
    import errno

    def no_links(src: object, dst: object) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    (tmp_path / "song.ogg").write_bytes(b"mine")
    data = os.urandom(3000)
    _, sink, _ = _pull(data, tmp_path, "song.ogg")
    monkeypatch.setattr(os, "link", no_links)
    final = sink.finish()
    assert final == tmp_path / "song (1).ogg"
    assert final.read_bytes() == data and (tmp_path / "song.ogg").read_bytes() == b"mine"
    assert stat.S_IMODE(final.stat().st_mode) == 0o600
    assert list((tmp_path / PARTIAL_DIR).iterdir()) == []


@settings(max_examples=200, deadline=None)
@given(junk=st.binary(max_size=3000))
def test_any_hashes_file_is_read_without_error_and_taken_only_where_it_checks(
    junk: bytes,
) -> None:
    import tempfile

    data = bytes(range(256)) * 300  # 77 kB: 51 chunks, one level of hash pieces
    manifest, _ = make_file(data)
    with tempfile.TemporaryDirectory() as tmp:
        sink = Sink.open(tmp, manifest)
        sink.hashes_path.write_bytes(junk)
        sink.write(0, data[:1536])
        records = list(sink.held_hash_pieces())
        assert sum(7 + len(r[2]) for r in records) <= len(junk)
        downloads = Downloads()
        downloads.resume(manifest, records, sink.held_chunks(), 0)
        download = downloads.get(manifest.root)
        assert download is not None and download.chunks_held == 0  # nothing checkable
        sink.erase()
