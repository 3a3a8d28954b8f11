"""The BLAKE2b hash tree over a file's ciphertext chunks, with a fan-out of 48.

Theory of operation. Level 0 holds one *leaf* per ciphertext chunk, ``leaf(ct)``. Each level
above groups the hashes of the level below in runs of :data:`FANOUT` (the last run may be
shorter) and holds ``node(run)`` for each run, until a level holds one hash: the root, carried
in the announcement. A *piece* is what a receiver pulls, named ``(level, index)``:

* ``(0, i)`` is ciphertext chunk ``i``; it is checked by ``leaf(ct)``;
* ``(l, j)`` with ``l >= 1`` is the run of hashes under node ``j`` of level ``l`` (its
  children at level ``l - 1``, 32 bytes each, at most 48 of them: 1536 bytes, one chunk's
  size); it is checked by ``node(run)``.

A piece can be checked as soon as it arrives once its parent piece is held (the top piece
against the root), so a receiver pulls the hash pieces top-down, then chunks in any order
from any source. Why not a binary tree with each chunk's sibling path sent along with it:
for a 20 MB file (13,021 chunks) a path is 14 hashes, 448 bytes per chunk (29% of a 1536-byte
chunk); the runs cost 32 x 48/47 = 32.7 bytes per chunk (2.1%) and 1 piece in 47 to pull.

Leaves and nodes hash with different BLAKE2b personalisations, so no run of hashes can pass
for a chunk or the other way round; each run's length is fixed by the chunk count, which the
announcement fixes. Level blobs store hashes back to back (32 bytes each, no per-hash object),
so a receiver holds 32 x 48/47 bytes per chunk: 2.1% of the file.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from meshchat.errors import TransferError, TransferReason
from meshchat.files.manifest import HASH_SIZE, MAX_CHUNKS

__all__ = ["FANOUT", "HashTree", "TreeShape", "TreeVerifier", "leaf_hash", "node_hash"]

FANOUT = 48
_LEAF = b"mc-file-leaf"
_NODE = b"mc-file-node"


def leaf_hash(ciphertext: bytes) -> bytes:
    """The tree leaf of one ciphertext chunk."""
    return hashlib.blake2b(ciphertext, digest_size=HASH_SIZE, person=_LEAF).digest()


def node_hash(run: bytes) -> bytes:
    """The tree node over a run of child hashes."""
    return hashlib.blake2b(run, digest_size=HASH_SIZE, person=_NODE).digest()


class TreeShape:
    """How many hashes each level of a tree over ``chunks`` chunks holds."""

    __slots__ = ("counts", "top")

    def __init__(self, chunks: int) -> None:
        if type(chunks) is not int or not 1 <= chunks <= MAX_CHUNKS:
            raise ValueError(f"chunk count {chunks!r} outside 1..{MAX_CHUNKS}")
        counts = [chunks]
        while counts[-1] > 1:
            counts.append(-(-counts[-1] // FANOUT))
        #: hashes at each level, level 0 (leaves) first; the last is 1 (the root)
        self.counts: tuple[int, ...] = tuple(counts)
        #: the root's level (0 for a one-chunk file, whose root is its leaf)
        self.top = len(counts) - 1

    @property
    def chunks(self) -> int:
        return self.counts[0]

    @property
    def hash_pieces(self) -> int:
        """How many hash pieces a receiver pulls (the runs under every node above level 0)."""
        return sum(self.counts[1:])

    def has_piece(self, level: int, index: int) -> bool:
        return 0 <= level <= self.top and 0 <= index < self.counts[level]

    def children(self, level: int, index: int) -> range:
        """The indices, at ``level - 1``, of the hashes in hash piece ``(level, index)``."""
        start = index * FANOUT
        return range(start, min(start + FANOUT, self.counts[level - 1]))

    def pieces(self) -> Iterable[tuple[int, int]]:
        """Every piece, in the order a receiver can check them: hash pieces top-down, then
        the chunks."""
        for level in range(self.top, -1, -1):
            for index in range(self.counts[level]):
                yield level, index


class HashTree:
    """The whole tree, as the sender (or any holder of every chunk) builds it."""

    __slots__ = ("_levels", "shape")

    def __init__(self, leaves: Iterable[bytes]) -> None:
        level = b"".join(leaves)
        if len(level) % HASH_SIZE:
            raise ValueError("leaves are not 32 bytes each")
        self.shape = TreeShape(len(level) // HASH_SIZE)
        levels = [level]
        while len(level) > HASH_SIZE:
            run = HASH_SIZE * FANOUT
            level = b"".join(node_hash(level[i : i + run]) for i in range(0, len(level), run))
            levels.append(level)
        self._levels = levels

    @property
    def root(self) -> bytes:
        return self._levels[-1]

    def leaf(self, index: int) -> bytes:
        return self._levels[0][index * HASH_SIZE : (index + 1) * HASH_SIZE]

    def hash_piece(self, level: int, index: int) -> bytes:
        """The run of hashes that is piece ``(level, index)``, ``level >= 1``."""
        if level < 1 or not self.shape.has_piece(level, index):
            raise IndexError((level, index))
        span = self.shape.children(level, index)
        return self._levels[level - 1][span.start * HASH_SIZE : span.stop * HASH_SIZE]


class TreeVerifier:
    """What a receiver knows of a tree: the root, and the hash pieces it has checked.

    Every hash it holds was checked against the root, so a piece that matches its expected
    hash is the sender's piece. Memory: one blob per level below the root (32 bytes per hash)
    and one byte per hash piece.
    """

    __slots__ = ("_blobs", "_held", "root", "shape")

    def __init__(self, root: bytes, chunks: int) -> None:
        self.root = root
        self.shape = TreeShape(chunks)
        counts = self.shape.counts
        self._blobs = [bytearray(HASH_SIZE * counts[lv]) for lv in range(self.shape.top)]
        self._held = [bytearray(counts[lv]) if lv else bytearray() for lv in range(len(counts))]

    def expected(self, level: int, index: int) -> bytes | None:
        """The hash piece ``(level, index)`` must have, or None until its parent is held."""
        if not self.shape.has_piece(level, index):
            return None
        if level == self.shape.top:
            return self.root
        if not self._held[level + 1][index // FANOUT]:
            return None
        return bytes(self._blobs[level][index * HASH_SIZE : (index + 1) * HASH_SIZE])

    def hash_piece(self, level: int, index: int) -> bytes:
        """A held hash piece's run of hashes (to serve it to others)."""
        if not self.has_hash_piece(level, index):
            raise IndexError((level, index))
        span = self.shape.children(level, index)
        return bytes(self._blobs[level - 1][span.start * HASH_SIZE : span.stop * HASH_SIZE])

    def has_hash_piece(self, level: int, index: int) -> bool:
        return level >= 1 and self.shape.has_piece(level, index) and bool(self._held[level][index])

    def check(self, level: int, index: int, data: bytes) -> None:
        """Raise :class:`TransferError` unless ``data`` is piece ``(level, index)``; a hash
        piece that passes is kept, so the pieces under it can be checked."""
        expected = self.expected(level, index)
        if expected is None:
            raise TransferError(
                TransferReason.NOT_WANTED, f"piece {level}/{index} not checkable", root=self.root
            )
        if level == 0:
            if leaf_hash(data) != expected:
                raise TransferError(TransferReason.BAD_HASH, f"chunk {index}", root=self.root)
            return
        span = self.shape.children(level, index)
        if len(data) != HASH_SIZE * len(span) or node_hash(data) != expected:
            raise TransferError(TransferReason.BAD_HASH, f"piece {level}/{index}", root=self.root)
        self._blobs[level - 1][span.start * HASH_SIZE : span.stop * HASH_SIZE] = data
        self._held[level][index] = 1
