"""The node: one engine, one store and its transports on one asyncio loop.

Theory of operation. Transports call the node's :class:`LinkHandler` methods from their own
tasks; the node never runs engine code there. It queues each event into a bounded inbox and a
single worker task takes them in order: it feeds the engine, then carries out the engine's
outputs **in order**, committing every store write before any transmission. Frames queued
together form one batch: the engine takes them one after the other and their writes share
one commit (one disk sync), after which their transmissions go out. Because the engine
puts a received message before the ack that confirms it, and the node stores a message the user
sends before handing it to the engine, nothing is acknowledged or reported sent before it is
committed to disk. User commands (send, join) go through the same inbox, so they are serialised
with the traffic. Blocking SQLite calls run on one dedicated worker thread, off the loop.

When the inbox is full, new frames are dropped (counted) rather than buffered without bound;
the senders' retries and store-and-forward recover them.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import random
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

from meshchat.crypto.channel import PUBLIC_CHANNEL, ChannelKey, derive_channel_key
from meshchat.engine import Engine, Output, dm_conversation
from meshchat.errors import IdentityError, MeshchatError, UsageError
from meshchat.events import (
    AttemptMade,
    GroupChanged,
    GroupStateUpdated,
    MessageDelivered,
    MessageExpired,
    MessageReceived,
    MessageRejected,
    MessageSent,
    PeerAnnounced,
    PrekeysUpdated,
    SessionUpdated,
)
from meshchat.gateway import INTERNET_TRANSPORTS
from meshchat.group.book import Group, group_conversation
from meshchat.identity import ContactCard, Identity, PublicIdentity, SignedPrekey
from meshchat.router.actions import Carry, Drop, Transmit, Uncarry
from meshchat.router.flood import FloodRouter, RouterConfig
from meshchat.store import Store
from meshchat.store.records import (
    CarriedPacket,
    Channel,
    Contact,
    Message,
    MessageState,
    Trust,
)
from meshchat.store.trust import CardResult, fold_name
from meshchat.transports.base import Link, Transport, TransportStatus
from meshchat.wire.packet import DEFAULT_TTL, MAX_AGE_MS

__all__ = ["LinkInfo", "Node", "NodeNotice", "NodeOptions"]

log = logging.getLogger(__name__)
P = ParamSpec("P")
T = TypeVar("T")

_INTERNET_TRANSPORTS = frozenset({"relay", "dht"})
ANNOUNCE_EVERY_MS = 10 * 60 * 1000
HOUSEKEEPING_S = 1.0
#: most node ids remembered as heard on local links (for gateways; oldest forgotten first)
MAX_HEARD = 1024
#: most queued frames the worker takes into one batch (one commit)
MAX_BATCH = 256


@dataclass(frozen=True, slots=True)
class NodeOptions:
    ttl: int = DEFAULT_TTL
    announce: bool = True
    inbox_size: int = 4096
    router: RouterConfig = field(default_factory=RouterConfig)
    message_lifetime_ms: int = MAX_AGE_MS


@dataclass(frozen=True, slots=True)
class LinkInfo:
    """A neighbour as the UI and ``meshchat peers`` show it."""

    link_id: str
    transport: str
    node_id: bytes
    name: str
    describe: str
    since_ms: int


@dataclass(frozen=True, slots=True)
class NodeNotice:
    """Something the faces may want to redraw: ``kind`` is message, state, links or peer."""

    kind: str
    message: Message | None = None
    msg_id: bytes | None = None
    state: MessageState | None = None
    #: for kind ``group``: what changed, when the engine said (None for this node's own edits)
    group: GroupChanged | None = None


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


#: the store's crypto-state kinds: one ratchet record per peer, and this node's prekeys
_SESSION_STATE = "session"
_PREKEY_STATE = "prekeys"
_GROUP_STATE = "group"


def _contact_keys(contact: Contact) -> tuple[PublicIdentity, SignedPrekey | None]:
    """A contact's keys and the signed prekey of the card it was added from (if any)."""
    prekey = None
    if contact.card:
        try:
            prekey = ContactCard.from_text(contact.card).prekey
        except IdentityError:
            prekey = None
    return PublicIdentity(contact.sign_public, contact.box_public), prekey


