"""The receiver's state machine against real seeders, through the wire encoding."""

from __future__ import annotations

import os
import tracemalloc
from dataclasses import replace

import pytest
from files_pair import RECEIVER, Harness, make_file
from hypothesis import given, settings
from hypothesis import strategies as st

from meshchat.errors import TransferError, TransferReason
from meshchat.files import Download, Downloads, Limits
from meshchat.files.chunks import seal_chunk
from meshchat.files.effects import (
    Abandoned,
    Completed,
    Dropped,
    KeepHashes,
    SendRequest,
    WriteChunk,
)
from meshchat.files.tree import FANOUT
from meshchat.files.wire import Missing, Piece


def _flip(piece: Piece) -> Piece:
    data = bytearray(piece.data)
    data[0] ^= 1
    return replace(piece, data=bytes(data))


def test_a_file_arrives_whole_and_in_order_of_checking() -> None:
    data = os.urandom(200_000)
    manifest, tree = make_file(data)
    h = Harness(Downloads(), data)
    h.seed("alice", manifest, tree)
    h.apply(RECEIVER, h.downloads.offer(manifest, "alice", 0))
    h.run()
    assert h.assembled() == data
    assert len(h.of(Completed)) == 1
    assert not h.of(Dropped)
    # 131 chunks: one hash piece under the root (48-way runs: 3 of them), pulled first
    assert [(lv, i) for lv, i, _ in h.hashes] == [(2, 0), (1, 0), (1, 1), (1, 2)]
    assert h.max_in_flight <= Limits().window
    assert h.downloads.finished(manifest.root) and len(h.downloads) == 0


@settings(max_examples=25, deadline=None)
@given(
    size=st.integers(0, 40 * 1536),
    chunk_size=st.sampled_from([256, 512, 1536]),
    window=st.integers(1, 40),
    per_source=st.integers(1, 20),
)
def test_any_size_completes_within_the_window(
    size: int, chunk_size: int, window: int, per_source: int
) -> None:
    data = os.urandom(size)
    manifest, tree = make_file(data, chunk_size)
    limits = Limits(window=window, per_source=per_source)
    h = Harness(Downloads(limits), data)
    h.seed("alice", manifest, tree)
    h.seed("bob", manifest, tree)
    h.apply(RECEIVER, h.downloads.offer(manifest, "alice", 0))
    h.apply(RECEIVER, h.downloads.offer(manifest, "bob", 0))
    h.run()
    assert h.assembled() == data
    assert h.max_in_flight <= window
    assert len(h.of(Completed)) == 1


def test_a_chunk_that_fails_its_hash_is_dropped_and_its_source_struck_out() -> None:
    data = os.urandom(100_000)
    manifest, tree = make_file(data)
    h = Harness(Downloads(), data)
    h.seed("honest", manifest, tree)
    h.seed("liar", manifest, tree)
    h.tamper["liar"] = lambda p: _flip(p) if p.level == 0 else p
    h.apply(RECEIVER, h.downloads.offer(manifest, "liar", 0))
    h.apply(RECEIVER, h.downloads.offer(manifest, "honest", 0))
    h.run()
    bad = [e for e in h.of(Dropped) if e.reason is TransferReason.BAD_HASH]  # type: ignore[attr-defined]
    assert bad and all(e.peer == "liar" for e in bad)  # type: ignore[attr-defined]
    assert len(bad) >= Limits().max_strikes
    # struck out at the third: never asked again (what it had sent already still arrives)
    # (by identity: the Dropped effects of one peer and root are all equal)
    third = next(i for i, e in enumerate(h.effects) if e is bad[Limits().max_strikes - 1])
    later = h.effects[third:]
    assert not [e for e in later if isinstance(e, SendRequest) and e.peer == "liar"]
    assert [e for e in later if isinstance(e, SendRequest) and e.peer == "honest"]
    assert h.assembled() == data


def test_a_forged_hash_piece_is_refused() -> None:
    data = os.urandom(50_000)
    manifest, tree = make_file(data)
    download = Download(manifest, 0)
    download.add_source("p", 0)
    run = bytearray(tree.hash_piece(1, 0))
    run[5] ^= 0x80
    out = download.receive("p", Piece(manifest.root, 1, 0, bytes(run)), 0)
    assert out == [Dropped("p", TransferReason.BAD_HASH, manifest.root)]
    # a chunk before its hash piece cannot be checked: not wanted yet
    chunk = Piece(manifest.root, 0, 0, os.urandom(100))
    assert download.receive("p", chunk, 0)[0].reason is TransferReason.NOT_WANTED  # type: ignore[union-attr]


