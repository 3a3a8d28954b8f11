"""The LAN transport: peers found by mDNS (or configured by address), links over TCP.

Theory of operation.

*Listening.* A TCP server accepts connections; each runs the link handshake
(:func:`open_stream_link`) and, once the peer is proven, is *admitted* (below).

*Dialling.* Every place to dial is a *target*: a service found by mDNS (keyed by its instance
name, carrying the node id its TXT record claims) or a static ``host:port``. Each target has one
dial loop, which runs while the target exists (a discovered target ends when its service says
goodbye or expires; a static one lasts until :meth:`LanTransport.stop`):

==================================  =============================================================
situation                           the loop
==================================  =============================================================
a live link to the target's peer    waits for that link to close, then waits a reconnect delay
our node id is larger than the      waits ``dial_delay`` for the peer to dial us; dials only if no
peer's (claimed or proven)          link appeared (covers peers that cannot reach us)
otherwise                           dials each advertised address in turn; on failure waits the
                                    next backoff delay (doubling, jittered, capped at
                                    ``reconnect_max``), cut short when the service record changes
==================================  =============================================================

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

The TXT ``id`` is a hint for the dialling rule; the handshake proves who answered. When the two
differ the link is kept (it is proven) and the mismatch is logged.
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
from meshchat.identity import Identity, PublicIdentity
from meshchat.transports.base import LinkHandler, LinkJudge, Transport, TransportStatus
from meshchat.transports.lan._addresses import choose_addresses
from meshchat.transports.lan._backoff import Backoff
from meshchat.transports.lan._discovery import SERVICE_TYPE, Discovery, ServiceRecord
from meshchat.transports.slots import PendingView, SlotPolicy, SlotView
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

#: how often idle strangers' links are looked for (seconds)
SWEEP_INTERVAL = 5.0
#: most dial targets (discovered plus static)
MAX_TARGETS = 256
#: a link that lived this long resets the reconnect backoff when it ends
STABLE_LINK_SECONDS = 10.0
CONNECT_TIMEOUT = 3.0


class _Outcome(Enum):
    CONNECTED = auto()
    DUPLICATE = auto()
    FAILED = auto()


@dataclass(slots=True, eq=False)
class _Target:
    """Somewhere to dial: a discovered service or a static address."""

    key: str
    addresses: tuple[str, ...]
    port: int
    #: node id claimed by the service's TXT record (None for static peers)
    hint: bytes | None
    #: node id proven by the last handshake through this target
    proven: bytes | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    @property
    def node_id(self) -> bytes | None:
        return self.proven if self.proven is not None else self.hint


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
        self._slots = slots if slots is not None else SlotPolicy()
        self._judge: LinkJudge | None = None

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
        #: inbound connections in their handshake, by their writer
        self._pending: dict[asyncio.StreamWriter, PendingView] = {}
        #: links closed to make room or because they idled (for status and tests)
        self.evicted = 0
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
            return TransportStatus(self.name, up=False, detail="stopped")
        mdns = "off"
        if self._discovery is not None:
            mdns = "advertised" if self._discovery.advertised else "registering"
        detail = (
            f"tcp {self._host}:{self._listening_port}, {len(self._links)} link(s), "
            f"{len(self._targets)} target(s), mdns {mdns}"
        )
        return TransportStatus(self.name, up=True, detail=detail)

    async def start(self, handler: LinkHandler) -> None:
        if self._running or self._stopped:
            raise TransportError("a LanTransport can be started only once")
        self._handler = handler
        self._judge = handler if isinstance(handler, LinkJudge) else None
        try:
            self._server = await asyncio.start_server(self._on_inbound, self._host, self._port)
        except OSError as exc:
            raise TransportError(f"cannot listen on {self._host}:{self._port}: {exc}") from exc
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
            )
            try:
                await discovery.start(self._node_id, self._listening_port, addresses)
            except TransportError:
                await self.stop()
                raise
            self._discovery = discovery
        for host, port in self._static_peers:
            self._add_target(_Target(f"static:{host}:{port}", (host,), port, None))
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
        assert task is not None
        self._workers.add(task)
        try:
            peer = writer.get_extra_info("peername")
            address = str(peer[0]) if isinstance(peer, tuple) else "?"
            describe = f"{address}:{peer[1]}" if isinstance(peer, tuple) else "?"
            if not self._running:
                await abort_stream(writer)
                return
            self._make_room_for(address)
            self._pending[writer] = PendingView(writer, address, self._now())
            try:
                enable_tcp_keepalive(writer)
                link = await self._handshake(reader, writer, initiator=False, describe=describe)
            finally:
                self._pending.pop(writer, None)
            if link is not None:
                self._admit(link)
        finally:
            self._workers.discard(task)

    def _make_room_for(self, address: str) -> None:
        """Drop a half-open connection if a new one from ``address`` would exceed the bounds."""
        victim = self._slots.pending_victim(list(self._pending.values()), address)
        if isinstance(victim, asyncio.StreamWriter):
            view = self._pending.pop(victim)
            logger.info("lan: dropping a pending handshake from %s to make room", view.address)
            victim.transport.abort()

    # -- dialling --------------------------------------------------------------------------------

    def _on_service_found(self, record: ServiceRecord) -> None:
        if not self._running or record.node_id == self._node_id:
            return
        target = self._targets.get(record.name)
        if target is None:
            logger.info("lan: found %s at %s:%d", record.name, record.addresses, record.port)
            self._add_target(_Target(record.name, record.addresses, record.port, record.node_id))
            return
        if (target.addresses, target.port, target.hint) != (
            record.addresses,
            record.port,
            record.node_id,
        ):
            logger.info("lan: %s moved to %s:%d", record.name, record.addresses, record.port)
            target.addresses, target.port, target.hint = (
                record.addresses,
                record.port,
                record.node_id,
            )
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
            peer_id = target.node_id
            link = self._links.get(peer_id) if peer_id is not None else None
            if link is None:
                if (
                    peer_id is not None
                    and self._node_id > peer_id
                    and await self._wait_for_link(peer_id, self._dial_delay)
                ):
                    continue
                outcome, link = await self._dial(target)
                if outcome is _Outcome.FAILED:
                    await self._pause(target, backoff.next())
                    continue
                if link is None:  # a duplicate: the loop finds the kept link next time
                    continue
            await self._wait_link_closed(link, backoff)
            await self._pause(target, backoff.next())

    async def _wait_link_closed(self, link: StreamLink, backoff: Backoff) -> None:
        """Wait for ``link`` to end; a link that lasted resets the backoff."""
        loop = asyncio.get_running_loop()
        began = loop.time()
        await link.wait_closed()
        if loop.time() - began >= STABLE_LINK_SECONDS:
            backoff.reset()

    async def _pause(self, target: _Target, delay: float) -> None:
        """Sleep ``delay`` seconds, or less if the target's address changed."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await target.changed.wait()
        target.changed.clear()

    async def _wait_for_link(self, peer_id: bytes, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a link to ``peer_id``; True if one is up."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while peer_id not in self._links:
                    await self._link_added.wait()
        return peer_id in self._links

    async def _dial(self, target: _Target) -> tuple[_Outcome, StreamLink | None]:
        """Try each address of ``target``; the outcome and the link if one was started."""
        for address in target.addresses:
            describe = f"{address}:{target.port}"
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
            proven = link.peer.node_id
            if target.hint is not None and proven != target.hint:
                logger.warning(
                    "lan: %s claimed node %s but proved to be %s; keeping the link",
                    target.key,
                    target.hint.hex()[:16],
                    proven.hex()[:16],
                )
            target.proven = proven
            if self._admit(link):
                return _Outcome.CONNECTED, link
            return _Outcome.DUPLICATE, None
        return _Outcome.FAILED, None

    # -- links -----------------------------------------------------------------------------------

    async def _handshake(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        initiator: bool,
        describe: str,
    ) -> StreamLink | None:
        assert self._handler is not None
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
            )
        except TransportError as exc:
            logger.info("lan: %s", exc)
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
        if existing is None and len(self._links) >= self._slots.max_links:
            preferred = self._prefers(link.peer)
            victim = self._slots.victim(self._views(), preferred, self._now())
            if not isinstance(victim, bytes) or victim not in self._links:
                logger.info("lan: no room for %s (%s)", link.peer.short_id, link.describe())
                link.shutdown("no room")
                return False
            self._evict(self._links[victim], f"making room for {link.peer.short_id}")
        if existing is not None:
            old, new = self._initiator_id(existing), self._initiator_id(link)
            if old != new and old < new:
                logger.debug("lan: %s duplicates %s; closing it", link.link_id, existing.link_id)
                link.shutdown(f"duplicate of {existing.link_id}")
                return False
            logger.debug("lan: %s replaces %s", link.link_id, existing.link_id)
            existing.shutdown(f"replaced by {link.link_id}")
        self._links[peer_id] = link
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

    def _prefers(self, peer: PublicIdentity) -> bool:
        if self._judge is None:
            return False
        try:
            return self._judge.prefers(peer)
        except Exception:
            logger.exception("lan: the link judge failed")
            return False

    def _views(self) -> list[SlotView]:
        return [
            SlotView(peer_id, self._prefers(link.peer), link.since, link.last_useful)
            for peer_id, link in self._links.items()
        ]

    def _evict(self, link: StreamLink, why: str) -> None:
        logger.info("lan: closing link %s to %s: %s", link.link_id, link.peer.short_id, why)
        self.evicted += 1
        link.shutdown(why)

    async def _sweep_loop(self) -> None:
        """Close idle strangers' links while the table is crowded."""
        while self._running:
            await asyncio.sleep(SWEEP_INTERVAL)
            for key in self._slots.idle(self._views(), self._now()):
                link = self._links.get(key) if isinstance(key, bytes) else None
                if link is not None:
                    self._evict(link, "idle")

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
