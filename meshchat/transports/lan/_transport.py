"""The LAN transport: peers found by mDNS (or configured by address), links over TCP.

Theory of operation.

*Listening.* A TCP server accepts connections; each runs the link handshake
(:func:`open_stream_link`) and, once the peer is proven, is *admitted* (below).

*Dialling.* Every place to dial is a *target*: a service found by mDNS (keyed by its instance
name; adverts say nothing of who a node is) or a static ``host:port``. Each target has one
dial loop, which runs while the target exists (a discovered target ends when its service says
goodbye or expires; a static one lasts until :meth:`LanTransport.stop`):

==================================  =============================================================
situation                           the loop
==================================  =============================================================
a live link to the target's peer    waits for that link to close, then waits a reconnect delay
ours is the larger node id (when    waits ``dial_delay`` for the peer to dial us; dials only if no
the peer's is known at this         link appeared (covers peers that cannot reach us)
address) or else the larger
advertised instance label
otherwise                           dials each advertised address in turn; on failure waits the
                                    next backoff delay (doubling, jittered, capped at
                                    ``reconnect_max``), cut short when the service record changes
==================================  =============================================================

Every dial of an address (``host:port``) also waits for that address's own schedule, shared by
all targets that point there (:class:`~meshchat.transports.backoff.BackoffTable`): each dial
pushes the next one further out (doubling, up to ``reconnect_max``) until a link through the
address lasts ``STABLE_LINK_SECONDS``. So hundreds of fake adverts pointing at one listener make
a node dial it on one slow schedule, not once per advert; and discovery tracks only a few
services per host (:mod:`._discovery`).

*Admission: one link per peer.* If both sides dial at once, two connections join the same
pair. After a handshake, if a link to that peer already exists, both sides keep the connection
whose *initiator* has the smaller node id, and close the other. Both sides compute the same
answer, so they keep the same connection. A new connection that loses is closed without ever
being reported; an existing link that loses is reported down and the new one up. (Two
connections dialled by the same side cannot be ranked that way; the newer one is kept, since
the older is most likely left over from before a restart.)

*Slots.* Links and connections still in their handshake are bounded, and strangers cannot
hold them against contacts: when the table is full a newcomer evicts the weakest link (idle
strangers first, contacts never), idle strangers are swept out under pressure, and half-open
connections are bounded per remote address (:mod:`meshchat.transports.slots`). The node says
which peers are contacts (:class:`~meshchat.transports.base.LinkJudge`) and which links carried
something useful (:meth:`~meshchat.transports.base.Link.credit`).

Who answers at an address is known only once a handshake proved it: one we dialled there, or
one the peer dialled from that host, telling its listening port inside the encrypted handshake
(a claim never overrides what a dial proved). The transport remembers it (bounded) so that the
dialling rule and the "live link" check apply to the next advert at that address too (a peer's
advert changes its random name every so often).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from enum import Enum, auto
from typing import Any

from meshchat.errors import TransportError
from meshchat.identity import Identity
from meshchat.transports.backoff import Backoff, BackoffTable
from meshchat.transports.base import LinkHandler, Transport, TransportStatus
from meshchat.transports.lan._addresses import choose_addresses
from meshchat.transports.lan._discovery import (
    ROTATE_EVERY,
    SERVICE_TYPE,
    Discovery,
    ServiceRecord,
)
from meshchat.transports.lan._slotkeeper import SlotKeeper
from meshchat.transports.slots import SlotPolicy
from meshchat.transports.stream import (
    DEFAULT_HANDSHAKE_TIMEOUT,
    DEFAULT_QUEUE_FRAMES,
    StreamLink,
    abort_stream,
    enable_tcp_keepalive,
    open_stream_link,
)

__all__ = ["LanTransport"]

logger = logging.getLogger(__name__)

#: most dial targets (discovered plus static)
MAX_TARGETS = 256
#: most addresses whose proven node id is remembered
MAX_PROVEN_ADDRESSES = 1024
#: a link that lived this long resets the reconnect backoff when it ends
STABLE_LINK_SECONDS = 10.0
CONNECT_TIMEOUT = 3.0


class _Outcome(Enum):
    CONNECTED = auto()
    DUPLICATE = auto()
    FAILED = auto()
    WAITING = auto()


@dataclass(slots=True, eq=False)
class _Target:
    """Somewhere to dial: a discovered service or a static address."""

    key: str
    addresses: tuple[str, ...]
    port: int
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


class LanTransport(Transport):
    """Links to meshchat nodes on the local network (mDNS discovery, TCP links)."""

    name = "lan"

    def __init__(
        self,
        identity: Identity,
        *,
        host: str = "0.0.0.0",
        port: int = 0,
        interfaces: list[str] | None = None,
        advertised_addresses: list[str] | None = None,
        service_type: str = SERVICE_TYPE,
        reconnect_initial: float = 0.5,
        reconnect_max: float = 30.0,
        static_peers: Sequence[tuple[str, int]] = (),
        dial_delay: float = 2.0,
        discovery: bool = True,
        handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
        connect_timeout: float = CONNECT_TIMEOUT,
        queue_frames: int = DEFAULT_QUEUE_FRAMES,
        slots: SlotPolicy | None = None,
        mdns_rotate_every: float = ROTATE_EVERY,
    ) -> None:
        Backoff(reconnect_initial, reconnect_max)  # validates the pair early
        self._identity = identity
        self._node_id = identity.node_id
        self._host = host
        self._port = port
        self._interfaces = interfaces
        self._advertised = advertised_addresses
        self._service_type = service_type
        self._reconnect_initial = reconnect_initial
        self._reconnect_max = reconnect_max
        self._static_peers = list(static_peers)
        self._dial_delay = dial_delay
        self._use_discovery = discovery
        self._handshake_timeout = handshake_timeout
        self._connect_timeout = connect_timeout
        self._queue_frames = queue_frames
        self._slots = SlotKeeper(slots if slots is not None else SlotPolicy())
        self._rotate_every = mdns_rotate_every
        self._dial_backoff = BackoffTable(reconnect_initial, reconnect_max)
        #: (host, port) -> the node id a handshake there proved
        self._proven_at: dict[tuple[str, int], bytes] = {}

        self._handler: LinkHandler | None = None
        self._server: asyncio.Server | None = None
        self._listening_port: int | None = None
        self._advertising: list[str] = []
        self._discovery: Discovery | None = None
        self._running = False
        self._stopped = False
        self._links: dict[bytes, StreamLink] = {}
        self._targets: dict[str, _Target] = {}
        #: dial loops and inbound handshakes: cancelled on stop
        self._workers: set[asyncio.Task[Any]] = set()
        #: link closings in progress: awaited on stop
        self._closers: set[asyncio.Task[None]] = set()
        self._link_serial = 0
        self._link_added = asyncio.Event()

    # -- public surface --------------------------------------------------------------------------

    @property
    def listening_port(self) -> int | None:
        """The TCP port accepting links, once started."""
        return self._listening_port

    @property
    def advertised_addresses(self) -> list[str]:
        """The addresses put in the mDNS service record (empty until started)."""
        return list(self._advertising)

    @property
    def links(self) -> list[StreamLink]:
        """The live links, one per peer."""
        return list(self._links.values())

    def status(self) -> TransportStatus:
        if not self._running:
            return TransportStatus(self.name, up=False, detail="stopped", reason="stopped")
        mdns = "off"
        if self._discovery is not None:
            mdns = "advertised" if self._discovery.advertised else "registering"
        detail = (
            f"tcp {self._host}:{self._listening_port}, {len(self._links)} link(s), "
            f"{len(self._targets)} target(s), mdns {mdns}"
        )
        return TransportStatus(self.name, up=True, detail=detail + self._slots.describe())

    async def start(self, handler: LinkHandler) -> None:
        if self._running or self._stopped:
            raise TransportError(
                "a LanTransport can be started only once", transport=self.name, reason="misuse"
            )
        self._handler = handler
        self._slots.use_judge(handler)
        try:
            self._server = await asyncio.start_server(self._on_inbound, self._host, self._port)
        except OSError as exc:
            raise TransportError(
                f"cannot listen on {self._host}:{self._port}: {exc}",
                transport=self.name,
                address=f"{self._host}:{self._port}",
                reason="listen-failed",
            ) from exc
        self._listening_port = int(self._server.sockets[0].getsockname()[1])
        self._running = True
        logger.info("lan: listening on %s:%d", self._host, self._listening_port)
        if self._use_discovery:
            addresses = choose_addresses(self._host, self._interfaces, self._advertised)
            self._advertising = addresses
            discovery = Discovery(
                service_type=self._service_type,
                interfaces=self._interfaces,
                on_found=self._on_service_found,
                on_removed=self._on_service_removed,
                rotate_every=self._rotate_every,
            )
            try:
                await discovery.start(self._listening_port, addresses)
            except TransportError:
                await self.stop()
                raise
            self._discovery = discovery
        for host, port in self._static_peers:
            self._add_target(_Target(f"static:{host}:{port}", (host,), port))
        sweeper = asyncio.create_task(self._sweep_loop(), name="lan-sweep")
        self._workers.add(sweeper)
        sweeper.add_done_callback(self._workers.discard)

    async def stop(self) -> None:
        """Say goodbye on mDNS, stop listening and dialling, close every link (reported down)."""
        if self._stopped:
            return
        self._stopped = True
        self._running = False
        if self._discovery is not None:
            await self._discovery.stop()
            self._discovery = None
        if self._server is not None:
            self._server.close()
            await asyncio.sleep(0)  # let connections accepted just now register as workers
        workers = list(self._workers)
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        self._targets.clear()
        await asyncio.gather(*(link.close() for link in list(self._links.values())))
        while self._closers:
            await asyncio.gather(*list(self._closers), return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        self._listening_port = None
        logger.info("lan: stopped")

    # -- inbound ---------------------------------------------------------------------------------

    async def _on_inbound(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is None:  # pragma: no cover - asyncio runs every connection in a task
            await abort_stream(writer)
            return
        self._workers.add(task)
        try:
            peer = writer.get_extra_info("peername")
            address = str(peer[0]) if isinstance(peer, tuple) else "?"
            describe = f"{address}:{peer[1]}" if isinstance(peer, tuple) else "?"
            if not self._running:
                await abort_stream(writer)
                return
            self._slots.pending(writer, address)
            try:
                enable_tcp_keepalive(writer)
                link = await self._handshake(reader, writer, initiator=False, describe=describe)
            finally:
                self._slots.done(writer)
            if link is not None:
                self._admit(link)
        finally:
            self._workers.discard(task)

    # -- dialling --------------------------------------------------------------------------------

    def _on_service_found(self, record: ServiceRecord) -> None:
        if not self._running or (
            record.port == self._listening_port
            and any(a in self._advertising for a in record.addresses)
        ):
            return  # our own listener (an advert of ours from before a rotation)
        target = self._targets.get(record.name)
        if target is None:
            logger.info("lan: found %s at %s:%d", record.name, record.addresses, record.port)
            self._add_target(_Target(record.name, record.addresses, record.port))
            return
        if (target.addresses, target.port) != (record.addresses, record.port):
            logger.info("lan: %s moved to %s:%d", record.name, record.addresses, record.port)
            target.addresses, target.port = record.addresses, record.port
            target.changed.set()

    def _on_service_removed(self, name: str) -> None:
        target = self._targets.pop(name, None)
        if target is not None and target.task is not None:
            logger.info("lan: %s is gone from mDNS", name)
            target.task.cancel()

    def _add_target(self, target: _Target) -> None:
        if len(self._targets) >= MAX_TARGETS:
            logger.warning("lan: ignoring %s: %d targets already", target.key, MAX_TARGETS)
            return
        self._targets[target.key] = target
        target.task = asyncio.create_task(self._dial_loop(target), name=f"lan-dial-{target.key}")
        self._workers.add(target.task)
        target.task.add_done_callback(self._workers.discard)

    async def _dial_loop(self, target: _Target) -> None:
        backoff = Backoff(self._reconnect_initial, self._reconnect_max)
        while self._running:
            peer_id = self._peer_at(target)
            link = self._links.get(peer_id) if peer_id is not None else None
            if link is None:
                if self._should_wait(target, peer_id) and await self._wait_for_peer(
                    target, self._dial_delay
                ):
                    continue
                outcome, link, wait = await self._dial(target)
                if outcome is _Outcome.WAITING:
                    await self._pause(target, wait)
                    continue
                if outcome is _Outcome.FAILED:
                    await self._pause(target, backoff.next())
                    continue
                if link is None:  # a duplicate: the loop finds the kept link next time
                    continue
            await self._wait_link_closed(target, link, backoff)
            await self._pause(target, backoff.next())

    def _should_wait(self, target: _Target, peer_id: bytes | None) -> bool:
        """Whether the peer at ``target`` is the one to dial (so we wait for it first)."""
        if peer_id is not None:
            return self._node_id > peer_id
        own = self._discovery.name if self._discovery is not None else ""
        if not own or target.key.startswith("static:"):
            return False
        return own.split(".", 1)[0] > target.key.split(".", 1)[0]

    async def _wait_for_peer(self, target: _Target, timeout: float) -> bool:
        """Wait up to ``timeout`` s for a live link to whoever is known at ``target``."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while not self._linked_at(target):
                    await self._link_added.wait()
        return self._linked_at(target)

    def _linked_at(self, target: _Target) -> bool:
        peer_id = self._peer_at(target)
        return peer_id is not None and peer_id in self._links

    async def _wait_link_closed(self, target: _Target, link: StreamLink, backoff: Backoff) -> None:
        """Wait for ``link`` to end; a link that lasted resets the backoffs."""
        loop = asyncio.get_running_loop()
        began = loop.time()
        await link.wait_closed()
        if loop.time() - began >= STABLE_LINK_SECONDS:
            backoff.reset()
            for address in target.addresses:
                self._dial_backoff.reset((address, target.port))

    async def _pause(self, target: _Target, delay: float) -> None:
        """Sleep ``delay`` seconds, or less if the target's address changed."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await target.changed.wait()
        target.changed.clear()

    def _peer_at(self, target: _Target) -> bytes | None:
        """The node id last proven at one of ``target``'s addresses, if any."""
        for address in target.addresses:
            peer_id = self._proven_at.get((address, target.port))
            if peer_id is not None:
                return peer_id
        return None

    def _remember(self, address: tuple[str, int], peer_id: bytes, *, dialled: bool) -> None:
        if not dialled and address in self._proven_at:
            return  # a claim made by a peer that dialled us never overrides a dial's proof
        self._proven_at.pop(address, None)
        self._proven_at[address] = peer_id
        while len(self._proven_at) > MAX_PROVEN_ADDRESSES:
            del self._proven_at[next(iter(self._proven_at))]

    async def _dial(self, target: _Target) -> tuple[_Outcome, StreamLink | None, float]:
        """Try each address of ``target`` whose own backoff allows it now; the outcome, the
        link if one was started, and (when every address must wait) how long."""
        waits: list[float] = []
        for address in target.addresses:
            describe = f"{address}:{target.port}"
            key = (address, target.port)
            wait = self._dial_backoff.wait(key, self._now())
            if wait > 0:
                waits.append(wait)
                continue
            self._dial_backoff.attempt(key, self._now())
            try:
                async with asyncio.timeout(self._connect_timeout):
                    reader, writer = await asyncio.open_connection(address, target.port)
            except (OSError, TimeoutError) as exc:
                logger.debug("lan: cannot connect to %s: %r", describe, exc)
                continue
            enable_tcp_keepalive(writer)
            link = await self._handshake(reader, writer, initiator=True, describe=describe)
            if link is None:
                continue
            self._remember(key, link.peer.node_id, dialled=True)
            if self._admit(link):
                return _Outcome.CONNECTED, link, 0.0
            return _Outcome.DUPLICATE, None, 0.0
        if len(waits) == len(target.addresses):
            return _Outcome.WAITING, None, min(waits)
        return _Outcome.FAILED, None, 0.0

    # -- links -----------------------------------------------------------------------------------

    async def _handshake(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        initiator: bool,
        describe: str,
    ) -> StreamLink | None:
        if self._handler is None:  # pragma: no cover - only called once started
            await abort_stream(writer)
            return None
        self._link_serial += 1
        link_id = f"{self.name}:{self._link_serial}"
        try:
            return await open_stream_link(
                reader,
                writer,
                self._identity,
                self._handler,
                transport_name=self.name,
                link_id=link_id,
                initiator=initiator,
                describe=describe,
                handshake_timeout=self._handshake_timeout,
                queue_frames=self._queue_frames,
                start=False,
                on_closed=self._on_link_closed,
                port=self._listening_port,
            )
        except TransportError as exc:
            self._slots.failed_handshakes += 1
            logger.debug("lan: %s", exc)
            return None

    def _initiator_id(self, link: StreamLink) -> bytes:
        return self._node_id if link.initiator else link.peer.node_id

    def _admit(self, link: StreamLink) -> bool:
        """Start ``link`` unless a better link to the same peer exists; True if started."""
        peer_id = link.peer.node_id
        existing = self._links.get(peer_id)
        if not self._running:
            link.shutdown("transport stopping")
            return False
        if (
            existing is None
            and len(self._links) >= self._slots.policy.max_links
            and not self._slots.make_room(self._links, link)
        ):
            link.shutdown("no room")
            return False
        if existing is not None:
            old, new = self._initiator_id(existing), self._initiator_id(link)
            if old != new and old < new:
                logger.debug("lan: %s duplicates %s; closing it", link.link_id, existing.link_id)
                link.shutdown(f"duplicate of {existing.link_id}")
                return False
            logger.debug("lan: %s replaces %s", link.link_id, existing.link_id)
            existing.shutdown(f"replaced by {link.link_id}")
        self._links[peer_id] = link
        remote = link.remote_address
        if not link.initiator and link.peer_port is not None and remote is not None:
            self._remember((remote[0], link.peer_port), peer_id, dialled=False)
        logger.info(
            "lan: link %s up to %s (%s, %s)",
            link.link_id,
            link.peer.short_id,
            link.describe(),
            "dialled" if link.initiator else "accepted",
        )
        link.start()
        self._link_added.set()
        self._link_added = asyncio.Event()
        return True

    # -- slots ---------------------------------------------------------------------------------

    @staticmethod
    def _now() -> float:
        return asyncio.get_running_loop().time()

    async def _sweep_loop(self) -> None:
        """Close idle strangers' links while the table is crowded."""
        while self._running:
            await asyncio.sleep(self._slots.policy.sweep_every)
            self._slots.sweep(self._links)

    def _on_link_closed(self, link: StreamLink) -> None:
        if self._links.get(link.peer.node_id) is link:
            del self._links[link.peer.node_id]
            logger.info("lan: link %s to %s down", link.link_id, link.peer.short_id)
        self._close_later(link)

    def _close_later(self, link: StreamLink) -> None:
        """Finish closing ``link`` in a task that :meth:`stop` waits for."""
        self._track(self._closers, link.close(), f"{link.link_id}-close")

    @staticmethod
    def _track(tasks: set[asyncio.Task[None]], coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        tasks.add(task)
        task.add_done_callback(tasks.discard)
