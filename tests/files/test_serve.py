"""The sender's side: answers, bounds, and 100,000 requests from one peer."""

from __future__ import annotations

import os
import tracemalloc

import pytest
from files_pair import make_file

from meshchat.errors import TransferError, TransferReason
from meshchat.files import Download, Seeder, SentFile, ServeLimits
from meshchat.files.effects import Dropped, SendMissing, SendPiece, ServeChunk
from meshchat.files.wire import Missing, Piece, Request


def _seeder(data: bytes, limits: ServeLimits | None = None) -> tuple[Seeder, bytes]:
    manifest, tree = make_file(data)
    seeder = Seeder(0, limits)
    seeder.add(SentFile(manifest, tree))
    return seeder, manifest.root


def test_answers_hash_pieces_chunks_and_what_it_lacks() -> None:
    seeder, root = _seeder(os.urandom(100_000))  # 66 chunks, 2 hash pieces at level 1
    out = seeder.request("p", Request(root, 1, (0, 1, 2)), 0)
    assert [type(e) for e in out] == [SendPiece, SendPiece, SendMissing]
    assert out[2] == SendMissing("p", Missing(root, 1, (2,)))
    assert seeder.request("p", Request(root, 0, (0, 65, 66)), 0) == [
        ServeChunk("p", root, 0),
        ServeChunk("p", root, 65),
        SendMissing("p", Missing(root, 0, (66,))),
    ]


def test_an_unknown_root_gets_no_answer() -> None:
    seeder, _ = _seeder(b"x")
    other = os.urandom(32)
    assert seeder.request("p", Request(other, 0, (0,)), 0) == [
        Dropped("p", TransferReason.UNKNOWN_TRANSFER, other)
    ]
    assert seeder.unknown == 1
    with pytest.raises(TransferError) as caught:
        seeder.seal(other, 0, b"x")
    assert caught.value.reason is TransferReason.UNKNOWN_TRANSFER


def test_100k_chunk_requests_from_one_peer_are_rate_limited_without_memory_growth() -> None:
    limits = ServeLimits(rate=100, burst=20)
    seeder, root = _seeder(os.urandom(50 * 1536), limits)
    request = Request(root, 0, tuple(range(32)))
    # warm up (first bucket, first effects), then measure
    seeder.request("mallory", request, 0)
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    served = 0
    for n in range(100_000):  # one request per millisecond: 100 s, 3.2 million pieces asked
        for effect in seeder.request("mallory", request, 1 + n):
            served += isinstance(effect, ServeChunk)
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    growth = sum(s.size_diff for s in after.compare_to(before, "filename"))
    # 100 pieces per second for 100 s (plus the burst), not 3.2 million
    assert 100 * 100 - 2 <= served <= 100 * 100 + 20
    # all but the backlog's ``burst`` chunks (waiting for tokens) are refused
    assert seeder.waiting == 20
    assert seeder.limited == (100_000 * 32 - served) + (32 - 20) - 20
    assert seeder.peers_tracked == 1
    assert growth < 64 * 1024, growth
    # an honest peer is still served at once
    honest = seeder.request("alice", Request(root, 0, (1, 2)), 100_001)
    assert honest == [ServeChunk("alice", root, 1), ServeChunk("alice", root, 2)]


def test_all_peers_together_are_bounded_and_buckets_are_bounded() -> None:
    limits = ServeLimits(rate=1000, burst=10, total_rate=50, total_burst=50, max_peers=100)
    seeder, root = _seeder(os.urandom(20 * 1536), limits)
    served = 0
    for n in range(10_000):  # 10,000 identities, each asking once, within one second
        out = seeder.request(f"sybil{n}", Request(root, 0, (0, 1, 2)), n // 10)
        served += sum(isinstance(e, ServeChunk) for e in out)
    assert served <= 50 + 50  # the shared bucket: burst plus one second's rate
    assert seeder.peers_tracked == 100


def test_a_partial_download_serves_what_it_holds() -> None:
    data = os.urandom(100_000)
    manifest, tree = make_file(data)
    download = Download(manifest, 0)
    download.receive("x", Piece(manifest.root, 2, 0, tree.hash_piece(2, 0)), 0)
    download.receive("x", Piece(manifest.root, 1, 0, tree.hash_piece(1, 0)), 0)
    seeder = Seeder(0)
    seeder.add(download)
    out = seeder.request("p", Request(manifest.root, 1, (0, 1)), 0)
    assert out == [
        SendPiece("p", Piece(manifest.root, 1, 0, tree.hash_piece(1, 0))),
        SendMissing("p", Missing(manifest.root, 1, (1,))),
    ]
    assert seeder.request("p", Request(manifest.root, 0, (0,)), 0) == [
        SendMissing("p", Missing(manifest.root, 0, (0,)))
    ]


def test_files_served_are_bounded() -> None:
    seeder = Seeder(0, ServeLimits(max_files=2))
    for _ in range(2):
        seeder.add(SentFile(*make_file(os.urandom(10))))
    with pytest.raises(TransferError) as caught:
        seeder.add(SentFile(*make_file(os.urandom(10))))
    assert caught.value.reason is TransferReason.TOO_LARGE
    manifest, _ = make_file(b"a")
    with pytest.raises(ValueError):
        SentFile(manifest, make_file(b"b")[1])
    with pytest.raises(ValueError):
        ServeLimits(rate=0)


def test_chunks_over_the_allowance_wait_in_a_bounded_backlog_and_are_served_by_tick() -> None:
    limits = ServeLimits(rate=100, burst=8)
    seeder, root = _seeder(os.urandom(40 * 1536), limits)
    first = seeder.request("bob", Request(root, 0, tuple(range(16))), 0)
    assert [e.index for e in first if isinstance(e, ServeChunk)] == list(range(8))
    assert seeder.waiting == 8 and seeder.limited == 0
    # 50 ms later: 5 tokens, so 5 of the waiting chunks, in the order asked
    later = seeder.tick(50)
    assert [e.index for e in later if isinstance(e, ServeChunk)] == [8, 9, 10, 11, 12]
    assert seeder.waiting == 3
    # a file no longer served is skipped, not served
    seeder.remove(root)
    assert seeder.tick(10_000) == [] and seeder.waiting == 0


def test_a_known_root_not_held_is_answered_missing_within_the_allowance() -> None:
    seeder = Seeder(0, ServeLimits(rate=1.0, burst=2.0))
    request = Request(b"\x07" * 32, 0, (1, 2, 3))
    first = seeder.lacks("member", request, 0)
    assert [type(e) for e in first] == [SendMissing]
    assert first[0].body.indices == (1, 2, 3)  # type: ignore[attr-defined]
    seeder.lacks("member", request, 0)
    assert [type(e) for e in seeder.lacks("member", request, 0)] == [Dropped]
    assert seeder.limited == 1