def test_a_chunk_for_an_unknown_transfer_is_dropped() -> None:
    downloads = Downloads()
    piece = Piece(os.urandom(32), 0, 0, b"x" * 100)
    assert downloads.receive("p", piece, 0) == [
        Dropped("p", TransferReason.UNKNOWN_TRANSFER, piece.root)
    ]
    assert downloads.receive("p", Missing(piece.root, 0, (1,)), 0)[0].reason is (  # type: ignore[union-attr]
        TransferReason.UNKNOWN_TRANSFER
    )


def test_an_announcement_heard_twice_is_one_download_with_two_sources() -> None:
    data = os.urandom(50_000)
    manifest, _ = make_file(data)
    downloads = Downloads()
    first = downloads.offer(manifest, "alice", 0)
    second = downloads.offer(manifest, "bob", 0)
    assert len(downloads) == 1
    assert [type(e) for e in first] == [SendRequest]  # the top hash piece, from alice
    assert second == []  # nothing else is checkable until it arrives
    download = downloads.get(manifest.root)
    assert download is not None and download.sources == ("alice", "bob")


def test_a_finished_file_is_not_pulled_again() -> None:
    data = os.urandom(5000)
    manifest, tree = make_file(data)
    h = Harness(Downloads(), data)
    h.seed("alice", manifest, tree)
    h.apply(RECEIVER, h.downloads.offer(manifest, "alice", 0))
    h.run()
    assert h.downloads.offer(manifest, "bob", 10) == []
    assert len(h.downloads) == 0


def test_a_transfer_that_never_completes_expires() -> None:
    data = os.urandom(50_000)
    manifest, tree = make_file(data)
    limits = Limits(idle_ms=60_000, request_timeout_ms=5_000)
    h = Harness(Downloads(limits), data)
    h.seed("alice", manifest, tree)
    h.tamper["alice"] = lambda p: p if p.level else None  # hashes, but never a chunk
    h.apply(RECEIVER, h.downloads.offer(manifest, "alice", 0))
    h.run()
    for _ in range(11):
        h.tick(5_000)
        h.run()
    assert not h.of(Abandoned)
    requests_before = len(h.of(SendRequest))
    h.tick(6_000)  # 61 s without a piece
    assert h.of(Abandoned) == [Abandoned(manifest.root, TransferReason.EXPIRED)]
    assert len(h.downloads) == 0
    assert not h.of(Completed)
    h.tick(5_000)
    assert len(h.of(SendRequest)) == requests_before  # nothing asked any more


def test_lifetime_bounds_even_a_slowly_progressing_transfer() -> None:
    data = os.urandom(30_000)
    manifest, _ = make_file(data)
    download = Download(manifest, 0, Limits(lifetime_ms=10_000))
    download.add_source("p", 0)
    assert download.tick(9_999) != [Abandoned(manifest.root, TransferReason.EXPIRED)]
    assert download.tick(10_000) == [Abandoned(manifest.root, TransferReason.EXPIRED)]
    assert download.done


def test_late_pieces_are_asked_for_again_from_the_other_source() -> None:
    data = os.urandom(20_000)
    manifest, tree = make_file(data)
    limits = Limits(request_timeout_ms=1_000)
    h = Harness(Downloads(limits), data)
    h.seed("slow", manifest, tree)
    h.seed("fast", manifest, tree)
    h.tamper["slow"] = lambda p: None  # never answers
    h.apply(RECEIVER, h.downloads.offer(manifest, "slow", 0))
    h.apply(RECEIVER, h.downloads.offer(manifest, "fast", 0))
    for _ in range(20):
        h.run()
        h.tick(1_000)
    assert h.assembled() == data


def test_a_missing_answer_sends_the_request_elsewhere() -> None:
    data = os.urandom(20_000)
    manifest, tree = make_file(data)
    downloads = Downloads()
    downloads.offer(manifest, "a", 0)
    downloads.offer(manifest, "b", 0)
    top = Piece(manifest.root, 1, 0, tree.hash_piece(1, 0))
    asked = downloads.receive("a", top, 0)
    wanted_from_a = [
        i for e in asked if isinstance(e, SendRequest) and e.peer == "a" for i in e.body.indices
    ]
    assert wanted_from_a
    again = downloads.receive("a", Missing(manifest.root, 0, tuple(wanted_from_a)), 0)
    moved = [i for e in again if isinstance(e, SendRequest) for i in e.body.indices]
    assert sorted(moved) == sorted(wanted_from_a)
    assert all(e.peer == "b" for e in again if isinstance(e, SendRequest))


