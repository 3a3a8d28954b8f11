"""Sealing chunks: independent, position-bound, deterministic under one key."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshchat.errors import DecryptionError, PacketError
from meshchat.files.chunks import TAG_SIZE, new_key, open_chunk, prepare, seal_chunk, split
from meshchat.files.manifest import FileKind
from meshchat.files.tree import TreeVerifier


@settings(max_examples=100)
@given(st.binary(max_size=1536), st.integers(0, 2**20 - 1), st.integers(1, 2**20))
def test_seal_and_open(plain: bytes, index: int, count: int) -> None:
    key = new_key()
    sealed = seal_chunk(key, index, count, plain)
    assert len(sealed) == len(plain) + TAG_SIZE
    assert seal_chunk(key, index, count, plain) == sealed  # deterministic
    assert open_chunk(key, index, count, sealed) == plain


def test_a_chunk_opens_only_at_its_place_in_its_file_under_its_key() -> None:
    key = new_key()
    sealed = seal_chunk(key, 5, 10, b"hello")
    for k, i, c, s in [
        (key, 6, 10, sealed),
        (key, 5, 11, sealed),
        (new_key(), 5, 10, sealed),
        (key, 5, 10, sealed[:-1]),
        (key, 5, 10, b""),
    ]:
        with pytest.raises(DecryptionError):
            open_chunk(k, i, c, s)


def test_the_same_plaintext_under_two_keys_differs() -> None:
    plain = b"a" * 1536
    assert seal_chunk(new_key(), 0, 1, plain) != seal_chunk(new_key(), 0, 1, plain)


@pytest.mark.parametrize("size", [0, 1, 1535, 1536, 1537, 100_000])
def test_prepare_gives_a_checkable_tree(size: int) -> None:
    data = os.urandom(size)
    key = new_key()
    manifest, tree = prepare(
        split(data), kind=FileKind.FILE, name="f", size=size, media_type="a/b", key=key
    )
    assert manifest.root == tree.root and manifest.key == key
    verifier = TreeVerifier(manifest.root, manifest.chunk_count)
    plain = list(split(data))
    for level, index in tree.shape.pieces():
        if level:
            verifier.check(level, index, tree.hash_piece(level, index))
        else:
            sealed = seal_chunk(key, index, manifest.chunk_count, plain[index])
            verifier.check(0, index, sealed)


def test_prepare_refuses_chunks_that_do_not_add_up() -> None:
    kw = {"kind": FileKind.FILE, "name": "f", "media_type": "a/b", "key": new_key()}
    with pytest.raises(ValueError):
        prepare([b"a" * 100], size=200, **kw)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        prepare([b"a" * 1536, b"a", b"b"], size=1537, **kw)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        prepare([b"a" * 1000, b"a" * 536], size=1536, **kw)  # type: ignore[arg-type]
    with pytest.raises(PacketError):
        prepare([b"x"], size=1, kind=FileKind.IMAGE, name="f", media_type="a/b", key=new_key())
