"""The sender's side of a file transfer: answering requests for pieces, within bounds.

Theory of operation. A :class:`Seeder` holds the files this node serves, by root hash: files
it sent (a :class:`~meshchat.files.tree.HashTree` over every chunk) and downloads in progress
(a :class:`~meshchat.files.transfer.Download` serves the pieces it holds, so members of a group
pull from each other). It is fed requests and returns effects: a hash piece is answered at once
(:class:`~meshchat.files.effects.SendPiece`, the hashes are in memory); a chunk is answered with
:class:`~meshchat.files.effects.ServeChunk`, for which the driver reads the plaintext chunk from
disk and calls :meth:`Seeder.seal` (which seals it and checks it against the tree, so a file
changed on disk since it was announced is never served as the announced one); pieces not held
are named in one :class:`~meshchat.files.effects.SendMissing`.

Bounds. Every peer has a token bucket of pieces (``rate`` per second, ``burst`` saved up)
and all peers share one more (``total_rate``). A chunk asked for beyond either allowance waits
in the peer's backlog (at most ``burst`` of them, oldest first) and is served by
:meth:`Seeder.tick` once tokens allow, so a receiver that keeps its window is paced, not made
to time out; beyond the backlog a piece is not served and is counted in
:attr:`Seeder.limited` (the asker times out and asks elsewhere or later).
Buckets are kept for at most ``max_peers`` peers, least recently heard first out, so neither
100,000 requests from one peer nor requests from many peers grow memory; a peer evicted and
heard again starts with a full bucket (an attacker with many identities gets ``burst`` each,
but never more than ``total_rate`` in all). A request for an unknown root gets no answer (it
does not tell a prober whether this node holds a file).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, fields
from typing import Protocol

from meshchat.errors import TransferError, TransferReason
from meshchat.files.chunks import seal_chunk
from meshchat.files.effects import Dropped, Effect, Peer, SendMissing, SendPiece, ServeChunk
from meshchat.files.manifest import FileManifest
from meshchat.files.tree import HashTree, leaf_hash
from meshchat.files.wire import Missing, Piece, Request
from meshchat.router.ratelimit import TokenBucket

__all__ = ["Holder", "Seeder", "SentFile", "ServeLimits"]


class Holder(Protocol):
    """A file, or the part of one, that can be served."""

    manifest: FileManifest

    def holds(self, level: int, index: int) -> bool: ...

    def hash_piece(self, level: int, index: int) -> bytes: ...

    def leaf(self, index: int) -> bytes | None: ...


class SentFile:
    """A file this node announced: it holds every piece."""

    __slots__ = ("manifest", "tree")

    def __init__(self, manifest: FileManifest, tree: HashTree) -> None:
        if tree.root != manifest.root:
            raise ValueError("the tree is not the announced file's")
        self.manifest = manifest
        self.tree = tree

    def holds(self, level: int, index: int) -> bool:
        return self.tree.shape.has_piece(level, index)

    def hash_piece(self, level: int, index: int) -> bytes:
        return self.tree.hash_piece(level, index)

    def leaf(self, index: int) -> bytes | None:
        return self.tree.leaf(index) if self.tree.shape.has_piece(0, index) else None


@dataclass(frozen=True, slots=True)
class ServeLimits:
    """Bounds of the sender's side; every one positive."""

    rate: float = 256.0  #: pieces per second one peer is served (about 400 kB/s)
    burst: float = 64.0  #: pieces one peer may ask for at once
    total_rate: float = 1024.0  #: pieces per second served to all peers together
    total_burst: float = 256.0
    max_peers: int = 1024  #: token buckets kept
    max_files: int = 256  #: files served at once

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int | float) or value <= 0:
                raise ValueError(f"{f.name} must be positive, not {value!r}")


