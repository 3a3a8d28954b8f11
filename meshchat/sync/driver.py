"""Sync sessions with each of my other devices, over a store: what the node runs.

:class:`SyncDriver` holds at most one :class:`~meshchat.sync.session.SyncSession` per peer
device and turns sync bytes received into sync bytes to send, reading and writing through a
:class:`SyncStore` (the node's :class:`~meshchat.store.Store`). It does no I/O of its own and
does not check who the peer is: the node hands it only blobs whose authenticated sender is one
of my devices (``AccountBook.own_devices``), and sends what it returns back in that session.

Two devices that meet may start a session each; the one with the lower session id is kept by
both (while a session this device started has had no answer, a Reconcile of a higher id is
ignored and one of a lower id replaces it; the peer does the same), so one reconciliation runs.
Any other Reconcile of a new session replaces the one held (the peer started again). A
session idle for :data:`IDLE_MS` is forgotten; nothing of a session is kept on disk, and the
next one starts from the stores again (resuming costs what is still different).

Records are applied whenever they come from my device, in or out of a session (they may
follow a session the receiver already cut): each message of records is bounded, and an own
device could write any record anyway.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from meshchat.errors import SyncError, SyncReason
from meshchat.sync.items import SortedItems
from meshchat.sync.records import Record
from meshchat.sync.session import SyncSession
from meshchat.sync.wire import Reconcile, Records, decode_sync, pack_records

__all__ = [
    "IDLE_MS",
    "MAX_PEERS",
    "Applied",
    "Outcome",
    "PeerProgress",
    "Pushes",
    "SyncDriver",
    "SyncStore",
    "refuse_stranger",
]

#: A session with no message for this long is forgotten.
IDLE_MS = 120_000
#: Sessions kept at once (a device list holds at most 8 devices).
MAX_PEERS = 16
#: Records fetched from the store per call.
FETCH_BATCH = 1_000


class Applied(Protocol):
    """What the store reports after applying records (``SyncApplied``)."""

    @property
    def sids(self) -> list[bytes]: ...


class SyncStore(Protocol):
    """The store calls sync needs (see ``store/_sync.py``)."""

    def sync_listing(self, now_ms: int) -> list[tuple[int, bytes]]: ...

    def sync_records(self, sids: Iterable[bytes]) -> list[Record]: ...

    def apply_sync(self, records: Sequence[Record], now_ms: int) -> Applied: ...


@dataclass(slots=True)
class PeerProgress:
    """Where the sync with one peer device stands (``meshchat device sync``)."""

    peer: bytes
    session: bytes
    started_ms: int
    last_ms: int
    rounds: int = 0
    sent: int = 0  #: records sent to the peer in this session
    received: int = 0  #: records received from the peer in this session
    waiting: int = 0  #: records asked of the peer that have not arrived
    coming: int = 0  #: records the peer said it is still sending
    error: str | None = None
    #: an answer may still come (this side sent the last message, or records are owed)
    expecting: bool = True

    @property
    def left(self) -> int:
        """Items still to come from the peer, as far as this device knows."""
        return max(self.waiting, self.coming)

    @property
    def done(self) -> bool:
        return self.left == 0


@dataclass(slots=True)
class Outcome:
    """What one received sync message asks of the node."""

    out: list[bytes] = field(default_factory=list)  #: sync bytes to send back, in order
    applied: Applied | None = None  #: what the records of the message changed
    #: records to push after ``out``, fetched batch by batch (:meth:`Pushes.next`)
    pushes: Pushes | None = None


class Pushes:
    """Records owed to a peer, fetched from the store and packed a batch at a time, so a
    device sends the first ones while it still reads the rest (call :meth:`next` where the
    store may be called, until it returns nothing)."""

    def __init__(
        self, store: SyncStore, session: bytes, sids: list[bytes], progress: PeerProgress
    ) -> None:
        self._store = store
        self._session = session
        self._sids = sids
        self._at = 0
        self._progress = progress

    @property
    def left(self) -> int:
        return len(self._sids) - self._at

    def next(self) -> list[bytes]:
        """The next messages of records (empty when every record went)."""
        while self._at < len(self._sids):
            batch = self._sids[self._at : self._at + FETCH_BATCH]
            self._at += len(batch)
            records = self._store.sync_records(batch)
            if not records:
                continue
            self._progress.sent += len(records)
            packed = pack_records(self._session, records)
            return [replace(m, left=m.left + self.left).encode() for m in packed]
        return []

    def all(self) -> list[bytes]:
        """Every message left (for small pushes and tests)."""
        out: list[bytes] = []
        while batch := self.next():
            out.extend(batch)
        return out


@dataclass(slots=True)
class _Peer:
    session: SyncSession
    progress: PeerProgress
    started_here: bool = False


class SyncDriver:
    """The sync sessions of one device with its other devices."""

    def __init__(self, store: SyncStore) -> None:
        self.store = store
        self._peers: dict[bytes, _Peer] = {}
        self._last: dict[bytes, PeerProgress] = {}

    def _open(self, peer: bytes, session: bytes | None, now_ms: int) -> _Peer:
        items = SortedItems(self.store.sync_listing(now_ms))
        s = SyncSession(items, session)
        state = _Peer(s, PeerProgress(peer, s.session, now_ms, now_ms))
        self._peers[peer] = state
        self._last[peer] = state.progress
        if len(self._peers) > MAX_PEERS:
            oldest = min(self._peers, key=lambda p: self._peers[p].progress.last_ms)
            del self._peers[oldest]
        if len(self._last) > MAX_PEERS:
            del self._last[min(self._last, key=lambda p: self._last[p].last_ms)]
        return state

    def start(self, peer: bytes, now_ms: int) -> list[bytes]:
        """The first message of a new session with ``peer``, unless one is running (an answer
        may still come in it, and it is not idle)."""
        running = self._peers.get(peer)
        busy = running is not None and running.progress.expecting
        if busy and running is not None and now_ms - running.progress.last_ms < IDLE_MS:
            return []
        state = self._open(peer, None, now_ms)
        state.started_here = True
        return [state.session.start().encode()]

    def drop(self, peer: bytes) -> None:
        """Forget the session with ``peer`` (it left the device list, or went away)."""
        self._peers.pop(peer, None)

    def receive(self, peer: bytes, data: bytes, now_ms: int) -> Outcome:
        """Handle sync bytes from my device ``peer``.

        Raises :class:`~meshchat.errors.PacketError` for bytes that are not a sync message,
        and :class:`SyncError` when the peer oversteps a session's bounds (the session is then
        dropped).
        """
        message = decode_sync(data)
        if isinstance(message, Records):
            return self._records(peer, message, now_ms)
        state = self._peers.get(peer)
        if state is None or now_ms - state.progress.last_ms >= IDLE_MS:
            state = self._open(peer, message.session, now_ms)
        elif message.session != state.session.session:
            starting = state.started_here and state.session.rounds == 0
            if starting and message.session > state.session.session:
                return Outcome()  # both started at once: the peer drops its session for ours
            state = self._open(peer, message.session, now_ms)
        return self._reconcile(peer, state, message, now_ms)

    def _reconcile(self, peer: bytes, state: _Peer, message: Reconcile, now_ms: int) -> Outcome:
        progress = state.progress
        progress.last_ms = now_ms
        try:
            step = state.session.receive(message)
        except SyncError as exc:
            progress.error = exc.reason.value
            self.drop(peer)
            raise
        progress.rounds = state.session.rounds
        progress.waiting = state.session.waiting
        progress.expecting = bool(step.replies) or progress.waiting > 0
        out = [reply.encode() for reply in step.replies]
        wanted = list(dict.fromkeys(step.to_send))
        pushes = Pushes(self.store, state.session.session, wanted, progress) if wanted else None
        return Outcome(out, pushes=pushes)

    def _records(self, peer: bytes, message: Records, now_ms: int) -> Outcome:
        applied = self.store.apply_sync(message.records, now_ms)
        state = self._peers.get(peer)
        if state is not None and state.session.session == message.session:
            state.session.arrived(applied.sids)
            progress = state.progress
            progress.last_ms = now_ms
            progress.received += len(message.records)
            progress.waiting = state.session.waiting
            progress.coming = message.left
            progress.expecting = progress.waiting > 0 or progress.coming > 0
        return Outcome(applied=applied)

    def progress(self) -> list[PeerProgress]:
        """The latest session with each peer (running or ended), newest first."""
        return sorted(self._last.values(), key=lambda p: -p.last_ms)

    def left(self) -> int:
        """Items still to come from all peers."""
        return sum(p.left for p in self._last.values() if p.error is None)


def refuse_stranger(peer: bytes, own: Iterable[bytes]) -> None:
    """Raise :class:`SyncError` (NOT_MY_DEVICE) unless ``peer`` is one of ``own`` node ids."""
    if peer not in set(own):
        raise SyncError(SyncReason.NOT_MY_DEVICE, f"sync from {peer.hex()[:8]}, not my device")
