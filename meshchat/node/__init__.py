"""The node: one engine, one store and its transports on one asyncio loop.

:class:`Node` is a thin conductor. Transports report to it (it is their
:class:`~meshchat.transports.base.LinkHandler`); it queues what they report, and the user's
commands, in its inbox, where one worker takes them in order (:mod:`._inbox`). The worker feeds
the engine and has its outputs carried out as typed effects: store writes in one transaction,
then transmissions and notices (:mod:`._effects`). The concerns live in private modules:

=================  ========================================================================
``_inbox``         inbox items (LinkUp, LinkDown, FrameIn, Command), the queue, the worker
``_effects``       engine outputs -> effects, committed then carried out
``_commands``      send, join, contacts and trust
``_groups``        private-group commands and loading
``_gateway``       names, gateways and what internet transports ask of the node
``_blocking``      blocked identity keys (their messages are never stored)
``_lifecycle``     loading stored state at start
``_history``       a conversation's history read and deleted
``_files``         files sent, served, pulled and saved (``node.files``)
``_talk``          push-to-talk: live frames sent on LAN links, heard and played
``_replay``        the router's dedupe horizon, saved and loaded (kept across restarts)
``_store``         the store on its own thread (the worker's short calls on the loop)
=================  ========================================================================

The public methods below are the API the faces (CLI through the control socket, TUI) use;
while a node runs it is the only writer of its store. Blocking SQLite calls run on one
dedicated thread, off the loop (the worker's short ones on it when they cannot stall it).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import ParamSpec, TypeVar

from meshchat.account.devicelist import DeviceList
from meshchat.engine import Engine
from meshchat.errors import MeshchatError, NoSuchContact, UsageError
from meshchat.events import LinkProgress, PeerAnnounced
from meshchat.gateway import INTERNET_TRANSPORTS
from meshchat.group.book import Group, group_conversation
from meshchat.identity import ContactCard, Identity, PublicIdentity
from meshchat.node import _history
from meshchat.node import _replay as replay
from meshchat.node._blocking import Blocklist
from meshchat.node._catchup import NodeCatchup
from meshchat.node._commands import Commands
from meshchat.node._devices import NodeDevices
from meshchat.node._effects import Effects, name_in
from meshchat.node._files import NodeFiles
from meshchat.node._gateway import NO_INTERNET_HINT, Neighbourhood
from meshchat.node._groups import Groups
from meshchat.node._inbox import Command, FrameIn, Inbox, LinkDown, LinkUp, Worker
from meshchat.node._lifecycle import load
from meshchat.node._link import LinkOffer, NodeLink
from meshchat.node._store import AsyncStore
from meshchat.node._sync import NodeSync
from meshchat.node._talk import NodeTalk
from meshchat.node._types import (
    ANNOUNCE_EVERY_MS,
    HOUSEKEEPING_S,
    MAX_BATCH,
    MAX_HEARD,
    Bridge,
    LinkInfo,
    NodeNotice,
    NodeOptions,
    wall_clock_ms,
)
from meshchat.panic import PanicReport
from meshchat.router.flood import FloodRouter
from meshchat.store import Store
from meshchat.store.records import Channel, Contact, Conversation, Delivery, Message, Trust
from meshchat.store.trust import CardResult
from meshchat.target import (
    Target,
    announced_target,
    conversation_of,
    find_announced,
    group_target,
    is_group_target,
    resolve_target,
)
from meshchat.transports.base import Link, Transport, TransportStatus
from meshchat.verify import Verdict, decide
from meshchat.wire.packet import PacketKind

__all__ = [
    "ANNOUNCE_EVERY_MS",
    "HOUSEKEEPING_S",
    "MAX_BATCH",
    "MAX_HEARD",
    "NO_INTERNET_HINT",
    "LinkInfo",
    "Node",
    "NodeNotice",
    "NodeOptions",
    "wall_clock_ms",
]

log = logging.getLogger(__name__)
P = ParamSpec("P")
T = TypeVar("T")


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
        store.set_history_budget(self.options.history)
        self.store = AsyncStore(store)
        self.transports = transports
        self.links: dict[str, Link] = {}
        self._link_since: dict[str, int] = {}
        # We are a gateway while an internet transport reaches the internet (a relay's broker
        # or DHT neighbours); our announces say so (see Neighbourhood.check_gateway).
        self.engine.gateway = False
        self.counters: dict[str, int] = {}
        self.inbox = Inbox(self.options.inbox_size, self.options.link_queue, self.count)
        self.effects = Effects(self)
        self.neighbourhood = Neighbourhood(self)
        self.commands = Commands(self)
        self.group_commands = Groups(self)
        self.catchup = NodeCatchup(self)
        self.blocklist = Blocklist(self)
        self.linking = NodeLink(self)
        self.sync = NodeSync(self)  #: history sync with my devices (``sync.status()``)
        self.devices = NodeDevices(self)  #: revoking devices (``devices.revoke(name)``)
        self._worker: asyncio.Task[None] | None = None
        self._listeners: list[Callable[[NodeNotice], None]] = []
        self.files = NodeFiles(self)  #: files: ``files.send(target, path, kind=...)``
        self.talk = NodeTalk(self)  #: push-to-talk: ``talk.talk(target, sound)``
        self._last_announce = 0
        self._replay_saved = clock()
        self._announce_due: int | None = None
        self.started = asyncio.Event()
        #: set when something asked this node to stop (a panic); its owner then stops it
        self.stop_requested = asyncio.Event()
        self.panicked = False
        self._eraser: Callable[[], PanicReport] | None = None
        self.bridges: dict[str, Bridge] = {}  # "#bitchat", "#meshtastic-<ch>" -> its bridge

    # -- life cycle ----------------------------------------------------------------------

    async def start(self) -> None:
        await load(self)
        await self.blocklist.load()
        await self.files.start()
        self._worker = asyncio.create_task(Worker(self).run(), name="meshchat-node")
        for transport in self.transports:
            await transport.start(self)
        self.started.set()

    async def stop(self) -> None:
        await self.sync.stop()
        self.files.stop()
        self.talk.stop()
        for transport in self.transports:
            with contextlib.suppress(Exception):
                await transport.stop()
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        with contextlib.suppress(MeshchatError):
            await replay.save(self, self.clock())
        self.store.shutdown()

    # -- notices for faces ---------------------------------------------------------------

    def subscribe(self, listener: Callable[[NodeNotice], None]) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def notify(self, notice: NodeNotice) -> None:
        for listener in list(self._listeners):
            try:
                listener(notice)
            except Exception:
                log.exception("listener failed")

    def count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1

    # -- LinkHandler (called by transports) -----------------------------------------------

    def link_up(self, link: Link) -> None:
        self.inbox.put(LinkUp(link))

    def link_down(self, link: Link) -> None:
        self.inbox.put(LinkDown(link))

    def frame_received(self, link: Link, frame: bytes) -> None:
        if len(frame) > 2 and frame[2] == PacketKind.TALK:  # live sound: never queued
            self.talk.frame(link, frame)
        else:  # a link whose frame finds no room is held (read no more) until it has some
            self.inbox.put(FrameIn(link, frame))

    def inject(self, frame: bytes) -> None:
        """Accept a frame from a non-link source (an internet transport)."""
        self.inbox.put(FrameIn(None, frame))

    # -- what the worker calls (see _inbox.Worker) ------------------------------------------

    async def submit(self, fn: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn(*args, **kwargs)`` on the worker, in turn with the traffic; its result or
        exception."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self.inbox.put(Command(functools.partial(fn, *args, **kwargs), future))
        return await future

    def prefers(self, peer: PublicIdentity) -> bool:
        """Transports keep a contact's link above any stranger's (:class:`LinkJudge`)."""
        return self.engine.direct.knows(peer.node_id)

    async def on_link_up(self, link: Link) -> None:
        now = self.clock()
        self.links[link.link_id] = link
        self._link_since[link.link_id] = now
        if link.transport not in INTERNET_TRANSPORTS:
            self.neighbourhood.hear(link.peer.node_id, now)
        self.notify(NodeNotice("links"))
        await self.effects.run(self.engine.link_up(link.link_id, now, link.peer.node_id))
        await self.effects.run(self.files.link_up())
        if self.options.announce:
            self._announce_due = now + 500

    async def on_link_down(self, link: Link) -> None:
        if self.links.pop(link.link_id, None) is not None:
            self._link_since.pop(link.link_id, None)
            self.notify(NodeNotice("links"))
            await self.effects.run(self.engine.link_down(link.link_id, self.clock()))

    def request_announce(self, now: int) -> None:
        """Announce ourselves at the next housekeeping (a name or gateway state changed)."""
        self._announce_due = now

    async def housekeeping(self) -> None:
        now = self.clock()
        self.neighbourhood.check_gateway(now)
        await self.catchup.run(now)
        await self.files.tick(now)
        if now - self._replay_saved >= replay.SAVE_EVERY_MS:
            self._replay_saved = now
            await replay.save(self, now)
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
            await self.effects.run(self.engine.announce(now))

    # -- user commands: messages, channels ------------------------------------------------

    async def send_text(self, target: str, text: str) -> Message:
        """Store then send a message to a contact (name or id prefix), ``#channel`` or
        ``+group``, or a conversation bridged to another network."""
        if (bridge := self.bridges.get(target.lower())) is not None:
            return await self.submit(bridge.send_text, text)
        return await self.submit(self.commands.send_text, target, text)

    async def join(self, name: str, passphrase: str | None = None) -> Channel:
        return await self.submit(self.commands.join, name, passphrase)

    async def messages(self, conversation: str, limit: int = 200) -> list[Message]:
        return await self.store.call(self.store.store.messages, conversation, limit)

    async def deliveries(self, msg_ids: Iterable[bytes]) -> dict[bytes, list[Delivery]]:
        """Per-device delivery of these outgoing messages (those that have any)."""
        return await self.store.call(self.store.store.deliveries, list(msg_ids))

    async def history(self, conversation: str, limit: int = 200) -> list[Message]:
        """The last ``limit`` shown messages of ``conversation`` in their causal order, then
        the held ones (waiting for a parent; ``order_ms`` None)."""
        return await _history.history(self, conversation, limit)

    async def delete(self, conversation: str, msg_ids: Sequence[bytes] = ()) -> int:
        """Erase these messages of ``conversation`` (all of it when none are named) on this
        device, and stop sending those of ours still queued; returns how many were erased.

        Tombstones keep them from being stored again; faces get a ``history`` notice.
        """
        return await _history.delete(self, conversation, msg_ids)

    async def resolve(self, to: str) -> Target:
        """Where a message to ``to`` goes: ``#channel``, ``+group``, contact name or id prefix
        (see :func:`meshchat.target.resolve_target`). Raises :class:`UsageError`."""
        if is_group_target(to):
            return group_target(self.engine.groups.groups.values(), to)
        try:
            return await self.store.quick(resolve_target, to, self.store.store, ())
        except NoSuchContact:
            if to.startswith("#"):
                raise
            event = find_announced(self.neighbourhood.announces.values(), to)
        # a contact who announced another name than ours for them is still that contact
        contact = await self.store.call(self.store.store.get_contact, event.identity.node_id)
        if contact is not None:
            return await self.store.call(
                resolve_target, contact.node_id.hex(), self.store.store, ()
            )
        return announced_target(event)

    async def announced_peer(self, query: str) -> PeerAnnounced:
        """The announce of the one peer ``query`` names (announced name or node id prefix;
        see :func:`meshchat.target.find_announced`). Raises :class:`UsageError`."""
        return find_announced(self.neighbourhood.announces.values(), query)

    async def add_from_peer(
        self, query: str, name: str | None = None, *, replace_keys: bool = False
    ) -> CardResult:
        """Add the announced peer ``query`` names as a contact, unverified, from the keys and
        signed prekey it announced; the same key-change rules as :meth:`add_card`."""
        return await self.commands.add_peer(query, name, replace_keys)

    async def resolve_conversation(self, target: str) -> str:
        """The conversation name for a ``#channel``, ``+group``, contact name or id prefix."""
        if is_group_target(target):
            return group_conversation(self.find_group(target).group_id)
        try:
            return await self.store.call(conversation_of, target, self.store.store, ())
        except NoSuchContact:
            return (await self.resolve(target)).conversation

    async def conversations(self) -> list[Conversation]:
        """Every conversation with its last message and unread count, most recent first."""
        return await self.store.call(self.store.store.conversations)

    async def mark_read(self, conversation: str) -> None:
        # a mark that moved becomes a Read record my other devices take up at the next sync
        await self.store.call(self.store.store.mark_read, conversation, self.clock())
        self.notify(NodeNotice("read", conversation=conversation))

    async def channels(self) -> list[Channel]:
        """The channels this node is in."""
        return await self.store.call(self.store.store.list_channels)

    # -- contacts and trust ----------------------------------------------------------------

    async def add_contact(self, contact: Contact) -> None:
        await self.commands.add_contact(contact)

    async def card(self) -> ContactCard:
        """This node's contact card with its current signed prekey (stored before it is
        handed out, so the prekey in the card is one the node keeps)."""
        return await self.submit(self.commands.card)

    async def add_card(
        self, card: ContactCard, name: str | None = None, *, replace_keys: bool = False
    ) -> CardResult:
        """Add a contact from its signed card, applying the key-change rules.

        Raises :class:`~meshchat.store.trust.KeyChangeError` when the card claims a known
        contact's name or keys with other keys (pass ``replace_keys`` to accept it; the old
        contact becomes compromised) and :class:`UsageError` for our own card.
        """
        return await self.commands.add_card(card, name, replace_keys)

    async def contacts(self) -> list[Contact]:
        """Every contact with its trust state (see :class:`Trust`)."""
        return await self.store.call(self.store.store.list_contacts)

    async def find_contact(self, query: str) -> Contact:
        """The one contact a user means by name or node id prefix; :class:`UsageError` if
        none or several."""
        return await self.store.call(self.store.store.find_contact, query)

    async def verify(
        self,
        target: str,
        *,
        number: str | None = None,
        payloads: Sequence[str] = (),
        confirmed: bool = False,
    ) -> Verdict:
        """The verify flow (:func:`meshchat.verify.decide`): mark ``target`` verified when the
        safety number or a scanned code matches, or the user confirmed; else only report the
        number. Raises :class:`~meshchat.verify.SafetyMismatch` (nothing changed)."""
        contact = await self.find_contact(target)
        verdict = decide(
            contact, self.identity.public, number=number, payloads=payloads, confirmed=confirmed
        )
        if verdict.mark and contact.trust is not Trust.VERIFIED:
            contact = await self.set_trust(contact.node_id, Trust.VERIFIED)
            verdict = Verdict(contact, verdict.number, True)
        return verdict

    async def set_trust(self, node_id: bytes, trust: Trust) -> Contact:
        return await self.commands.set_trust(node_id, trust)

    async def block(self, query: str) -> tuple[bytes, str]:
        """Drop, from now on, every message from the contact or announced peer ``query``
        names, before it is stored (still relayed for others); its identity key and name."""
        return await self.submit(lambda: self.blocklist.block(query))

    async def unblock(self, query: str) -> tuple[bytes, str]:
        """Stop blocking ``query`` (a name as blocked, a contact or an announced peer)."""
        return await self.submit(lambda: self.blocklist.unblock(query))

    def blocked(self) -> dict[bytes, str]:
        """Blocked identity keys and the names they were blocked as."""
        return dict(self.blocklist.keys)

    async def rename(self, name: str) -> None:
        """Use ``name`` as this node's display name from now on, and announce it soon (for
        this run: the name sealed in the keystore is not changed)."""

        async def change() -> None:
            self.name = self.engine.name = name
            self.request_announce(self.clock())

        await self.submit(change)

    async def _name_for(self, sign_key: bytes) -> str:
        return await self.store.call(name_in, self.store.store, sign_key)

    # -- private groups --------------------------------------------------------------------

    def find_group(self, target: str) -> Group:
        """The group a user means: ``+name`` (case-insensitive) or ``grp:<id hex prefix>``."""
        return self.group_commands.find(target)

    async def create_group(self, name: str, members: list[str]) -> Group:
        """A new private group of contacts (names or id prefixes), this node its admin."""
        return await self.group_commands.create(name, members)

    async def change_group(
        self,
        target: str,
        *,
        add: list[str] = [],  # noqa: B006 - never mutated
        remove: list[str] = [],  # noqa: B006
        admin: list[str] = [],  # noqa: B006
    ) -> Group:
        """Add or remove members, or make members admins; the group is re-keyed."""
        return await self.group_commands.change(target, add, remove, admin)

    async def leave_group(self, target: str) -> Group:
        """Leave a group: our keys for it are erased and its admins re-key it without us."""
        return await self.group_commands.leave(target)

    def groups(self) -> list[Group]:
        """Every group this node holds (also those it was removed from)."""
        return self.group_commands.all()

    # -- linking devices (see _link) -------------------------------------------------------

    @property
    def account_id(self) -> bytes:
        """The account this device is on (its own node id until it is linked to another)."""
        return self.engine.accounts.account_id

    async def link_start(self) -> LinkOffer:
        """Show a one-time code (ten minutes, one use) to link a new device to this account."""
        return await self.linking.start()

    async def link_join(
        self, code: str, device_name: str = "", timeout_s: float = 60.0
    ) -> LinkProgress:
        """Ask the device that shows ``code`` to link this one to its account (waits until
        that device is heard). Raises :class:`~meshchat.errors.LinkError`."""
        return await self.linking.join(code, device_name, timeout_s)

    async def link_wait(
        self, role: str, timeout_s: float, *, answered: bool = False
    ) -> LinkProgress | None:
        """The exchange of ``role`` (``existing`` or ``new``) once its string is shown and
        the person must answer (unless ``answered``), or once it is over."""
        return await self.linking.wait(role, timeout_s, answered=answered)

    def link_status(self, role: str) -> LinkProgress | None:
        """Where the exchange of ``role`` stands (None: none on this device)."""
        return self.linking.status(role)

    def device_list(self) -> DeviceList:
        """This account's current device list."""
        return self.engine.accounts.own

    async def link_confirm(self, role: str, answer: str) -> LinkProgress | None:
        """The person's answer: ``y``, ``n``, or the string the other device shows."""
        return await self.linking.answer(role, answer)

    # -- panic -----------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Ask the node's owner (daemon or UI) to stop it."""
        self.stop_requested.set()

    def set_eraser(self, eraser: Callable[[], PanicReport]) -> None:
        """What :meth:`panic` runs to erase this node's files (the owner knows the home)."""
        self._eraser = eraser

    async def panic(self) -> PanicReport:
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
        return self.neighbourhood.links(self._link_since)

    def announced_peers(self) -> dict[bytes, str]:
        """Node ids and display names learnt from announcements since the node started."""
        return dict(self.neighbourhood.names)

    def gateways(self, within_ms: int = 2 * ANNOUNCE_EVERY_MS) -> dict[bytes, str]:
        """Nodes that announced, recently, that they reach the internet (node id -> name):
        a node with no internet of its own sees that its messages can leave this mesh."""
        return self.neighbourhood.gateways(within_ms)

    async def backlog(self) -> tuple[int, int]:
        """(our messages waiting in the outbox, other nodes' packets this node carries), not
        counting expired ones."""
        now, store = self.clock(), self.store.store
        queued = await self.store.call(store.pending_outbox, now)
        carried = await self.store.call(store.carried, now)
        return len(queued), len(carried)

    def transport_status(self) -> list[TransportStatus]:
        return [t.status() for t in self.transports]

    @property
    def is_gateway(self) -> bool:
        """Whether an internet transport of this node reaches the internet now."""
        return self.engine.gateway

    def gateway_reason(self) -> str:
        """Why this node is not a gateway ("" when it is): what its relays and DHT say, or how
        to configure one."""
        return self.neighbourhood.internet()[1]

    def counter_totals(self) -> dict[str, int]:
        """The node's counters and its router's, for ``meshchat status``."""
        return {**self.counters, **self.engine.router.counters}

    # -- what gateways ask (see meshchat.gateway and _gateway) ------------------------------

    def local_nodes(self, since_ms: int) -> list[bytes]:
        """Node ids heard on local links at or after ``since_ms``, plus every local neighbour
        (most recent first)."""
        return self.neighbourhood.local_nodes(since_ms)

    def channel_ids(self) -> dict[str, bytes]:
        """The joined channels (name -> channel id), and each group's current address under
        ``+name`` (:meth:`bridge_ids` also gives a group's older addresses)."""
        return self.neighbourhood.channel_ids()

    def bridge_ids(self, names: frozenset[str]) -> set[bytes]:
        """The channel ids a gateway bridges for ``names`` (lower case)."""
        return self.neighbourhood.bridge_ids(names)

    def sealed_tags(self, epoch: int) -> list[bytes]:
        """The tags sealed packets created in ``epoch`` reach this node under (the DHT polls
        them)."""
        return self.neighbourhood.sealed_tags(epoch)