class _AsyncStore:
    """Runs blocking store calls on one dedicated thread, so they never stall the loop."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="meshchat-store")

    async def call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(*args, **kwargs))

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True)


@dataclass(slots=True)
class _Batch:
    """Engine outputs to carry out with one commit.

    ``writes`` run in one transaction; ``after`` lists, in the engine's order, what to do once
    it committed: a callable (a transmission, a count) or an int ``i``, meaning "run the
    follow-up that ``writes[i]`` returned".
    """

    writes: list[Callable[[], Callable[[], None] | None]] = field(default_factory=list)
    after: list[Callable[[], None] | int] = field(default_factory=list)


class Node:
    """A running meshchat node. Several can share one process and one loop."""

    def __init__(
        self,
        identity: Identity,
        name: str,
        store: Store,
        transports: list[Transport],
        *,
        options: NodeOptions | None = None,
        clock: Callable[[], int] = wall_clock_ms,
        rng: random.Random | None = None,
    ) -> None:
        self.identity = identity
        self.name = name
        self.options = options or NodeOptions()
        self.clock = clock
        self.rng = rng or random.Random()
        router = FloodRouter(
            identity.node_id,
            identity.public.sign_public,
            config=self.options.router,
            rng=self.rng,
        )
        self.engine = Engine(identity, name, router=router, ttl=self.options.ttl, rng=self.rng)
        self.store = _AsyncStore(store)
        self.transports = transports
        self.links: dict[str, Link] = {}
        self._link_since: dict[str, int] = {}
        self._names: dict[bytes, str] = {}
        self._gateways: dict[bytes, int] = {}  # node id -> when it last announced so
        # We are a gateway when we have an internet transport; our announces say so.
        self.engine.gateway = any(t.name in _INTERNET_TRANSPORTS for t in transports)
        # node id -> when last heard on a local (non-internet) link or by announce; insertion
        # order is recency order, so the oldest entry is the first one.
        self._heard: dict[bytes, int] = {}
        self._inbox: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue(self.options.inbox_size)
        self._worker: asyncio.Task[None] | None = None
        self._listeners: list[Callable[[NodeNotice], None]] = []
        self._last_announce = 0
        self._announce_due: int | None = None
        self.counters: dict[str, int] = {}
        self.started = asyncio.Event()
        #: set when something asked this node to stop (a panic); its owner then stops it
        self.stop_requested = asyncio.Event()
        self.panicked = False
        self._eraser: Callable[[], object] | None = None

    # -- life cycle ----------------------------------------------------------------------

    async def start(self) -> None:
        store = self.store.store
        now = self.clock()
        channels = await self.store.call(store.list_channels)
        if not any(c.name == PUBLIC_CHANNEL for c in channels):
            public = ChannelKey.public()
            await self.store.call(
                store.join_channel, Channel(public.name, public.channel_id, None, now)
            )
            channels = await self.store.call(store.list_channels)
        for channel in channels:
            self.engine.join(self._channel_key(channel))
        for carried in await self.store.call(store.carried, now):
            self.engine.router.restore_carried(carried.frame, carried.expires_ms, now)
        await self._load_sessions(now)
        await self._load_groups(now)
        await self._load_outbox(now)
        self._worker = asyncio.create_task(self._work(), name="meshchat-node")
        for transport in self.transports:
            await transport.start(self)
        self.started.set()

    async def stop(self) -> None:
        for transport in self.transports:
            with contextlib.suppress(Exception):
                await transport.stop()
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        self.store.shutdown()

    async def _load_sessions(self, now: int) -> None:
        """Give the engine its stored session state, then every usable contact."""
        store = self.store.store
        blobs = await self.store.call(store.states, _SESSION_STATE)
        prekeys = await self.store.call(store.get_state, _PREKEY_STATE, b"")
        if prekeys is not None:
            blobs[self.identity.node_id] = prekeys
        for bad in self.engine.load_sessions(blobs):
            log.warning("unreadable session state %s skipped", bad.hex()[:8])
        for contact in await self.store.call(store.list_contacts):
            if contact.trust is Trust.COMPROMISED:
                self.engine.distrust(contact.node_id)
                continue
            await self._run(self.engine.add_contact(*_contact_keys(contact), now))

    async def _load_groups(self, now: int) -> None:
        store = self.store.store
        blobs = await self.store.call(store.states, _GROUP_STATE)
        for bad in self.engine.load_groups(blobs, now):
            log.warning("unreadable group state %s skipped", bad.hex()[:8])
        await self._run(self.engine.flush())

    async def _load_outbox(self, now: int) -> None:
        store = self.store.store
        for entry in await self.store.call(store.pending_outbox, now):
            if entry.conversation.startswith(_GROUP_PREFIX):
                group = self.engine.groups.groups.get(entry.destination)
                if group is not None and group.current is not None:
                    self.engine.send_group(
                        entry.destination,
                        entry.msg_id,
                        entry.text,
                        now,
                        expires_ms=entry.expires_ms,
                    )
                continue
            if entry.conversation.startswith("#"):
                if entry.destination in {c.channel_id for c in self.engine.channels}:
                    self.engine.send_channel(
                        entry.destination,
                        entry.msg_id,
                        entry.text,
                        now,
                        expires_ms=entry.expires_ms,
                    )
                continue
            contact = await self.store.call(store.get_contact, entry.destination)
            if contact is None:
                log.warning("outbox entry for unknown node %s kept", entry.destination.hex())
                continue
            if contact.trust is Trust.COMPROMISED:
                # Queued before the key change: never send it to keys now known to be unsafe.
                await self.store.call(
                    self._set_state, store, entry.msg_id, MessageState.FAILED, self.clock()
                )
                continue
            recipient = PublicIdentity(contact.sign_public, contact.box_public)
            self.engine.send_direct(
                recipient,
                entry.msg_id,
                entry.text,
                now,
                expires_ms=entry.expires_ms,
                attempts=entry.attempts,
            )
        # Nothing is linked yet: the engine parked every item until a neighbour appears.

    @staticmethod
    def _channel_key(channel: Channel) -> ChannelKey:
        if channel.key is None:
            return ChannelKey.public(channel.name)
        return ChannelKey.from_key(channel.name, channel.key)

    # -- notices for faces ---------------------------------------------------------------

    def subscribe(self, listener: Callable[[NodeNotice], None]) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def _notify(self, notice: NodeNotice) -> None:
        for listener in list(self._listeners):
            try:
                listener(notice)
            except Exception:
                log.exception("listener failed")

    # -- LinkHandler (called by transports) -----------------------------------------------

    def link_up(self, link: Link) -> None:
        self._enqueue(("up", link), force=True)

    def link_down(self, link: Link) -> None:
        self._enqueue(("down", link), force=True)

    def frame_received(self, link: Link, frame: bytes) -> None:
        self._enqueue(("frame", link, frame))

    def inject(self, frame: bytes) -> None:
        """Accept a frame from a non-link source (an internet transport)."""
        self._enqueue(("frame", None, frame))

    def _enqueue(self, item: tuple[Any, ...], force: bool = False) -> None:
        try:
            self._inbox.put_nowait(item)
        except asyncio.QueueFull:
            if force:
                # Link changes must not be lost: make room by dropping the oldest frame.
                with contextlib.suppress(asyncio.QueueEmpty):
                    self._inbox.get_nowait()
                self._inbox.put_nowait(item)
            self._count("drop.inbox-full")

    def _count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1

    # -- the worker ----------------------------------------------------------------------

    async def _work(self) -> None:
        held: tuple[Any, ...] | None = None  # taken from the inbox, not handled yet
        while True:
            now = self.clock()
            deadline = self.engine.next_deadline()
            wait = HOUSEKEEPING_S
            if deadline is not None:
                wait = max(0.0, min(wait, (deadline - now) / 1000))
            item, held = held, None
            if item is None:
                try:
                    async with asyncio.timeout(wait):
                        item = await self._inbox.get()
                except TimeoutError:
                    pass
            try:
                if item is not None:
                    held = await self._handle_queued(item)
                await self._run(self.engine.tick(self.clock()))
                await self._housekeeping()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("node worker error (continuing)")

    async def _handle_queued(self, item: tuple[Any, ...]) -> tuple[Any, ...] | None:
        """Handle ``item``; if it is a frame, with the frames queued right behind it.

        Consecutive frames (at most :data:`MAX_BATCH`) form one batch: the engine takes each in
        turn, and the store writes of the whole batch go to disk in one commit (one disk sync
        instead of one per frame) before any of the batch's transmissions or notices, which
        then follow in the engine's order. Any other item (link change, user command) is
        handled on its own, as before: it ends the batch and is returned, to be handled after
        the timers and housekeeping that follow every item or batch, so effects keep the order
        of the inbox.
        """
        if item[0] != "frame":
            await self._handle(item)
            return None
        batch = _Batch()
        taken = 0
        after: tuple[Any, ...] | None = None
        while True:
            try:
                self._plan(batch, self._receive(item[1], item[2]))
            except Exception:
                log.exception("receiving a frame failed (continuing)")
            taken += 1
            if taken >= MAX_BATCH or self._inbox.empty():
                break
            item = self._inbox.get_nowait()
            if item[0] != "frame":
                after = item
                break
        try:
            await self._carry_out(batch)
        except Exception:
            # the batch's transmissions are lost (as when one frame's commit failed), but the
            # item taken after it is still handled: a user command must get its answer
            log.exception("storing received frames failed (continuing)")
        return after

    def _receive(self, link: Link | None, frame: bytes) -> list[Output]:
        if link is not None and link.link_id not in self.links:
            return []
        return self.engine.receive(link.link_id if link else None, frame, self.clock())

    async def _handle(self, item: tuple[Any, ...]) -> None:
        kind = item[0]
        now = self.clock()
        if kind == "frame":
            await self._run(self._receive(item[1], item[2]))
        elif kind == "up":
            link = item[1]
            self.links[link.link_id] = link
            self._link_since[link.link_id] = now
            if link.transport not in INTERNET_TRANSPORTS:
                self._hear(link.peer.node_id, now)
            self._notify(NodeNotice("links"))
            await self._run(self.engine.link_up(link.link_id, now))
            if self.options.announce:
                self._announce_due = now + 500
        elif kind == "down":
            link = item[1]
            if self.links.pop(link.link_id, None) is not None:
                self._link_since.pop(link.link_id, None)
                self._notify(NodeNotice("links"))
                await self._run(self.engine.link_down(link.link_id, now))
        elif kind == "call":
            fn, future = item[1], item[2]
            try:
                result = await fn()
            except Exception as exc:
                if not future.done():
                    future.set_exception(exc)
            else:
                if not future.done():
                    future.set_result(result)

    async def _housekeeping(self) -> None:
        now = self.clock()
        if (
            self.options.announce
            and self.links
            and (
                (self._announce_due is not None and now >= self._announce_due)
                or now - self._last_announce >= ANNOUNCE_EVERY_MS
            )
        ):
            self._announce_due = None
            self._last_announce = now
            await self._run(self.engine.announce(now))

    async def _submit(self, fn: Callable[[], Awaitable[T]]) -> T:
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        await self._inbox.put(("call", fn, future))
        return await future

    # -- carrying out engine outputs --------------------------------------------------------

    async def _run(self, outputs: list[Output]) -> None:
        """Carry out engine outputs: every store write first, in one commit, then the rest.

        Writes (received messages, carried packets, state changes, session state) run on the
        store's thread inside one transaction, so a batch costs one disk sync instead of one
        per write. Only after that commit do transmissions (acks, relays) and notices to the
        faces happen, in the order the engine gave: nothing leaves the node, and nothing is
        shown as sent or delivered, before the writes it depends on are on disk.
        """
        batch = _Batch()
        self._plan(batch, outputs)
        await self._carry_out(batch)

    def _plan(self, batch: _Batch, outputs: list[Output]) -> None:
        """Add the writes and after-commit steps of ``outputs`` to ``batch``."""
        store = self.store.store
        now = self.clock()
        writes, after = batch.writes, batch.after
        for out in outputs:
            if isinstance(out, Transmit):
                after.append(functools.partial(self._transmit, out))
            elif isinstance(out, Drop):
                self._count(f"drop.{out.reason}")
            elif isinstance(out, MessageRejected):
                log.info("rejected packet %s: %s", out.packet_id.hex()[:12], out.reason)
                self._count("rejected")
            else:
                write = self._write_for(store, out, now)
                if write is not None:
                    after.append(len(writes))
                    writes.append(write)

    async def _carry_out(
        self,
        batch: _Batch,
        first: Callable[[], T] | None = None,
        then: Callable[[T], None] | None = None,
    ) -> T | None:
        """Commit the batch's writes (one transaction), then run its steps in order.

        ``first`` is a write that must succeed: it runs before the others in the same
        transaction, and if it raises nothing of the batch is committed or carried out (the
        error propagates). ``then`` gets its result after the commit, before the steps.
        """
        writes = batch.writes
        head: T | None = None
        if first is not None:
            value, results = await self.store.call(
                self._apply_after, self.store.store, first, writes
            )
            if then is not None:
                then(value)
            head = value
        else:
            results = await self.store.call(self._apply, self.store.store, writes) if writes else []
        for step in batch.after:
            if isinstance(step, int):
                follow_up = results[step]
                if follow_up is not None:
                    follow_up()
            else:
                step()
        return head

    @staticmethod
    def _apply_after(
        store: Store, first: Callable[[], T], writes: list[Callable[[], Callable[[], None] | None]]
    ) -> tuple[T, list[Callable[[], None] | None]]:
        """``first``, then the writes, in one transaction; ``first`` failing undoes all."""
        with store.transaction():
            return first(), Node._each(writes)

    @staticmethod
    def _apply(
        store: Store, writes: list[Callable[[], Callable[[], None] | None]]
    ) -> list[Callable[[], None] | None]:
        """Run writes in one transaction (on the store thread)."""
        with store.transaction():
            return Node._each(writes)

    @staticmethod
    def _each(
        writes: list[Callable[[], Callable[[], None] | None]],
    ) -> list[Callable[[], None] | None]:
        """Run writes (inside a transaction); a failing write is logged and skipped, the
        others still commit."""
        results: list[Callable[[], None] | None] = []
        for write in writes:
            try:
                results.append(write())
            except MeshchatError:
                log.exception("a store write failed (continuing)")
                results.append(None)
        return results

    def _transmit(self, out: Transmit) -> None:
        for link_id in out.links:
            link = self.links.get(link_id)
            if link is None or not link.send(out.frame):
                self._count("drop.link-send")

    def _write_for(
        self, store: Store, out: Output, now: int
    ) -> Callable[[], Callable[[], None] | None] | None:
        """The store write an output needs, returning what to do on the loop after commit."""
        if isinstance(out, MessageReceived):
            return functools.partial(self._store_received, store, out, now)
        if isinstance(out, Carry):
            carried = CarriedPacket(
                out.packet.packet_id, out.frame, out.packet.destination.value, out.expires_ms
            )

            def carry() -> Callable[[], None]:
                store.carry(carried)
                return functools.partial(self._offer_to_internet, out.frame)

            return carry
        if isinstance(out, Uncarry):
            return _then_nothing(store.drop_carried, out.packet_id)
        if isinstance(out, MessageSent):
            return functools.partial(self._set_state, store, out.msg_id, MessageState.SENT, now)
        if isinstance(out, MessageDelivered):
            return functools.partial(
                self._set_state, store, out.msg_id, MessageState.DELIVERED, now
            )
        if isinstance(out, MessageExpired):
            return functools.partial(self._set_state, store, out.msg_id, MessageState.FAILED, now)
        if isinstance(out, AttemptMade):
            return _then_nothing(store.record_attempt, out.msg_id, out.attempts, out.next_try_ms)
        if isinstance(out, PeerAnnounced):
            self._names[out.identity.node_id] = out.name
            if out.gateway:
                self._gateways[out.identity.node_id] = now
            else:
                self._gateways.pop(out.identity.node_id, None)
            self._hear(out.identity.node_id, now)
            return functools.partial(self._remember, store, out, now)
        if isinstance(out, SessionUpdated):
            return _then_nothing(store.put_state, _SESSION_STATE, out.peer_node_id, out.blob)
        if isinstance(out, PrekeysUpdated):
            return _then_nothing(store.put_state, _PREKEY_STATE, b"", out.blob)
        if isinstance(out, GroupStateUpdated):
            return _then_nothing(store.put_state, _GROUP_STATE, out.key, out.blob)
        if isinstance(out, GroupChanged):
            log.info("group %s: %s", out.group_id.hex()[:8], out.what)

            def changed() -> Callable[[], None]:
                return functools.partial(self._notify, NodeNotice("group", group=out))

            return changed
        return None

    def _set_state(
        self, store: Store, msg_id: bytes, state: MessageState, now: int
    ) -> Callable[[], None]:
        store.set_state(msg_id, state, now)
        return functools.partial(self._notify, NodeNotice("state", msg_id=msg_id, state=state))

    def _store_received(
        self, store: Store, event: MessageReceived, now: int
    ) -> Callable[[], None] | None:
        message = store.add_incoming(
            event.conversation,
            event.msg_id,
            event.sender.node_id if event.sender else event.sender_key,
            self._name_in(store, event.sender_key),
            event.text,
            event.created_ms,
            now,
        )
        if message is None:
            return None
        # Logs may be kept on disk (the UI's tui.log): name no contact and no private
        # channel, only the public channel.
        where = event.conversation
        if where != PUBLIC_CHANNEL:
            where = "dm" if where.startswith("dm:") else "channel"
        log.info("received %s in %s, %d hops", event.msg_id.hex()[:12], where, event.hops + 1)
        return functools.partial(self._notify, NodeNotice("message", message=message))

    async def _name_for(self, sign_key: bytes) -> str:
        return await self.store.call(self._name_in, self.store.store, sign_key)

    @staticmethod
    def _name_in(store: Store, sign_key: bytes) -> str:
        """How to show the sender with this signing key (on the store thread)."""
        contact = store.contact_by_sign_key(sign_key)
        if contact is not None:
            if contact.trust is Trust.COMPROMISED:
                return f"{contact.name} (!! compromised keys)"
            return contact.name
        peer = store.peer_by_sign_key(sign_key)
        if peer is not None and peer[1]:
            return f"~{peer[1]}"
        return sign_key.hex()[:8]

    def _remember(self, store: Store, event: PeerAnnounced, now: int) -> Callable[[], None]:
        store.remember_peer(
            event.identity.node_id,
            event.identity.sign_public,
            event.identity.box_public,
            event.name,
            now,
        )
        return functools.partial(self._notify, NodeNotice("peer"))

    # -- user commands ---------------------------------------------------------------------

    async def send_text(self, target: str, text: str) -> Message:
        """Store then send a message to a contact (name or id prefix) or a ``#channel``."""
        return await self._submit(lambda: self._send_text(target, text))

    async def _send_text(self, target: str, text: str) -> Message:
        store = self.store.store
        now = self.clock()
        msg_id = os.urandom(16)
        expires = now + self.options.message_lifetime_ms
        conversation, destination, send = await self._route_text(target)
        add = functools.partial(
            store.add_outgoing,
            conversation,
            msg_id,
            destination,
            self.identity.node_id,
            self.name,
            text,
            now,
            expires,
        )
        # The engine queues it first; then the message, its session state and its first
        # attempt are committed together (one disk sync) before the packet leaves.
        batch = _Batch()
        self._plan(batch, send(msg_id, text, now, expires_ms=expires))
        try:
            message = await self._carry_out(
                batch, add, lambda m: self._notify(NodeNotice("message", message=m))
            )
        except BaseException:
            self.engine.cancel(msg_id)
            raise
        assert message is not None
        return message

    async def _route_text(self, target: str) -> tuple[str, bytes, Callable[..., list[Output]]]:
        """Where a message to ``target`` goes: its conversation, the destination kept with it
        in the store, and the engine call that queues it. Raises :class:`UsageError`."""
        if target.startswith((_GROUP_MARK, _GROUP_PREFIX)):
            group = self.find_group(target)
            if group.current is None:
                raise UsageError(f"you are no longer a member of {group.name}")
            send = functools.partial(self.engine.send_group, group.group_id)
            return group_conversation(group.group_id), group.group_id, send
        if target.startswith("#"):
            channel = await self.store.call(self.store.store.get_channel, target.lower())
            if channel is None:
                raise UsageError(f"not in channel {target}: join it first")
            send = functools.partial(self.engine.send_channel, channel.channel_id)
            return channel.name, channel.channel_id, send
        contact = await self.store.call(self.store.store.find_contact, target)
        if contact.trust is Trust.COMPROMISED:
            raise UsageError(
                f"the keys of {contact.name} ({contact.node_id.hex()[:8]}) are marked "
                "compromised: nothing is sent to them"
            )
        recipient = PublicIdentity(contact.sign_public, contact.box_public)
        send = functools.partial(self.engine.send_direct, recipient)
        return dm_conversation(contact.node_id), contact.node_id, send

    async def join(self, name: str, passphrase: str | None = None) -> Channel:
        key = derive_channel_key(name, passphrase) if passphrase else ChannelKey.public(name)
        channel = Channel(key.name, key.channel_id, key.key, self.clock())

        async def do() -> Channel:
            await self.store.call(self.store.store.join_channel, channel)
            self.engine.join(key)
            return channel

        return await self._submit(do)

    async def add_contact(self, contact: Contact) -> None:
        await self.store.call(self.store.store.add_contact, contact)
        await self._submit(
            lambda: self._run(self.engine.add_contact(*_contact_keys(contact), self.clock()))
        )

    async def card(self) -> ContactCard:
        """This node's contact card with its current signed prekey (stored before it is
        handed out, so the prekey in the card is one the node keeps)."""

        async def do() -> ContactCard:
            card = self.engine.card(self.clock())
            await self._run(self.engine.flush())
            return card

        return await self._submit(do)

    async def add_card(
        self, card: ContactCard, name: str | None = None, *, replace_keys: bool = False
    ) -> CardResult:
        """Add a contact from its signed card, applying the key-change rules.

        Raises :class:`~meshchat.store.trust.KeyChangeError` when the card claims a known
        contact's name or keys with other keys (pass ``replace_keys`` to accept it; the old
        contact becomes compromised) and :class:`UsageError` for our own card.
        """
        if card.identity == self.identity.public:
            raise UsageError("that is your own card")
        result: CardResult = await self.store.call(
            self.store.store.add_card,
            card,
            name=name,
            now_ms=self.clock(),
            replace_keys=replace_keys,
        )
        contact = result.contact
        for retired in result.compromised:
            await self._submit(functools.partial(self._distrust, retired.node_id))
        if contact.trust is not Trust.COMPROMISED:
            keys = (PublicIdentity(contact.sign_public, contact.box_public), card.prekey)
            await self._submit(lambda: self._run(self.engine.add_contact(*keys, self.clock())))
        self._notify(NodeNotice("peer"))
        return result

    async def contacts(self) -> list[Contact]:
        """Every contact with its trust state (see :class:`Trust`)."""
        return await self.store.call(self.store.store.list_contacts)

    async def set_trust(self, node_id: bytes, trust: Trust) -> Contact:
        contact: Contact = await self.store.call(self.store.store.set_trust, node_id, trust)
        if trust is Trust.COMPROMISED:
            await self._submit(functools.partial(self._distrust, node_id))
        self._notify(NodeNotice("peer"))
        return contact

    async def _distrust(self, node_id: bytes) -> None:
        await self._run(self.engine.distrust(node_id))

    # -- private groups --------------------------------------------------------------------

    def find_group(self, target: str) -> Group:
        """The group a user means: ``+name`` (case-insensitive) or ``grp:<id hex prefix>``."""
        groups = list(self.engine.groups.groups.values())
        if target.startswith(_GROUP_PREFIX):
            prefix = target[len(_GROUP_PREFIX) :].lower()
            found = [g for g in groups if g.group_id.hex().startswith(prefix)] if prefix else []
        else:
            name = target.removeprefix(_GROUP_MARK).strip().casefold()
            found = [g for g in groups if g.name.casefold() == name]
        if not found:
            raise UsageError(f"no group {target!r}: see `meshchat group list`")
        if len(found) > 1:
            ids = ", ".join(_GROUP_PREFIX + g.group_id.hex()[:8] for g in found)
            raise UsageError(f"{len(found)} groups match {target!r} ({ids}); use grp:<id>")
        return found[0]

    async def _members(self, queries: list[str]) -> list[PublicIdentity]:
        members = []
        for query in queries:
            contact = await self.store.call(self.store.store.find_contact, query)
            if contact.trust is Trust.COMPROMISED:
                raise UsageError(f"the keys of {contact.name} are marked compromised")
            members.append(PublicIdentity(contact.sign_public, contact.box_public))
        return members

    async def create_group(self, name: str, members: list[str]) -> Group:
        """A new private group of contacts (names or id prefixes), this node its admin."""
        identities = await self._members(members)

        async def do() -> Group:
            if any(
                g.name.casefold() == name.strip().casefold() and g.current is not None
                for g in self.engine.groups.groups.values()
            ):
                raise UsageError(f"you are already in a group named {name!r}")
            group, outputs = self.engine.create_group(name, identities, self.clock())
            await self._run(outputs)
            self._notify(NodeNotice("group"))
            return group

        return await self._submit(do)

    async def change_group(
        self,
        target: str,
        *,
        add: list[str] = [],  # noqa: B006 - never mutated
        remove: list[str] = [],  # noqa: B006
        admin: list[str] = [],  # noqa: B006
    ) -> Group:
        """Add or remove members, or make members admins; the group is re-keyed."""
        group = self.find_group(target)
        adding = await self._members(add)
        removing = [m.node_id for m in await self._members_in(group, remove)]
        promoted = {m.node_id for m in await self._members_in(group, admin)}

        async def do() -> Group:
            admins = set(group.roster.admins) | promoted if promoted else None
            outputs = self.engine.change_group(
                group.group_id, self.clock(), add=adding, remove=removing, admins=admins
            )
            await self._run(outputs)
            self._notify(NodeNotice("group"))
            return group

        return await self._submit(do)

    async def _members_in(self, group: Group, queries: list[str]) -> list[PublicIdentity]:
        """Members of ``group`` named by contact name (a contact whose keys were replaced
        too: its old keys may still be in the roster), announced name or node id prefix."""
        contacts = await self.contacts()
        names = {**self.announced_peers(), **{c.node_id: c.name for c in contacts}}
        found = []
        for query in queries:
            wanted = fold_name(query)
            hex_prefix = query.lower() if len(query) >= 4 else None
            matches = [
                m
                for m in group.roster.members
                if fold_name(names.get(m.node_id, "")) == wanted
                or (hex_prefix is not None and m.node_id.hex().startswith(hex_prefix))
            ]
            if not matches:
                raise UsageError(f"{query!r} is not a member of {group.name}")
            if len(matches) > 1:
                ids = ", ".join(m.short_id for m in matches)
                raise UsageError(f"{query!r} names {len(matches)} members ({ids}): use an id")
            found.append(matches[0])
        return found

    async def leave_group(self, target: str) -> Group:
        """Leave a group: our keys for it are erased and its admins re-key it without us."""
        group = self.find_group(target)

        async def do() -> Group:
            await self._run(self.engine.leave_group(group.group_id, self.clock()))
            self._notify(NodeNotice("group"))
            return group

        return await self._submit(do)

    def groups(self) -> list[Group]:
        """Every group this node holds (also those it was removed from)."""
        return sorted(self.engine.groups.groups.values(), key=lambda g: g.name.casefold())

    # -- panic -----------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Ask the node's owner (daemon or UI) to stop it."""
        self.stop_requested.set()

    def set_eraser(self, eraser: Callable[[], object]) -> None:
        """What :meth:`panic` runs to erase this node's files (the owner knows the home)."""
        self._eraser = eraser

    async def panic(self) -> object:
        """Erase this node's home at once, then ask its owner to stop; returns the report.

        The erasure runs on a worker thread (it writes and syncs to disk), so the loop stays
        responsive; the keystore goes first. Raises :class:`UsageError` when no eraser was set.
        """
        if self._eraser is None:
            raise UsageError("this node has no home to erase")
        self.panicked = True
        report = await asyncio.get_running_loop().run_in_executor(None, self._eraser)
        self.request_stop()
        return report

    # -- views -----------------------------------------------------------------------------

    def neighbours(self) -> list[LinkInfo]:
        infos = []
        for link_id, link in self.links.items():
            node_id = link.peer.node_id
            infos.append(
                LinkInfo(
                    link_id,
                    link.transport,
                    node_id,
                    self._names.get(node_id, ""),
                    link.describe(),
                    self._link_since.get(link_id, 0),
                )
            )
        return infos

    def announced_peers(self) -> dict[bytes, str]:
        """Node ids and display names learnt from announcements since the node started."""
        return dict(self._names)

    def gateways(self, within_ms: int = 2 * ANNOUNCE_EVERY_MS) -> dict[bytes, str]:
        """Nodes that announced, recently, that they reach the internet (node id -> name).

        A node with no internet of its own can see from this that its messages for other
        meshes can leave this one.
        """
        horizon = self.clock() - within_ms
        return {n: self._names.get(n, "") for n, t in self._gateways.items() if t >= horizon}

    def transport_status(self) -> list[TransportStatus]:
        return [t.status() for t in self.transports]

    # -- gateway support (see meshchat.gateway) ---------------------------------------------

    def _hear(self, node_id: bytes, now: int) -> None:
        heard = self._heard
        heard.pop(node_id, None)
        heard[node_id] = now
        if len(heard) > MAX_HEARD:
            del heard[next(iter(heard))]

    def _offer_to_internet(self, frame: bytes) -> None:
        """Hand a carried packet to every internet link, whatever the relay policy decides.

        The relay policy may stand down from relaying a packet that several neighbours relayed
        already; on an internet link that copy may be the only way out of the island. The link
        drops a frame it has handled before, so the router's own relay costs nothing extra.
        """
        for link in list(self.links.values()):
            if link.transport in INTERNET_TRANSPORTS:
                link.send(frame)

    def local_nodes(self, since_ms: int) -> list[bytes]:
        """Node ids heard on local links at or after ``since_ms``, plus every local neighbour.

        Most recent first. Internet transports use this to decide which packets the local
        flood reaches and which mailboxes this node collects for its island.
        """
        ids = [n for n, t in reversed(self._heard.items()) if t >= since_ms]
        for link in self.links.values():
            if link.transport not in INTERNET_TRANSPORTS and link.peer.node_id not in ids:
                ids.append(link.peer.node_id)
        return ids

    def channel_ids(self) -> dict[str, bytes]:
        """The joined channels (name -> channel id), and each group's current address under
        ``+name`` (gateways ask :meth:`bridge_ids`, which also gives a group's older
        addresses)."""
        ids = {c.name: c.channel_id for c in self.engine.channels}
        for group in self.engine.groups.groups.values():
            if group.current is not None:
                ids[_GROUP_MARK + group.name] = group.current.keys.address
        return ids

    def bridge_ids(self, names: frozenset[str]) -> set[bytes]:
        """The channel ids a gateway bridges for ``names`` (lower case): a channel's id, and
        every address of a group this node holds keys for, so that members who have not yet
        taken up a re-key (or whose messages are still on the way) are heard too."""
        ids = {c.channel_id for c in self.engine.channels if c.name.lower() in names}
        for group in self.engine.groups.groups.values():
            if group.current is not None and (_GROUP_MARK + group.name).lower() in names:
                ids.update(epoch.keys.address for epoch in group.epochs)
        return ids

    def sealed_tags(self, epoch: int) -> list[bytes]:
        """The tags sealed packets created in ``epoch`` reach this node under (the DHT polls
        them: sealed packets are filed under their tag, see transports/dht/_sealed.py)."""
        from meshchat.transports.dht._sealed import epoch_tags

        return epoch_tags(self.engine.direct, epoch)

    async def messages(self, conversation: str, limit: int = 200) -> list[Message]:
        return await self.store.call(self.store.store.messages, conversation, limit)

    async def resolve_conversation(self, target: str) -> str:
        """The conversation name for a ``#channel``, contact name or node id prefix."""
        if target.startswith("#") or target.startswith("dm:"):
            return target.lower()
        if target.startswith((_GROUP_MARK, _GROUP_PREFIX)):
            return group_conversation(self.find_group(target).group_id)
        contact = await self.store.call(self.store.store.find_contact, target)
        return dm_conversation(contact.node_id)


#: how a user names a group (``+friends``) and the prefix of its conversation name
_GROUP_MARK = "+"
_GROUP_PREFIX = "grp:"


def _then_nothing(
    write: Callable[..., object], *args: object
) -> Callable[[], Callable[[], None] | None]:
    """A store write whose result the node does not use: nothing to do after the commit."""

    def run() -> None:
        write(*args)

    return run