def test_resume_pulls_only_what_was_not_held() -> None:
    data = os.urandom(150_000)
    manifest, tree = make_file(data)
    h = Harness(Downloads(), data)
    h.seed("alice", manifest, tree)
    dropped_after = 60
    h.tamper["alice"] = lambda p: None if p.level == 0 and p.index >= dropped_after else p
    h.apply(RECEIVER, h.downloads.offer(manifest, "alice", 0))
    h.run()
    held = dict(h.written)
    assert len(held) == dropped_after
    # a restart: a new receiver from what the sink kept (one chunk damaged on disk)
    held[3] = bytes(len(held[3]))
    h2 = Harness(Downloads(), data)
    h2.seed("alice", manifest, tree)
    assert h2.downloads.resume(manifest, h.hashes, held.items(), 0) == []
    download = h2.downloads.get(manifest.root)
    assert download is not None and download.chunks_held == dropped_after - 1
    h2.apply(RECEIVER, h2.downloads.offer(manifest, "alice", 0))
    h2.run()
    pulled = sorted(e.index for e in h2.of(WriteChunk))  # type: ignore[attr-defined]
    assert pulled == [3, *range(dropped_after, manifest.chunk_count)]
    assert not h2.of(KeepHashes)  # the hash pieces came back from the sink
    whole = {**{i: held[i] for i in held if i != 3}, **h2.written}
    assert b"".join(whole[i] for i in sorted(whole)) == data


def test_resume_of_everything_completes_at_once() -> None:
    data = os.urandom(80_000)
    manifest, tree = make_file(data)
    h = Harness(Downloads(), data)
    h.seed("alice", manifest, tree)
    h.apply(RECEIVER, h.downloads.offer(manifest, "alice", 0))
    h.run()
    downloads = Downloads()
    # without the hash pieces nothing can be checked: nothing is taken back
    assert downloads.resume(manifest, [], h.written.items(), 0) == []
    assert downloads.get(manifest.root).chunks_held == 0  # type: ignore[union-attr]
    downloads = Downloads()
    assert downloads.resume(manifest, h.hashes, h.written.items(), 0) == [Completed(manifest.root)]
    assert downloads.finished(manifest.root) and len(downloads) == 0


def test_a_chunk_under_the_wrong_key_abandons_the_download() -> None:
    data = os.urandom(10_000)
    manifest, tree = make_file(data)
    wrong = replace(manifest, key=os.urandom(32))
    h = Harness(Downloads(), data)
    h.seed("alice", manifest, tree)
    h.apply(RECEIVER, h.downloads.offer(wrong, "alice", 0))
    h.run()
    assert h.of(Abandoned) == [Abandoned(manifest.root, TransferReason.BAD_KEY)]
    assert not h.written


def test_downloads_are_bounded() -> None:
    downloads = Downloads(Limits(max_active=2))
    for _ in range(2):
        downloads.offer(make_file(os.urandom(100))[0], "p", 0)
    with pytest.raises(TransferError) as caught:
        downloads.offer(make_file(os.urandom(100))[0], "p", 0)
    assert caught.value.reason is TransferReason.TOO_LARGE


def test_sources_are_bounded() -> None:
    manifest, _ = make_file(os.urandom(100_000))
    download = Download(manifest, 0, Limits(max_sources=3))
    for n in range(10):
        download.add_source(f"p{n}", 0)
    assert download.sources == ("p0", "p1", "p2")


def test_flood_of_unwanted_pieces_keeps_state_bounded() -> None:
    data = os.urandom(FANOUT * 1536 * 2)
    manifest, _tree = make_file(data)
    download = Download(manifest, 0)
    download.add_source("p", 0)
    for n in range(5_000):
        download.receive("p", Piece(manifest.root, 0, n % manifest.chunk_count, b"x" * 64), n)
        download.missing("p", Missing(manifest.root, 0, tuple(range(n % 90, n % 90 + 32))), n)
    assert download.in_flight <= Limits().window
    assert len(download._retry) <= Limits().window + 32
    assert len(download._stalled) <= Limits().window


