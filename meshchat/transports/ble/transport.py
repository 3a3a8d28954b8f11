"""The BLE transport: advertising, scanning, dialling and link management over any backend.

Every node is peripheral and central at once: it advertises the meshchat service with its
rotating identifier (:mod:`.rotating_id`, :mod:`.advert`) and scans for other nodes. Each GATT
connection, in either role, becomes a :class:`~.session.Session`, which runs the link handshake
and only then is reported to the node as a :class:`~.session.BleLink`.

Theory of operation:

* **Who dials.** A node seen in a scan is a *candidate* (address, advertisement id, RSSI,
  first and last seen). Candidates weaker than ``rssi_floor``, already linked (by address or by
  advertisement id), backing off after a failure, not heard for ``candidate_ttl``, or heard for
  less than ``settle`` are skipped (``settle`` gives a linked peer that just rotated its
  identifier time to tell us the new one over the link). Of two nodes that see each other, the
  one with the smaller advertisement id dials at once; the other dials only if no link has
  formed after ``dial_grace`` (it may be out of the first's hearing, or the first may be a
  phone that does not dial). One dial at a time, the strongest candidate first.
* **One link per peer.** If both sides dialled anyway, the handshake reveals two sessions to
  the same peer. Both sides keep the session whose central has the smaller node id (and, for
  two sessions with the same central, the newer one) and close the other, so both sides make
  the same choice without talking. Replacing a link that was already up reports it down first.
* **Caps.** At most ``max_links`` sessions (handshaking or up) exist; at the cap the node stops
  advertising and dialling, and refuses incoming connections.
* **Reconnect.** When a link is lost its peer is forgotten as linked; its advertisements make
  it a candidate again, and the usual rules dial it back. Failed dials back off exponentially
  from ``backoff_initial`` to ``backoff_max`` per address, with jitter, so two nodes that
  failed by dialling each other at the same moment do not retry in step.
* **Rotation.** At each period boundary the node advertises its new identifier (from a fresh
  private address where the backend allows) and tells its linked peers the new identifier
  over the control channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from meshchat.errors import TransportError
from meshchat.identity import Identity
from meshchat.transports.backoff import BackoffTable
from meshchat.transports.base import LinkHandler, Transport, TransportStatus
from meshchat.transports.ble.rotating_id import RotatingId
from meshchat.transports.ble.seam import (
    AdvertiseSettings,
    BleBackend,
    BleConnection,
    GattProfile,
    ScanResult,
    ScanSettings,
)
from meshchat.transports.ble.session import BleLink, Session, SessionLimits

__all__ = ["BleOptions", "BleTransport"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BleOptions:
    """Timing and memory knobs of the BLE transport (the defaults suit real radios)."""

    scan: ScanSettings = field(default_factory=ScanSettings)
    advertise: AdvertiseSettings = field(default_factory=AdvertiseSettings)
    limits: SessionLimits = field(default_factory=SessionLimits)
    profile: GattProfile = field(default_factory=GattProfile)
    connect_timeout: float = 5.0
    #: a node must have been heard this long before it is dialled; by then a linked peer
    #: that rotated its identifier has told us its new one over the link
    settle: float = 0.5
    dial_grace: float = 3.0
    backoff_initial: float = 1.0
    backoff_max: float = 60.0
    candidate_ttl: float = 10.0
    tick: float = 0.25


@dataclass(slots=True)
class _Candidate:
    address: str
    adv_id: bytes | None
    rssi: int | None
    first_seen: float
    last_seen: float


class BleTransport(Transport):
    """Meshchat links over Bluetooth LE GATT, on any :class:`~.seam.BleBackend`."""

    name = "ble"

    def __init__(
        self,
        identity: Identity,
        backend: BleBackend,
        *,
        max_links: int = 7,
        rssi_floor: int = -90,
        rotation_seconds: float = 900.0,
        options: BleOptions | None = None,
        secret: bytes | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if max_links < 1:
            raise ValueError("max_links must be at least 1")
        self.identity = identity
        self.backend = backend
        self.max_links = max_links
        self.rssi_floor = rssi_floor
        self.options = options or BleOptions()
        self._rotating = RotatingId(rotation_seconds, secret)
        self._wall_clock = wall_clock
        self._handler: LinkHandler | None = None
        self._sessions: set[Session] = set()
        self._links: dict[bytes, Session] = {}
        self._candidates: dict[str, _Candidate] = {}
        self._backoff = BackoffTable(self.options.backoff_initial, self.options.backoff_max)
        self._ids = itertools.count(1)
        self._adv_id = b""
        self._advertising = False
        self._adv_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._started = False
        self._stopping = False
        self._last_error = ""
        #: counters for status and tests
        self.dials = 0
        self.dial_failures = 0
        self.refused = 0
        self.duplicates_closed = 0

    # -- Transport -------------------------------------------------------------------------

    async def start(self, handler: LinkHandler) -> None:
        if self._started or self._stopping:
            raise TransportError("BLE transport already started (a stopped one cannot restart)")
        self._handler = handler
        self._started = True
        self._adv_id = self._rotating.current(self._wall_clock())
        try:
            await self.backend.start(self.options.profile, self._on_incoming)
            await self._update_advertising()
            await self.backend.start_scanning(self._on_scan, self.options.scan)
        except TransportError as exc:
            self._last_error = str(exc)
            self._started = False
            raise
        self._spawn(self._dial_loop())
        self._spawn(self._rotation_loop())
        self._spawn(self._housekeeping_loop())

    async def stop(self) -> None:
        if not self._started or self._stopping:
            return
        self._stopping = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*(s.close() for s in list(self._sessions)), return_exceptions=True)
        await self.backend.stop()
        self._started = False

    def status(self) -> TransportStatus:
        up = self._started and not self._stopping
        detail = f"{len(self._links)} links, {len(self._sessions) - len(self._links)} connecting"
        if self._last_error:
            detail += f"; last error: {self._last_error}"
        reason = ""
        if not up:
            reason = self._last_error or ("stopping" if self._stopping else "not started")
        return TransportStatus(self.name, up=up, detail=detail, reason=reason)

    # -- views for the node and tests ------------------------------------------------------

    @property
    def adv_id(self) -> bytes:
        """The advertisement identifier in use now."""
        return self._adv_id

    @property
    def links(self) -> list[BleLink]:
        return [s.link for s in self._links.values() if s.link is not None]

    @property
    def sessions(self) -> list[Session]:
        return list(self._sessions)

    # -- discovery and dialling ------------------------------------------------------------

    def _on_scan(self, result: ScanResult) -> None:
        if self._stopping or result.adv_id == self._adv_id:
            return
        if result.rssi is not None and result.rssi < self.rssi_floor:
            return
        now = _now()
        candidate = self._candidates.get(result.address)
        if candidate is None or now - candidate.last_seen > self.options.candidate_ttl:
            candidate = _Candidate(result.address, result.adv_id, result.rssi, now, now)
            self._candidates[result.address] = candidate
        candidate.adv_id = result.adv_id
        candidate.rssi = result.rssi
        candidate.last_seen = now
        self._wake.set()

    def _linked(self, candidate: _Candidate) -> bool:
        for session in self._sessions:
            if session.connection.address == candidate.address:
                return True
            if candidate.adv_id is not None and session.peer_adv_id == candidate.adv_id:
                return True
        return False

    def _pick(self, now: float) -> _Candidate | None:
        if len(self._sessions) >= self.max_links:
            return None
        best: _Candidate | None = None
        for candidate in self._candidates.values():
            if now - candidate.last_seen > self.options.candidate_ttl:
                continue
            if self._backoff.wait(candidate.address, now) > 0:
                continue
            seen_for = now - candidate.first_seen
            if seen_for < self.options.settle:
                continue
            polite = candidate.adv_id is not None and self._adv_id < candidate.adv_id
            if not polite and seen_for < self.options.dial_grace:
                continue
            if self._linked(candidate):
                continue
            if best is None or (candidate.rssi or -127) > (best.rssi or -127):
                best = candidate
        return best

    async def _dial_loop(self) -> None:
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation
        # that coincides with its inner wait finishing, and this loop would never end.
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.options.tick):
                    await self._wake.wait()
            self._wake.clear()
            candidate = self._pick(_now())
            if candidate is not None:
                await self._dial(candidate)

    async def _dial(self, candidate: _Candidate) -> None:
        self.dials += 1
        try:
            connection = await self.backend.connect(candidate.address, self.options.connect_timeout)
        except TransportError as exc:
            self.dial_failures += 1
            self._last_error = str(exc)
            # Jitter, so two nodes that failed by dialling each other at once do not retry in
            # step (see meshchat.transports.backoff).
            self._backoff.attempt(candidate.address, _now())
            _log.info("BLE dial %s failed: %s", candidate.address, exc)
            return
        if self._stopping or len(self._sessions) >= self.max_links:
            await connection.close()
            return
        self._add_session(connection, candidate.adv_id)

    def _on_incoming(self, connection: BleConnection) -> None:
        if self._stopping or len(self._sessions) >= self.max_links:
            self.refused += 1
            self._spawn(connection.close())
            return
        self._add_session(connection, None)

    # -- sessions --------------------------------------------------------------------------

    def _add_session(self, connection: BleConnection, peer_adv_id: bytes | None) -> None:
        session = Session(
            connection,
            self.identity,
            self.options.limits,
            on_ready=self._on_ready,
            on_frame=self._on_frame,
            on_control=self._on_control,
            on_closed=self._on_closed,
            peer_adv_id=peer_adv_id,
        )
        self._sessions.add(session)
        session.begin()
        self._spawn(self._update_advertising())

    def _on_ready(self, session: Session) -> None:
        node_id = session.peer.node_id
        existing = self._links.get(node_id)
        if existing is not None:
            if self._keep_newer(session, existing):
                del self._links[node_id]
                self._report_down(existing)
                self._spawn(existing.close())
            else:
                self.duplicates_closed += 1
                self._spawn(session.close())
                return
            self.duplicates_closed += 1
        self._links[node_id] = session
        self._backoff.reset(session.connection.address)
        session.link = BleLink(session, f"ble:{next(self._ids)}")
        session.send_adv_id(self._adv_id)
        if self._handler is not None:
            self._handler.link_up(session.link)

    def _keep_newer(self, new: Session, old: Session) -> bool:
        """Whether ``new`` replaces ``old`` (both to the same peer); both ends agree."""
        own = self.identity.node_id
        new_central = own if new.initiator else new.peer.node_id
        old_central = own if old.initiator else old.peer.node_id
        return new_central <= old_central

    def _on_frame(self, session: Session, frame: bytes) -> None:
        if self._handler is not None and session.link is not None and not self._stopping:
            self._handler.frame_received(session.link, frame)

    def _on_control(self, session: Session, adv_id: bytes) -> None:
        session.peer_adv_id = adv_id

    def _on_closed(self, session: Session) -> None:
        self._sessions.discard(session)
        if session.link is not None:
            node_id = session.peer.node_id
            if self._links.get(node_id) is session:
                del self._links[node_id]
            self._report_down(session)
        # A lost peer becomes a fresh candidate: the dial grace starts over, so both sides do
        # not redial at once.
        candidate = self._candidates.get(session.connection.address)
        if candidate is not None:
            candidate.first_seen = _now()
        if not self._stopping:
            self._spawn(self._update_advertising())
            self._wake.set()

    def _report_down(self, session: Session) -> None:
        link, session.link = session.link, None
        if link is not None and self._handler is not None:
            self._handler.link_down(link)

    # -- advertising and rotation ----------------------------------------------------------

    async def _update_advertising(self) -> None:
        async with self._adv_lock:
            want = self._started and not self._stopping and len(self._sessions) < self.max_links
            if want and not self._advertising:
                await self.backend.start_advertising(self._adv_id, self.options.advertise)
            elif not want and self._advertising:
                await self.backend.stop_advertising()
            self._advertising = want

    async def _rotation_loop(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self._rotating.next_change(self._wall_clock()) + 0.001)
            await self.rotate()

    async def rotate(self) -> None:
        """Move to the current period's identifier (called at each period boundary)."""
        adv_id = self._rotating.current(self._wall_clock())
        if adv_id == self._adv_id:
            return
        # Linked peers hear the new identifier before the air does, so they do not take our
        # new advertisement for a stranger and dial it.
        for session in self._links.values():
            session.send_adv_id(adv_id)
        async with self._adv_lock:
            self._adv_id = adv_id
            if self._advertising:
                await self.backend.start_advertising(adv_id, self.options.advertise)

    async def _housekeeping_loop(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self.options.tick)
            now = _now()
            ttl = self.options.candidate_ttl
            for address, candidate in list(self._candidates.items()):
                if now - candidate.last_seen > 2 * ttl:
                    del self._candidates[address]
            # an address whose wait ended long ago starts again from backoff_initial
            self._backoff.forget_due_before(now - self.options.backoff_max)
            for session in list(self._sessions):
                session.tick(now)

    def _spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._last_error = repr(task.exception())
            _log.warning("BLE transport task failed: %r", task.exception())


def _now() -> float:
    return asyncio.get_running_loop().time()
