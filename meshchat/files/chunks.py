"""A file's chunks: sealing and opening them, and preparing a file's announcement.

Each chunk of plaintext (``chunk_size`` bytes; the last may be shorter, an empty file has one
empty chunk) is sealed alone with XChaCha20-Poly1305 (IETF AEAD, libsodium through PyNaCl)
under the file's key, which is drawn afresh for every file sent:

* nonce: ``"mc-file-chunk-v1" (16 bytes) || index (8 bytes, big-endian)``. The key is never
  used for another file and each index is sealed once per key (a sender that seals it again
  seals the same plaintext, so it gets the same bytes: deterministic, which is what lets any
  holder of the plaintext re-create, serve and re-check chunks);
* associated data: ``"mc-file-v1" || chunk_count (4 bytes, big-endian)``, so a chunk cannot
  be passed off in a file of another length.

Why per-chunk AEAD and not libsodium's secretstream: secretstream's state after message ``i``
depends on every message before it, so chunk ``i`` can be opened only after ``0..i-1``, in
order, with the stream state saved across restarts. Chunks here are pulled in any order from
several sources and a restart resumes from whatever is held, so each chunk must open on its
own; truncation and reordering, which secretstream's tags guard against, are already ruled out
by the hash tree (each piece's position is fixed by its hash) and the count in the associated
data. The cost is 16 bytes per chunk, as for secretstream.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

import nacl.bindings
import nacl.exceptions

from meshchat.errors import DecryptionError
from meshchat.files.manifest import DEFAULT_CHUNK_SIZE, KEY_SIZE, FileKind, FileManifest
from meshchat.files.tree import HashTree, leaf_hash

__all__ = [
    "TAG_SIZE",
    "new_key",
    "open_chunk",
    "prepare",
    "seal_chunk",
    "split",
]

TAG_SIZE = 16
_NONCE_PREFIX = b"mc-file-chunk-v1"
_AD_PREFIX = b"mc-file-v1"


def new_key() -> bytes:
    """A fresh file key."""
    return os.urandom(KEY_SIZE)


def _nonce(index: int) -> bytes:
    return _NONCE_PREFIX + index.to_bytes(8, "big")


def _ad(count: int) -> bytes:
    return _AD_PREFIX + count.to_bytes(4, "big")


def seal_chunk(key: bytes, index: int, count: int, plaintext: bytes) -> bytes:
    """Chunk ``index`` of a ``count``-chunk file, sealed (16 bytes longer)."""
    return bytes(
        nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(
            plaintext, _ad(count), _nonce(index), key
        )
    )


def open_chunk(key: bytes, index: int, count: int, ciphertext: bytes) -> bytes:
    """The plaintext of a sealed chunk; :class:`DecryptionError` if it does not open."""
    try:
        return bytes(
            nacl.bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(
                ciphertext, _ad(count), _nonce(index), key
            )
        )
    except (nacl.exceptions.CryptoError, ValueError, TypeError) as exc:
        raise DecryptionError(f"file chunk {index} does not open") from exc


def split(data: bytes, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Iterator[bytes]:
    """The plaintext chunks of ``data`` (one empty chunk for empty data)."""
    if not data:
        yield b""
        return
    for start in range(0, len(data), chunk_size):
        yield data[start : start + chunk_size]


def prepare(
    chunks: Iterable[bytes],
    *,
    kind: FileKind,
    name: str,
    size: int,
    media_type: str,
    key: bytes,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    caption: str = "",
) -> tuple[FileManifest, HashTree]:
    """Seal every plaintext chunk of a file of ``size`` bytes and build its tree; return the
    announcement and the tree (which the sender keeps to answer requests for hash pieces).

    ``chunks`` are the file's plaintext chunks in order (e.g. from :func:`split`, or read from
    disk ``chunk_size`` bytes at a time). Raises :class:`ValueError` if they do not add up to
    ``size`` in chunks of ``chunk_size``, and :class:`~meshchat.errors.PacketError` if the
    announcement would be refused by its recipients.
    """
    count = max(1, -(-size // chunk_size))
    total = 0
    leaves: list[bytes] = []
    for index, plain in enumerate(chunks):
        expected = min(chunk_size, size - index * chunk_size)
        if index >= count or len(plain) != expected:
            raise ValueError(f"chunk {index} is {len(plain)} bytes, not {expected}")
        total += len(plain)
        leaves.append(leaf_hash(seal_chunk(key, index, count, plain)))
    if total != size or len(leaves) != count:
        raise ValueError(f"chunks add up to {total} bytes in {len(leaves)}, not {size}")
    tree = HashTree(leaves)
    manifest = FileManifest(kind, name, size, media_type, chunk_size, tree.root, key, caption)
    return manifest, tree
