"""The DHT transport: serverless rendezvous for gateways through a Kademlia network.

Theory of operation. Like the relay, the DHT presents itself to the node as one link
(``dht:<port>``), up from :meth:`DhtTransport.start` to :meth:`DhtTransport.stop`, and uses
:func:`meshchat.gateway.route` to pick what leaves the mesh. Channels are not bridged over
the DHT (a record slot holds one message; a busy channel would overwrite itself), only
mailboxes and sealed direct messages.

*Sending.* A frame for a node not heard locally becomes a signed, sealed record
(:mod:`._records`) stored with Kademlia ``set`` under the record key of the recipient's
mailbox slot. A sealed frame (suite RATCHET, addressed to a rotating tag) is filed under its
tag instead (:mod:`._sealed`). Stores that fail (no DHT neighbour yet) wait in a bounded outbox
and are tried again on every poll round.

*Receiving.* Every ``poll_s`` the gateway fetches each slot of every mailbox it collects (its
own and those of local nodes heard within ``serve_window_s``, at most ``max_mailboxes``), plus
at most ``sealed_per_round`` slots of the tags its own node answers to in the current and the
previous epoch (asked of the node through :class:`._sealed.SealedTagHost`), and hands each
verified frame to the node through ``frame_received`` on the DHT link. A record
that fails any check is ignored and counted; a packet id already handed over is not handed
over again (a record stays in the DHT until it expires, and is fetched on every round).

*Health.* The transport is up while its routing table has a neighbour; while it has none it
bootstraps again every round (so a bootstrap node that starts later is found).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from meshchat.errors import CryptoError, PacketError, UsageError
from meshchat.gateway import GatewayHost, RouteKind, route
from meshchat.identity import Identity
from meshchat.router.seen import SeenSet
from meshchat.transports.base import LinkHandler, Transport, TransportStatus
from meshchat.transports.dht._protocol import GuardLimits
from meshchat.transports.dht._records import (
    MAX_RECORD,
    SLOTS,
    build_record,
    mailbox_signer,
    open_record,
    record_key,
    slot_of,
)
from meshchat.transports.dht._sealed import (
    SealedPolls,
    SealedTagHost,
    build_sealed_record,
    open_sealed_record,
    sealed_expiry,
    sealed_record_key,
)
from meshchat.transports.dht._server import GuardedServer
from meshchat.transports.dht._storage import RecordStorage, StorageLimits
from meshchat.transports.gateway_link import GatewayLink
from meshchat.transports.served import ServedMailboxes
from meshchat.wire import codec
from meshchat.wire.packet import MAX_AGE_MS, Packet

__all__ = ["DhtConfig", "DhtLink", "DhtTransport"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DhtConfig:
    """How a gateway uses the Kademlia DHT."""

    host: str = "0.0.0.0"
    port: int = 0
    bootstrap: tuple[tuple[str, int], ...] = ()
    retention_s: int = 7 * 24 * 3600
    poll_s: float = 5.0
    local_window_s: float = 15 * 60
    serve_window_s: float = 7 * 24 * 3600
    max_mailboxes: int = 64
    #: sealed-tag slots looked up per poll round (a full sweep is tags x 2 epochs x 4 slots)
    sealed_per_round: int = 16
    outbox_limit: int = 1000
    #: records this node keeps for others; one source address may fill ``1/source_share``
    max_stored: int = 4096
    source_share: int = 8
    ksize: int = 20
    alpha: int = 3
    guard: GuardLimits = field(default_factory=GuardLimits)

    def __post_init__(self) -> None:
        if (
            self.poll_s <= 0
            or self.max_mailboxes < 1
            or self.outbox_limit < 1
            or self.sealed_per_round < 1
            or self.max_stored < 1
            or self.source_share < 1
        ):
            raise UsageError(
                "DHT poll interval, mailbox, sealed and outbox limits must be positive"
            )
        if not 0 <= self.port < 65536:
            raise UsageError("DHT port out of range")


class DhtLink(GatewayLink):
    """The internet, as reached through the DHT."""

    def __init__(self, transport: DhtTransport) -> None:
        link_id = f"dht:{transport.port}"
        super().__init__(transport, link_id, "dht", f"dht-peer:{link_id}")


@dataclass(slots=True)
class _Store:
    key: bytes
    record: bytes
    expires_s: int


class DhtTransport(Transport):
    """A gateway's attachment to a Kademlia DHT."""

    name = "dht"

    def __init__(
        self, identity: Identity, config: DhtConfig, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.config = config
        self.node_id = identity.node_id
        self.clock = clock
        self.port = config.port
        limits = StorageLimits.scaled(config.max_stored, config.source_share)
        self.storage = RecordStorage(limits, clock)
        self.counters: dict[str, int] = {}
        self.handler: LinkHandler | None = None
        self.link: DhtLink | None = None
        self._host: GatewayHost | None = None
        self._tags_host: SealedTagHost | None = None
        self._sealed = SealedPolls(config.sealed_per_round)
        self._sealed_tags = 0
        self._server: Any = None
        self._handled = SeenSet(65536, MAX_AGE_MS)
        self.served = ServedMailboxes(
            self.node_id,
            local_window_s=config.local_window_s,
            serve_window_s=config.serve_window_s,
            most=config.max_mailboxes,
        )
        self._outbox: deque[_Store] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # -- life cycle ----------------------------------------------------------------------

    async def start(self, handler: LinkHandler) -> None:
        self.handler = handler
        self._host = handler if isinstance(handler, GatewayHost) else None
        self._tags_host = handler if isinstance(handler, SealedTagHost) else None
        cfg = self.config
        server = GuardedServer(cfg.ksize, cfg.alpha, self.storage, cfg.guard)
        await server.listen(self.config.port, interface=self.config.host)
        self._server = server
        self.port = int(server.transport.get_extra_info("sockname")[1])
        self.link = DhtLink(self)
        handler.link_up(self.link)
        self._task = asyncio.create_task(self._run(), name=f"meshchat-{self.link.link_id}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        server, self._server = self._server, None
        if server is not None:
            server.stop()
        link, self.link = self.link, None
        if link is not None and self.handler is not None:
            self.handler.link_down(link)

    @property
    def neighbours(self) -> int:
        server = self._server
        if server is None or server.protocol is None:
            return 0
        return len(server.bootstrappable_neighbors())

    def status(self) -> TransportStatus:
        up = self.neighbours > 0
        mailboxes = len(self._mailboxes())
        detail = (
            f"kademlia udp {self.config.host}:{self.port} "
            f"{'up' if up else 'down: no DHT neighbours'}; {self.neighbours} neighbours; "
            f"gateway for {mailboxes} mailboxes; polling {self._sealed_tags} sealed tags; "
            f"outbox {len(self._outbox)}"
        )
        return TransportStatus(self.name, up, detail, "" if up else "no DHT neighbours")

    def guard_counters(self) -> dict[str, int]:
        """What the Kademlia node refused or dropped (see :mod:`._protocol`)."""
        server = self._server
        return server.counters if isinstance(server, GuardedServer) else {}

    def _count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n

    # -- sending -------------------------------------------------------------------------

    def offer(self, frame: bytes) -> bool:
        if self.link is None:
            return False
        now_s = self.clock()
        target = route(frame, self.served.local, set())
        if target is None or target.kind is RouteKind.CHANNEL:
            self._count("tx.stays-local")
            return True
        if target.packet_id in self._handled:
            self._count("tx.already-handled")
            return True
        expires_s = int(min(now_s + self.config.retention_s, target.expires_ms / 1000))
        try:
            if target.kind is RouteKind.SEALED:
                created_ms = target.expires_ms - MAX_AGE_MS
                expires_s = sealed_expiry(created_ms, expires_s, self.config.retention_s, now_s)
                if expires_s <= now_s:
                    self._count("tx.expired")
                    return True
                _, key, record = build_sealed_record(frame, expires_s)
            else:
                if expires_s <= now_s:
                    self._count("tx.expired")
                    return True
                slot = slot_of(target.packet_id)
                key, record = build_record(target.target, slot, frame, expires_s)
        except PacketError:
            self._count("tx.unsealable")
            return False
        self._handled.add(target.packet_id, int(now_s * 1000))
        self._outbox.append(_Store(key, record, expires_s))
        while len(self._outbox) > self.config.outbox_limit:
            self._outbox.popleft()
            self._count("tx.dropped")
        self._count("tx.sealed" if target.kind is RouteKind.SEALED else "tx.mailbox")
        self._wake.set()
        return True

    async def _flush(self) -> None:
        """Store every waiting record; those that find no DHT node wait for the next round."""
        server = self._server
        pending, self._outbox = self._outbox, deque()
        now_s = self.clock()
        live = [item for item in pending if item.expires_s > now_s]
        if not live:
            return
        results = await asyncio.gather(
            *(server.set(item.key, item.record) for item in live), return_exceptions=True
        )
        for item, ok in zip(live, results, strict=True):
            if ok is True:
                self._count("tx.stored")
            else:
                self._outbox.append(item)
                self._count("tx.store-failed")

    # -- receiving -----------------------------------------------------------------------

    def _mailboxes(self) -> list[bytes]:
        return self.served.mailboxes()

    def _refresh_local(self) -> None:
        self.served.refresh(self._host, int(self.clock() * 1000))

    def _sealed_lookups(self) -> list[tuple[bytes, int]]:
        """This round's ``(tag, slot)`` lookups for sealed packets to our own node."""
        host = self._tags_host
        if host is None:
            return []
        tags: list[bytes] = []
        for epoch in SealedPolls.epochs(self.clock()):
            tags += host.sealed_tags(epoch)
        self._sealed_tags = len(tags)
        return self._sealed.next_round(tags)

    async def _poll(self) -> None:
        openers: list[Callable[[object, float], bytes]] = []
        keys: list[bytes] = []
        for node_id in self._mailboxes():
            verify_key = bytes(mailbox_signer(node_id).verify_key)
            for slot in range(SLOTS):
                openers.append(functools.partial(open_record, node_id, slot))
                keys.append(record_key(verify_key, slot))
        sealed = self._sealed_lookups()
        for tag, slot in sealed:
            openers.append(functools.partial(open_sealed_record, tag, slot))
            keys.append(sealed_record_key(tag, slot))
        self._count("rx.lookups", len(keys))
        self._count("rx.sealed-lookups", len(sealed))
        await asyncio.gather(*(self._lookup(k, o) for k, o in zip(keys, openers, strict=True)))

    async def _lookup(self, key: bytes, opener: Callable[[object, float], bytes]) -> None:
        """Look ``key`` up and hand over what it holds at once (not after the whole round)."""
        try:
            values = await self._server.get_checked(key, functools.partial(self._check, opener))
        except Exception:
            log.debug("DHT lookup failed", exc_info=True)
            self._count("rx.lookup-failed")
            return
        for value in values:
            self._receive(opener, value)

    def _open(
        self, opener: Callable[[object, float], bytes], value: object
    ) -> tuple[bytes, Packet] | None:
        """The frame and packet in ``value``, or None (counted) if it is not one for us."""
        now_s = self.clock()
        if isinstance(value, bytes) and len(value) > MAX_RECORD:
            self._count("rx.oversized")
            return None
        try:
            frame = opener(value, now_s)
            packet = codec.decode(frame, int(now_s * 1000))
        except (PacketError, CryptoError) as exc:
            self._count(f"rx.rejected.{getattr(getattr(exc, 'reason', None), 'value', 'crypto')}")
            return None
        return frame, packet

    def _check(self, opener: Callable[[object, float], bytes], value: object) -> bool:
        """Whether a value found under a key is a record for exactly that key holding a packet
        not handed over yet (the lookup ignores the others and goes on asking)."""
        opened = self._open(opener, value)
        return opened is not None and opened[1].packet_id not in self._handled

    def _receive(self, opener: Callable[[object, float], bytes], value: object) -> None:
        link, handler = self.link, self.handler
        if link is None or handler is None:
            return
        opened = self._open(opener, value)
        if opened is None:
            return
        frame, packet = opened
        now_s = self.clock()
        if packet.packet_id in self._handled:
            self._count("rx.already-handled")
            return
        self._handled.add(packet.packet_id, int(now_s * 1000))
        self._count("rx.frames")
        handler.frame_received(link, frame)

    # -- the loop ------------------------------------------------------------------------

    async def _bootstrap(self) -> None:
        if self.config.bootstrap and self.neighbours == 0:
            try:
                await self._server.bootstrap(list(self.config.bootstrap))
            except (TimeoutError, OSError) as exc:
                log.info("DHT bootstrap failed: %s", exc)

    async def _run(self) -> None:
        """A round every ``poll_s``; a new record to store wakes a store-only round early."""
        loop = asyncio.get_running_loop()
        next_poll = loop.time()
        while True:
            polling = loop.time() >= next_poll
            try:
                if polling:
                    self._refresh_local()
                    await self._bootstrap()
                await self._flush()
                if polling:
                    await self._poll()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("DHT round failed (continuing)")
            if polling:
                next_poll = loop.time() + self.config.poll_s
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, next_poll - loop.time())):
                    await self._wake.wait()
