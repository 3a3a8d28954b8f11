"""The receiver's side of a file transfer: which pieces to pull, from whom, and when to stop.

Theory of operation. A :class:`Download` is created from an announcement and fed three kinds
of input: bodies from peers (:meth:`Download.receive`, :meth:`Download.missing`), sources (peers
that may hold the file: the sender, other members of a group, :meth:`Download.add_source`) and
clock ticks (:meth:`Download.tick`). Each call returns :mod:`~meshchat.files.effects` for the
driver to carry out; nothing here reads a clock, a socket or a file.

Pieces are pulled in the tree's order (hash pieces top-down, then chunks), a piece only once
its parent hash piece is held, so every piece is checked the moment it arrives. At most
``window`` pieces are in flight in all and ``per_source`` from one source (one at a time from
a source once a request to it went unanswered, until it answers). A source is picked
round-robin among those that have room, have not said they lack the piece and have not sent
``max_strikes`` pieces that failed their hash (those are dropped as sources); a piece that
only a busy source may have waits for its room. As pieces arrive, the window is topped up once
half of the room is free, so each request names several pieces. A piece not answered within
``request_timeout_ms`` is asked for again, from another source first; sooner, after
``hedge_ms``, when its source has sent nothing since it was asked and another source that
answers has room (an offline sender among group members who hold the file), and at the next
tick when its source is already known silent. A piece that
fails its hash is asked of another source at once. Any peer may deliver a piece: it is kept if
it checks, whoever sent it.

States of a piece::

    wanted --request--> in flight --checked piece--> held
      ^                    |  timeout / hedge / missing / bad hash / source dropped
      +--------------------+

A download ends ``Completed`` when every chunk is held, or ``Abandoned`` (partial data to be
erased) when it made no progress for ``idle_ms``, outlived ``lifetime_ms``, or a checked chunk
does not open under the announced key. :class:`Downloads` holds the active downloads by root
hash (an announcement heard twice, or from several group members, is one download with more
sources) and refuses bodies for unknown roots.

Memory per download: the tree's hashes (2.1% of the file) and a byte per chunk (together at
most ``max_tree_bytes`` for all active downloads, 64 MiB: three files of 1 GiB), plus at most
``window`` pieces in flight and retried, ``max_sources`` sources and a bounded "lacks" set per
source. Nothing grows with the number of bodies a peer sends.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass, fields

from meshchat.errors import DecryptionError, TransferError, TransferReason
from meshchat.files.chunks import open_chunk, seal_chunk
from meshchat.files.effects import (
    Abandoned,
    Completed,
    Dropped,
    Effect,
    KeepHashes,
    Peer,
    SendRequest,
    WriteChunk,
)
from meshchat.files.manifest import HASH_SIZE, FileManifest
from meshchat.files.progress import Progress, RateMeter
from meshchat.files.tree import TreeShape, TreeVerifier, leaf_hash
from meshchat.files.wire import MAX_REQUEST_PIECES, Missing, Piece, Request

__all__ = ["Download", "Downloads", "Limits", "tree_bytes"]

PieceId = tuple[int, int]
#: Most pieces remembered per source as "it said it lacks them" (then forgotten at once).
_MAX_LACKS = 1024


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds of the receiver's side; every one a positive integer."""

    window: int = 32  #: pieces in flight in all, per download
    per_source: int = 16  #: pieces in flight from one source
    request_timeout_ms: int = 15_000  #: ask again (elsewhere) after this long
    #: a piece asked of a source that has sent nothing since is asked of another source
    #: (one that answers and has room) after this long: an offline sender costs this, not
    #: ``request_timeout_ms``, while a member has the file
    hedge_ms: int = 2_000
    idle_ms: int = 3_600_000  #: no piece for this long: abandon
    lifetime_ms: int = 7 * 24 * 3_600_000  #: a download never lives longer than this
    max_sources: int = 16  #: sources per download
    max_strikes: int = 3  #: pieces failing their hash before a source is dropped
    max_active: int = 16  #: downloads at once
    #: bytes all active downloads may hold for their trees (2.2% of a file's size each)
    max_tree_bytes: int = 64 << 20
    max_finished: int = 4096  #: finished roots remembered (an announcement heard again)

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if type(value) is not int or value < 1:
                raise ValueError(f"{f.name} must be a positive integer, not {value!r}")


