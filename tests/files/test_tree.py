"""The hash tree: every piece checks top-down; nothing else passes."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshchat.errors import TransferError, TransferReason
from meshchat.files.manifest import MAX_CHUNKS
from meshchat.files.tree import FANOUT, HashTree, TreeShape, TreeVerifier, leaf_hash, node_hash


def _tree(n: int) -> tuple[list[bytes], HashTree]:
    chunks = [os.urandom(40) for _ in range(n)]
    return chunks, HashTree(leaf_hash(c) for c in chunks)


@pytest.mark.parametrize(
    ("chunks", "counts"),
    [
        (1, (1,)),
        (2, (2, 1)),
        (48, (48, 1)),
        (49, (49, 2, 1)),
        (48 * 48, (2304, 48, 1)),
        (48 * 48 + 1, (2305, 49, 2, 1)),
        (MAX_CHUNKS, (MAX_CHUNKS, 21846, 456, 10, 1)),
    ],
)
def test_shape(chunks: int, counts: tuple[int, ...]) -> None:
    shape = TreeShape(chunks)
    assert shape.counts == counts
    assert shape.hash_pieces == sum(counts[1:])


def test_hash_pieces_cost_about_a_47th() -> None:
    shape = TreeShape(13_654)  # a 20 MiB file
    assert shape.hash_pieces == 285 + 6 + 1
    assert shape.hash_pieces * 32 * 48 / 13_654 < 34  # bytes of hash pieces per chunk


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 3000))
def test_every_piece_checks_in_order(n: int) -> None:
    chunks, tree = _tree(n)
    verifier = TreeVerifier(tree.root, n)
    for level, index in tree.shape.pieces():
        data = chunks[index] if level == 0 else tree.hash_piece(level, index)
        verifier.check(level, index, data)
        if level:
            assert verifier.hash_piece(level, index) == data


def test_a_one_chunk_file_has_its_leaf_as_root() -> None:
    chunks, tree = _tree(1)
    assert tree.root == leaf_hash(chunks[0])
    verifier = TreeVerifier(tree.root, 1)
    verifier.check(0, 0, chunks[0])
    with pytest.raises(TransferError):
        verifier.check(0, 0, chunks[0] + b"x")


def test_pieces_are_refused_before_their_parent_and_when_altered() -> None:
    chunks, tree = _tree(100)
    verifier = TreeVerifier(tree.root, 100)
    with pytest.raises(TransferError) as caught:
        verifier.check(1, 0, tree.hash_piece(1, 0))
    assert caught.value.reason is TransferReason.NOT_WANTED
    with pytest.raises(TransferError) as caught:
        verifier.check(0, 0, chunks[0])
    assert caught.value.reason is TransferReason.NOT_WANTED
    top = tree.hash_piece(2, 0)
    with pytest.raises(TransferError) as caught:
        verifier.check(2, 0, top[:-1])
    assert caught.value.reason is TransferReason.BAD_HASH
    verifier.check(2, 0, top)
    verifier.check(1, 1, tree.hash_piece(1, 1))
    with pytest.raises(TransferError) as caught:
        verifier.check(0, 48, chunks[49])  # a real chunk in the wrong place
    assert caught.value.reason is TransferReason.BAD_HASH
    verifier.check(0, 48, chunks[48])
    with pytest.raises(TransferError):
        verifier.check(3, 0, b"")  # no such level
    with pytest.raises(TransferError):
        verifier.check(0, 100, chunks[0])  # no such chunk


def test_a_run_of_hashes_cannot_pass_for_a_chunk() -> None:
    # a 2-chunk tree's root is node(leaf0 || leaf1); the same bytes as a chunk give another
    # hash, because leaves and nodes are personalised differently
    _, tree = _tree(2)
    run = tree.hash_piece(1, 0)
    assert node_hash(run) == tree.root
    assert leaf_hash(run) != tree.root


def test_bad_trees() -> None:
    with pytest.raises(ValueError):
        HashTree([])
    with pytest.raises(ValueError):
        HashTree([b"short"])
    with pytest.raises(ValueError):
        TreeShape(MAX_CHUNKS + 1)
    _, tree = _tree(5)
    with pytest.raises(IndexError):
        tree.hash_piece(0, 0)
    assert FANOUT * 32 == 1536