@pytest.mark.parametrize("limits", [{"window": 0}, {"idle_ms": -1}, {"per_source": 1.5}])
def test_limits_refuse_nonsense(limits: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Limits(**limits)  # type: ignore[arg-type]


def test_a_source_that_never_answers_is_asked_one_piece_at_a_time() -> None:
    data = os.urandom(300_000)
    manifest, tree = make_file(data)
    limits = Limits(request_timeout_ms=1_000)
    h = Harness(Downloads(limits), data)
    h.seed("mute", manifest, tree)
    h.seed("alice", manifest, tree)
    h.tamper["mute"] = lambda p: None
    h.tamper["alice"] = lambda p: p if h.now_ms > 500 or p.level else None  # slow start
    h.apply(RECEIVER, h.downloads.offer(manifest, "mute", 0))
    h.apply(RECEIVER, h.downloads.offer(manifest, "alice", 0))
    ticks = 0
    while not h.of(Completed) and ticks < 100:
        h.run()
        h.tick(1_000)
        ticks += 1
    assert h.assembled() == data
    asked = [len(e.body.indices) for e in h.of(SendRequest) if e.peer == "mute"]  # type: ignore[attr-defined]
    # once a window's worth of its requests timed out, it is probed one piece per timeout
    assert sum(asked) <= 2 * Limits().per_source + ticks
    assert len(asked) >= 5 and asked[-3:] == [1, 1, 1]


def test_the_trees_of_all_downloads_are_bounded() -> None:
    from meshchat.files.manifest import FileKind, FileManifest
    from meshchat.files.transfer import tree_bytes

    def big(n: int) -> FileManifest:
        return FileManifest(FileKind.FILE, "big", 1 << 30, "a/b", 1024, bytes([n]) * 32, bytes(32))

    per_file = tree_bytes(big(0).chunk_count)
    assert 33 << 20 < per_file < 35 << 20  # 1 GiB: 2^20 chunks of 32-byte leaves, 1 byte each
    downloads = Downloads(Limits(max_tree_bytes=3 * per_file))
    for n in range(3):
        downloads.offer(big(n), "p", 0)
    with pytest.raises(TransferError) as caught:
        downloads.offer(big(3), "p", 0)
    assert caught.value.reason is TransferReason.TOO_LARGE
    tracemalloc.start()
    real = Download(big(9), 0)
    allocated = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert real.tree_bytes == per_file
    assert per_file <= allocated < per_file + (64 << 10)  # the estimate is what is held


def test_ask_again_asks_at_once_for_what_is_in_flight() -> None:
    data = os.urandom(60_000)
    manifest, tree = make_file(data)
    h = Harness(Downloads(Limits(request_timeout_ms=15_000)), data)
    h.seed("alice", manifest, tree)
    cut = True
    h.tamper["alice"] = lambda p: None if cut else p
    h.apply(RECEIVER, h.downloads.offer(manifest, "alice", 0))
    h.run()
    assert not h.of(Completed)
    cut = False  # the path is back, long before the 15 s timeout
    h.apply(RECEIVER, h.downloads.ask_again(h.now_ms))
    h.run()
    assert h.assembled() == data and h.now_ms < 15_000


def test_a_chunk_that_fails_its_hash_is_asked_for_again_elsewhere_at_once() -> None:
    # a malicious member serves a corrupted chunk: the very next requests ask the honest
    # source for it (no waiting for the request timeout), and the download completes
    data = os.urandom(20_000)
    manifest, tree = make_file(data)
    downloads = Downloads()
    downloads.offer(manifest, "liar", 0)
    downloads.offer(manifest, "honest", 0)
    top = Piece(manifest.root, 1, 0, tree.hash_piece(1, 0))
    asked = downloads.receive("honest", top, 0)
    from_liar = [
        i for e in asked if isinstance(e, SendRequest) and e.peer == "liar" for i in e.body.indices
    ]
    assert from_liar
    index = from_liar[0]
    size = manifest.chunk_size
    sealed = seal_chunk(
        manifest.key, index, manifest.chunk_count, data[index * size : (index + 1) * size]
    )
    bad = _flip(Piece(manifest.root, 0, index, sealed))
    again = downloads.receive("liar", bad, 1)
    assert any(isinstance(e, Dropped) and e.reason is TransferReason.BAD_HASH for e in again)
    moved = [(e.peer, i) for e in again if isinstance(e, SendRequest) for i in e.body.indices]
    assert ("honest", index) in moved


def test_pieces_in_flight_to_a_silent_source_move_to_one_that_answers() -> None:
    # the sender went offline: while another member answers, what was asked of the sender
    # is asked of the member after ``hedge_ms``, not after the whole request timeout
    data = os.urandom(60_000)
    manifest, tree = make_file(data)
    limits = Limits(request_timeout_ms=15_000, hedge_ms=1_000)
    h = Harness(Downloads(limits), data)
    h.seed("gone", manifest, tree)
    h.seed("member", manifest, tree)
    h.tamper["gone"] = lambda p: None
    h.apply(RECEIVER, h.downloads.offer(manifest, "gone", 0))
    h.apply(RECEIVER, h.downloads.offer(manifest, "member", 0))
    for _ in range(8):
        h.run()
        h.tick(500)
        if h.of(Completed):
            break
    assert h.assembled() == data
    assert h.now_ms < limits.request_timeout_ms