def tree_bytes(chunks: int) -> int:
    """What a download of ``chunks`` chunks holds for its tree: 32 bytes per hash below the
    root, a byte per piece."""
    counts = TreeShape(chunks).counts
    return sum(HASH_SIZE * count for count in counts[:-1]) + sum(counts)


class _Source:
    __slots__ = ("heard_ms", "in_flight", "lacks", "quiet", "strikes")

    def __init__(self) -> None:
        self.in_flight = 0
        #: when it last sent a piece that checked or a missing answer (None: never)
        self.heard_ms: int | None = None
        self.strikes = 0
        #: requests to it that timed out since it last sent a piece
        self.quiet = 0
        self.lacks: set[PieceId] = set()

    def room(self, per_source: int) -> int:
        """Pieces it may be asked for now: one at a time once a request to it went
        unanswered, until it answers again."""
        return (per_source if self.quiet == 0 else 1) - self.in_flight

    def lack(self, piece: PieceId) -> None:
        if len(self.lacks) >= _MAX_LACKS:
            self.lacks.clear()
        self.lacks.add(piece)


class Download:
    """One file being pulled; see the module's theory of operation."""

    def __init__(self, manifest: FileManifest, now_ms: int, limits: Limits | None = None) -> None:
        self.manifest = manifest
        self.root = manifest.root
        self.limits = limits or Limits()
        self.tree = TreeVerifier(manifest.root, manifest.chunk_count)
        self.started_ms = now_ms
        self.progress_ms = now_ms
        #: True once Completed or Abandoned was returned
        self.done = False
        self.chunks_held = 0
        self.bytes_held = 0
        self._meter = RateMeter()
        self._held = bytearray(manifest.chunk_count)
        self._total = sum(self.tree.shape.counts)
        self._cursor = 0
        self._retry: deque[PieceId] = deque()
        self._stalled: deque[PieceId] = deque()
        self._in_flight: dict[PieceId, tuple[Peer, int]] = {}
        self._sources: dict[Peer, _Source] = {}
        self._banned: OrderedDict[Peer, None] = OrderedDict()
        self._turn = 0
        self._lacks_cleared_ms = now_ms

    # -- views -------------------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    def progress(self, now_ms: int) -> Progress:
        """Bytes held, the arrival rate (chunks taken back after a restart do not count) and
        the time left at that rate."""
        return self._meter.progress(self.bytes_held, self.manifest.size, now_ms)

    @property
    def tree_bytes(self) -> int:
        """Bytes held for the tree and the chunk map (fixed when the download starts)."""
        return tree_bytes(self.manifest.chunk_count)

    @property
    def sources(self) -> tuple[Peer, ...]:
        return tuple(self._sources)

    def holds(self, level: int, index: int) -> bool:
        """Whether piece ``(level, index)`` is held (and so may be served to others)."""
        if level == 0:
            return 0 <= index < len(self._held) and bool(self._held[index])
        return self.tree.has_hash_piece(level, index)

    def hash_piece(self, level: int, index: int) -> bytes:
        return self.tree.hash_piece(level, index)

    def leaf(self, index: int) -> bytes | None:
        return self.tree.expected(0, index)

    # -- inputs ------------------------------------------------------------------------------

    def add_source(self, peer: Peer, now_ms: int) -> list[Effect]:
        """``peer`` may hold the file (it announced it, or is a member who pulled it)."""
        if self.done or peer in self._banned:
            return []
        if peer not in self._sources:
            if len(self._sources) >= self.limits.max_sources:
                return []
            self._sources[peer] = _Source()
            self._retry.extend(self._stalled)
            self._stalled.clear()
        return self._fill(now_ms)

    def restore(
        self, hash_pieces: Iterable[tuple[int, int, bytes]], chunks: Iterable[tuple[int, bytes]]
    ) -> list[Effect]:
        """Take back what a partial file held before a restart: hash pieces (in the order
        they were kept) and chunks of plaintext. Each is checked again (a chunk is sealed
        again, which gives the same bytes, and its leaf compared); what fails is pulled anew.
        """
        for level, index, data in hash_pieces:
            if level >= 1 and not self.tree.has_hash_piece(level, index):
                try:
                    self.tree.check(level, index, data)
                except TransferError:
                    continue
        count = self.manifest.chunk_count
        for index, plaintext in chunks:
            if not 0 <= index < count or self._held[index]:
                continue
            leaf = self.tree.expected(0, index)
            if leaf is None or len(plaintext) != self.manifest.chunk_length(index):
                continue
            if leaf_hash(seal_chunk(self.manifest.key, index, count, plaintext)) == leaf:
                self._mark(index, len(plaintext))
        if self.chunks_held == count and not self.done:
            self.done = True
            return [Completed(self.root)]
        return []

    def receive(self, peer: Peer, piece: Piece, now_ms: int) -> list[Effect]:
        """A piece arrived from ``peer``; it is kept if it checks."""
        if piece.root != self.root:
            return [Dropped(peer, TransferReason.UNKNOWN_TRANSFER, piece.root)]
        key = (piece.level, piece.index)
        if self.done or self.holds(*key):
            return [Dropped(peer, TransferReason.NOT_WANTED, self.root)]
        try:
            self.tree.check(piece.level, piece.index, piece.data)
        except TransferError as exc:
            dropped: list[Effect] = [Dropped(peer, exc.reason, self.root)]
            if exc.reason is not TransferReason.BAD_HASH:
                return dropped
            liar = self._sources.get(peer)
            flight = self._in_flight.get(key)
            if liar is not None and flight is not None and flight[0] == peer:
                # asked of it, and it sent a forgery: ask someone else for it at once
                self._release(key)
                liar.lack(key)
                self._retry.append(key)
            self._strike(peer)
            return dropped + self._fill(now_ms)
        self._release(key)
        self.progress_ms = now_ms
        source = self._sources.get(peer)
        if source is not None:
            source.quiet = 0
            source.heard_ms = now_ms
        effects: list[Effect] = []
        if piece.level == 0:
            count = self.manifest.chunk_count
            try:
                plaintext = open_chunk(self.manifest.key, piece.index, count, piece.data)
            except DecryptionError:
                return self._abandon(TransferReason.BAD_KEY)
            if len(plaintext) != self.manifest.chunk_length(piece.index):
                return self._abandon(TransferReason.BAD_KEY)
            self._mark(piece.index, len(plaintext))
            self._meter.add(len(plaintext), now_ms)
            offset = piece.index * self.manifest.chunk_size
            effects.append(WriteChunk(self.root, piece.index, offset, plaintext))
            if self.chunks_held == count:
                self.done = True
                effects.append(Completed(self.root))
                return effects
        else:
            effects.append(KeepHashes(self.root, piece.level, piece.index, piece.data))
        effects += self._fill(now_ms, batch=True)
        return effects

    def missing(self, peer: Peer, body: Missing, now_ms: int) -> list[Effect]:
        """``peer`` says it lacks these pieces: ask someone else."""
        source = self._sources.get(peer)
        if source is None or self.done:
            return [Dropped(peer, TransferReason.NOT_WANTED, self.root)]
        source.heard_ms = now_ms
        for index in body.indices:
            key = (body.level, index)
            source.lack(key)
            flight = self._in_flight.get(key)
            if flight is not None and flight[0] == peer:
                self._release(key)
                self._retry.append(key)
        return self._fill(now_ms)

    def tick(self, now_ms: int) -> list[Effect]:
        """Time passed: expire the download, ask again for late pieces."""
        if self.done:
            return []
        limits = self.limits
        if (
            now_ms - self.progress_ms >= limits.idle_ms
            or now_ms - self.started_ms >= limits.lifetime_ms
        ):
            return self._abandon(TransferReason.EXPIRED)
        late = [
            (key, peer)
            for key, (peer, deadline) in self._in_flight.items()
            if deadline <= now_ms or self._hedge(key, peer, deadline, now_ms)
        ]
        for key, peer in late:
            self._release(key)
            self._retry.append(key)
            source = self._sources.get(peer)
            if source is not None:
                source.quiet += 1
                source.lack(key)  # ask another source first
        if now_ms - self._lacks_cleared_ms >= limits.request_timeout_ms:
            self._lacks_cleared_ms = now_ms
            for source in self._sources.values():
                source.lacks.clear()
            self._retry.extend(self._stalled)
            self._stalled.clear()
        return self._fill(now_ms)

    def ask_again(self, now_ms: int) -> list[Effect]:
        """A path may have come back (a link came up, a relay restarted): ask at once for
        every piece in flight, from sources whose lacks and silences are forgotten."""
        if self.done:
            return []
        for key in list(self._in_flight):
            self._release(key)
            self._retry.append(key)
        for source in self._sources.values():
            source.lacks.clear()
            source.quiet = 0
        self._retry.extend(self._stalled)
        self._stalled.clear()
        return self._fill(now_ms)

    def abandon(self, reason: TransferReason) -> list[Effect]:
        """End the download without the file (e.g. the sink failed: disk full)."""
        return [] if self.done else self._abandon(reason)

    # -- internals ---------------------------------------------------------------------------

    def _abandon(self, reason: TransferReason) -> list[Effect]:
        self.done = True
        self._in_flight.clear()
        self._retry.clear()
        self._stalled.clear()
        return [Abandoned(self.root, reason)]

    def _mark(self, index: int, size: int) -> None:
        self._held[index] = 1
        self.chunks_held += 1
        self.bytes_held += size

    def _release(self, key: PieceId) -> None:
        flight = self._in_flight.pop(key, None)
        if flight is not None:
            source = self._sources.get(flight[0])
            if source is not None:
                source.in_flight -= 1

    def _strike(self, peer: Peer) -> None:
        source = self._sources.get(peer)
        if source is None:
            return
        source.strikes += 1
        if source.strikes < self.limits.max_strikes:
            return
        del self._sources[peer]
        self._banned[peer] = None
        if len(self._banned) > 4 * self.limits.max_sources:
            self._banned.popitem(last=False)
        for key, (owner, _) in list(self._in_flight.items()):
            if owner == peer:
                del self._in_flight[key]
                self._retry.append(key)

    def _hedge(self, key: PieceId, peer: Peer, deadline: int, now_ms: int) -> bool:
        """Whether a piece in flight to ``peer`` should be asked of another source now:
        ``peer`` has sent nothing since it was asked, and either it was asked ``hedge_ms`` ago
        or more or ``peer`` is already known silent (a request to it went unanswered); and
        another source that is not silent has room for it."""
        asked_ms = deadline - self.limits.request_timeout_ms
        owner = self._sources.get(peer)
        if owner is None or (owner.heard_ms is not None and owner.heard_ms >= asked_ms):
            return False
        if owner.quiet == 0 and now_ms - asked_ms < self.limits.hedge_ms:
            return False
        per_source = self.limits.per_source
        return any(
            other is not peer
            and source.quiet == 0
            and source.room(per_source) > 0
            and key not in source.lacks
            for other, source in self._sources.items()
        )

    def _piece_at(self, position: int) -> PieceId:
        counts = self.tree.shape.counts
        for level in range(self.tree.shape.top, -1, -1):
            if position < counts[level]:
                return level, position
            position -= counts[level]
        raise IndexError(position)

    def _pick_source(self, key: PieceId) -> Peer | None:
        peers = list(self._sources)
        for step in range(len(peers)):
            peer = peers[(self._turn + step) % len(peers)]
            source = self._sources[peer]
            if source.room(self.limits.per_source) > 0 and key not in source.lacks:
                self._turn = (self._turn + step + 1) % len(peers)
                return peer
        return None

    def _candidates(self) -> Iterable[PieceId]:
        """Pieces to ask for, retries first; stops where the tree cannot be checked yet."""
        while self._retry:
            key = self._retry.popleft()
            if not self.holds(*key) and key not in self._in_flight:
                yield key
        while self._cursor < self._total:
            key = self._piece_at(self._cursor)
            if self.holds(*key):
                self._cursor += 1
                continue
            if self.tree.expected(*key) is None:
                return
            self._cursor += 1
            yield key

    def _fill(self, now_ms: int, batch: bool = False) -> list[Effect]:
        """Ask for pieces until the window is full or nothing more can be asked for.

        With ``batch`` (a piece just arrived), only once half the room is free: requests then
        name several pieces each instead of one per arrival (fewer, fuller request bodies).
        """
        if self.done or not self._sources:
            return []
        if batch:
            per_source = self.limits.per_source
            most = sum(s.in_flight + max(0, s.room(per_source)) for s in self._sources.values())
            room = min(self.limits.window, most)
            if room - len(self._in_flight) < max(1, room // 2):
                return []
        chosen: dict[tuple[Peer, int], list[int]] = {}
        waiting: list[PieceId] = []
        deadline = now_ms + self.limits.request_timeout_ms
        for key in self._candidates():
            if len(self._in_flight) >= self.limits.window:
                self._retry.appendleft(key)
                break
            peer = self._pick_source(key)
            if peer is None:
                per_source = self.limits.per_source
                if not any(s.room(per_source) > 0 for s in self._sources.values()):
                    self._retry.appendleft(key)
                    break
                if any(key not in s.lacks for s in self._sources.values()):
                    waiting.append(key)  # a busy source may have it: ask it when it has room
                else:
                    self._stalled.append(key)  # every source lacks it
                if len(self._stalled) + len(waiting) < self.limits.window:
                    continue
                break
            self._in_flight[key] = (peer, deadline)
            self._sources[peer].in_flight += 1
            chosen.setdefault((peer, key[0]), []).append(key[1])
        self._retry.extendleft(reversed(waiting))
        effects: list[Effect] = []
        for (peer, level), indices in chosen.items():
            for start in range(0, len(indices), MAX_REQUEST_PIECES):
                names = tuple(indices[start : start + MAX_REQUEST_PIECES])
                effects.append(SendRequest(peer, Request(self.root, level, names)))
        return effects


class Downloads:
    """The active downloads by root hash, deduplicated, at most ``max_active`` at once."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self._active: dict[bytes, Download] = {}
        self._finished: OrderedDict[bytes, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._active)

    def get(self, root: bytes) -> Download | None:
        return self._active.get(root)

    def active(self) -> tuple[Download, ...]:
        return tuple(self._active.values())

    def finished(self, root: bytes) -> bool:
        return root in self._finished

    def offer(self, manifest: FileManifest, source: Peer, now_ms: int) -> list[Effect]:
        """An announcement arrived (from ``source``): start pulling, or add a source to the
        download of the same root. A finished root is not pulled again. Raises
        :class:`TransferError` (``TOO_LARGE``) when ``max_active`` downloads already run."""
        if manifest.root in self._finished:
            return []
        return self._start(manifest, now_ms).add_source(source, now_ms)

    def _start(self, manifest: FileManifest, now_ms: int) -> Download:
        download = self._active.get(manifest.root)
        if download is None:
            if len(self._active) >= self.limits.max_active:
                raise TransferError(
                    TransferReason.TOO_LARGE,
                    f"{self.limits.max_active} downloads already active",
                    root=manifest.root,
                )
            held = sum(d.tree_bytes for d in self._active.values())
            if held + tree_bytes(manifest.chunk_count) > self.limits.max_tree_bytes:
                raise TransferError(
                    TransferReason.TOO_LARGE,
                    f"the active downloads' trees would pass {self.limits.max_tree_bytes} bytes",
                    root=manifest.root,
                )
            download = Download(manifest, now_ms, self.limits)
            self._active[manifest.root] = download
        return download

    def resume(
        self,
        manifest: FileManifest,
        hash_pieces: Iterable[tuple[int, int, bytes]],
        chunks: Iterable[tuple[int, bytes]],
        now_ms: int,
    ) -> list[Effect]:
        """Take up a download a restart interrupted, from what its sink still holds
        (:meth:`Download.restore`); add its sources with :meth:`offer` afterwards."""
        if manifest.root in self._finished:
            return []
        download = self._start(manifest, now_ms)
        effects = download.restore(hash_pieces, chunks)
        self._settle(download, effects)
        return effects

    def receive(self, peer: Peer, body: Piece | Missing, now_ms: int) -> list[Effect]:
        """A piece or a missing answer from ``peer``."""
        download = self._active.get(body.root)
        if download is None:
            return [Dropped(peer, TransferReason.UNKNOWN_TRANSFER, body.root)]
        if isinstance(body, Piece):
            effects = download.receive(peer, body, now_ms)
        else:
            effects = download.missing(peer, body, now_ms)
        self._settle(download, effects)
        return effects

    def tick(self, now_ms: int) -> list[Effect]:
        effects: list[Effect] = []
        for download in list(self._active.values()):
            out = download.tick(now_ms)
            self._settle(download, out)
            effects += out
        return effects

    def ask_again(self, now_ms: int) -> list[Effect]:
        """:meth:`Download.ask_again` for every active download."""
        effects: list[Effect] = []
        for download in self._active.values():
            effects += download.ask_again(now_ms)
        return effects

    def abandon(self, root: bytes, reason: TransferReason) -> list[Effect]:
        """End a download without the file (the sink failed); erase its partial data."""
        download = self._active.pop(root, None)
        return [] if download is None else download.abandon(reason)

    def _settle(self, download: Download, effects: list[Effect]) -> None:
        """Forget a download that ended; remember a completed root (dedupe)."""
        for effect in effects:
            if isinstance(effect, Completed | Abandoned):
                self._active.pop(download.root, None)
            if isinstance(effect, Completed):
                self._finished[download.root] = None
                if len(self._finished) > self.limits.max_finished:
                    self._finished.popitem(last=False)