class Seeder:
    """Answers requests for pieces of the files it holds; see the module's docstring."""

    def __init__(self, now_ms: int, limits: ServeLimits | None = None) -> None:
        self.limits = limits or ServeLimits()
        self._files: dict[bytes, Holder] = {}
        self._buckets: OrderedDict[Peer, TokenBucket] = OrderedDict()
        self._total = TokenBucket(self.limits.total_rate, self.limits.total_burst, now_ms)
        #: pieces refused for want of tokens, pieces answered, requests for unknown roots
        self.limited = 0
        self.served = 0
        self.unknown = 0
        #: chunks (root, index) waiting for tokens, per peer (at most ``burst`` each)
        self._backlog: OrderedDict[Peer, deque[tuple[bytes, int]]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._files)

    @property
    def peers_tracked(self) -> int:
        return len(self._buckets)

    def add(self, holder: Holder) -> None:
        """Serve ``holder``'s pieces. Raises :class:`TransferError` (``TOO_LARGE``) when
        ``max_files`` are already served."""
        root = holder.manifest.root
        if root not in self._files and len(self._files) >= self.limits.max_files:
            raise TransferError(TransferReason.TOO_LARGE, "too many files served", root=root)
        self._files[root] = holder

    def holder(self, root: bytes) -> Holder | None:
        """What is served for ``root``, if anything."""
        return self._files.get(root)

    def remove(self, root: bytes) -> None:
        self._files.pop(root, None)

    def _bucket(self, peer: Peer, now_ms: int) -> TokenBucket:
        bucket = self._buckets.get(peer)
        if bucket is None:
            bucket = TokenBucket(self.limits.rate, self.limits.burst, now_ms)
            self._buckets[peer] = bucket
            if len(self._buckets) > self.limits.max_peers:
                evicted, _ = self._buckets.popitem(last=False)
                self._backlog.pop(evicted, None)
        else:
            self._buckets.move_to_end(peer)
        return bucket

    def request(self, peer: Peer, body: Request, now_ms: int) -> list[Effect]:
        """``peer`` asks for pieces: serve what it may have, say what is not held."""
        holder = self._files.get(body.root)
        if holder is None:
            self.unknown += 1
            return [Dropped(peer, TransferReason.UNKNOWN_TRANSFER, body.root)]
        bucket = self._bucket(peer, now_ms)
        effects: list[Effect] = []
        lacking: list[int] = []
        refused = 0
        for index in body.indices:
            if not holder.holds(body.level, index):
                lacking.append(index)
                continue
            if not (bucket.available(now_ms) >= 1 and self._total.take(now_ms)):
                waiting = self._backlog.setdefault(peer, deque())
                if body.level == 0 and len(waiting) < self.limits.burst:
                    waiting.append((body.root, index))
                else:
                    refused += 1
                continue
            bucket.take(now_ms)
            self.served += 1
            if body.level == 0:
                effects.append(ServeChunk(peer, body.root, index))
            else:
                piece = Piece(body.root, body.level, index, holder.hash_piece(body.level, index))
                effects.append(SendPiece(peer, piece))
        if lacking:
            effects.append(SendMissing(peer, Missing(body.root, body.level, tuple(lacking))))
        if refused:
            self.limited += refused
            effects.append(Dropped(peer, TransferReason.RATE_LIMITED, body.root))
        return effects

    def lacks(self, peer: Peer, body: Request, now_ms: int) -> list[Effect]:
        """``peer`` asks for pieces of a file this node knows but does not serve (announced
        to it and not pulled, say): a missing answer naming them all, so the asker turns to
        another source at once; one of the peer's tokens per request (beyond its allowance,
        no answer). The driver decides when a peer may be told (it knows the root)."""
        if not self._bucket(peer, now_ms).take(now_ms):
            self.limited += 1
            return [Dropped(peer, TransferReason.RATE_LIMITED, body.root)]
        return [SendMissing(peer, Missing(body.root, body.level, body.indices))]

    @property
    def waiting(self) -> int:
        """Chunks in the backlogs (served by :meth:`tick` as tokens allow)."""
        return sum(len(w) for w in self._backlog.values())

    def tick(self, now_ms: int) -> list[Effect]:
        """Serve backlogged chunks, each peer in turn, as far as the allowances go."""
        effects: list[Effect] = []
        for peer in list(self._backlog):
            waiting = self._backlog[peer]
            bucket = self._bucket(peer, now_ms)
            while waiting and bucket.available(now_ms) >= 1 and self._total.take(now_ms):
                bucket.take(now_ms)
                root, index = waiting.popleft()
                if root in self._files:
                    self.served += 1
                    effects.append(ServeChunk(peer, root, index))
            if not waiting:
                self._backlog.pop(peer, None)
        return effects

    def seal(self, root: bytes, index: int, plaintext: bytes) -> Piece:
        """Chunk ``index`` of file ``root``, sealed, from its plaintext as read from disk.

        Raises :class:`TransferError`: ``UNKNOWN_TRANSFER`` if the file is not served (any
        more), ``CHANGED`` if the chunk is not the announced one (the file changed on disk).
        """
        holder = self._files.get(root)
        leaf = None if holder is None else holder.leaf(index)
        if holder is None or leaf is None:
            raise TransferError(TransferReason.UNKNOWN_TRANSFER, f"chunk {index}", root=root)
        manifest = holder.manifest
        if len(plaintext) != manifest.chunk_length(index):
            raise TransferError(TransferReason.CHANGED, f"chunk {index} length", root=root)
        sealed = seal_chunk(manifest.key, index, manifest.chunk_count, plaintext)
        if leaf_hash(sealed) != leaf:
            raise TransferError(TransferReason.CHANGED, f"chunk {index} differs", root=root)
        return Piece(root, 0, index, sealed)
