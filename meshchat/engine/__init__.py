"""The engine: a node's pure brain, joining the flood router to payload crypto and the outbox.

The engine is sans-IO like the router it wraps: it is fed frames, link changes and clock
ticks, and returns a list of router actions (:mod:`meshchat.router.actions`) and application
events (:mod:`meshchat.events`) in the order the owner must carry them out. Order matters: a
:class:`MessageReceived` comes before the :class:`Transmit` of its ack, so an owner that stores
each event before going on never acknowledges a message it could lose.

Direct messages use suite RATCHET when the recipient has a signed prekey or a session with us
(:mod:`meshchat.crypto.direct`: X3DH and the Double Ratchet, sealed sender, rotating tags,
padded payloads), else the older suite BOX to its node id. Either way they are retried from the
outbox until acked; each retry is a new packet (new packet id, new nonce) carrying the same
message id, so relays that remember the old packet id still pass the retry on. Channel messages
use suite CHANNEL for a private channel and SIGNED for the public ``#mesh``.

Session state is the engine's only durable state: every change comes out as a
:class:`SessionUpdated` or :class:`PrekeysUpdated` event **before** the packet or ack that
depends on it, and :meth:`Engine.load_sessions` takes the stored blobs back after a restart.
Private groups are joined to the sessions, outbox and router by :mod:`._groups`; the
``send_*`` methods queue this node's messages; building, trying and resending them (and
sending history summaries) is :mod:`._sending`; opening messages and acks for it is
:mod:`._receiving`.

Uniform failures. A packet that fails to open or has the wrong suite for its destination yields
:class:`MessageRejected` (logged locally) and no reply on the wire, the same outcome as a packet
that never arrived. A sealed message to one of our tags is relayed and carried by the router
like a packet to anyone else's address whether or not it opens here; only its ack (sealed,
to a tag of the sender's) tells anyone it arrived, and a packet that does not open gets none.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence

from meshchat.account.book import AccountBook
from meshchat.account.link import LINK_KINDS
from meshchat.crypto.box import BoxSuite
from meshchat.crypto.channel import ChannelKey
from meshchat.crypto.direct import DirectSuite
from meshchat.engine._account import AccountGlue
from meshchat.engine._carbons import CarbonGlue
from meshchat.engine._fanout import Directory, devices_for
from meshchat.engine._files import LINK_FILE_TAG, FileGlue
from meshchat.engine._groups import GroupGlue
from meshchat.engine._groupsync import GroupSyncGlue
from meshchat.engine._link import LinkGlue
from meshchat.engine._receiving import Receiving, dm_conversation
from meshchat.engine._sending import Sending, message_body
from meshchat.engine._sync import SyncGlue
from meshchat.errors import CryptoError, PacketError, UsageError
from meshchat.events import (
    DeviceListUpdated,
    Event,
    GroupStateUpdated,
    MessageExpired,
    MessageRejected,
    PeerAnnounced,
    PrekeysUpdated,
    SessionUpdated,
)
from meshchat.group.book import Group, GroupBook
from meshchat.identity import ContactCard, Identity, PublicIdentity, SignedPrekey
from meshchat.router.actions import Action, Deliver, Drop, Uncarry
from meshchat.router.flood import FloodRouter
from meshchat.router.outbox import Outbox, OutboxItem
from meshchat.wire import codec
from meshchat.wire.packet import (
    BROADCAST,
    DEFAULT_TTL,
    MAX_AGE_MS,
    Destination,
    Packet,
    PacketKind,
    Suite,
)
from meshchat.wire.payloads import (
    ANNOUNCE_GATEWAY,
    AnnounceBody,
    MessageBody,
)

__all__ = ["ANNOUNCE_TTL", "Engine", "Output", "dm_conversation"]

ANNOUNCE_TTL = 4
Output = Action | Event


class Engine:
    """Builds, opens and tracks this node's messages on top of a :class:`FloodRouter`."""

    def __init__(
        self,
        identity: Identity,
        name: str,
        *,
        router: FloodRouter | None = None,
        ttl: int = DEFAULT_TTL,
        rng: random.Random | None = None,
    ) -> None:
        self.identity = identity
        self.name = name
        #: announce ourselves as a gateway to the internet (the node sets it)
        self.gateway = False
        self.rng = rng or random.Random()
        self.router = router or FloodRouter(
            identity.node_id, identity.public.sign_public, rng=self.rng
        )
        self.ttl = ttl
        self.outbox = Outbox()
        self._box = BoxSuite(identity)
        self._channels: dict[bytes, ChannelKey] = {}
        self.direct = DirectSuite(identity)
        # The router reads the live set of our tags; the suite keeps it current.
        self.router.addresses = self.direct.book.tags
        self.groups = GroupBook(identity)
        self._group_glue = GroupGlue(self)
        #: this device's account and the accounts of the devices it knows
        self.accounts = AccountBook(identity, device_name=name)
        #: what fan-out asks of accounts (:mod:`._fanout`): the account book
        self.directory: Directory = self.accounts
        self.link = LinkGlue(self)
        #: account control blobs by kind, device lists shared and followed (_account)
        self.account_glue = AccountGlue(self)
        for kind in LINK_KINDS:
            self.account_glue.register(kind, self.link.on_blob, own_devices_only=False)
        #: my sent direct messages copied to my other devices (_carbons)
        self.carbons = CarbonGlue(self)
        #: history sync blobs between my devices (_sync)
        self.sync = SyncGlue(self)
        #: my groups followed by my other devices (_groupsync)
        self.group_sync = GroupSyncGlue(self)
        self.sending = Sending(self)
        self.receiving = Receiving(self)
        #: file packets: requests and pieces (_files)
        self.files = FileGlue(self)

    # -- sessions and contacts -----------------------------------------------------------

    def load_sessions(self, blobs: dict[bytes, bytes]) -> list[bytes]:
        """Restore stored session state (our prekeys under our node id); the unreadable keys."""
        return self.direct.load(blobs)

    def add_contact(
        self, identity: PublicIdentity, prekey: SignedPrekey | None, now_ms: int
    ) -> list[Output]:
        """Know a contact: answer to its pair tags, keep its signed prekey if it is valid and
        newer than the one we have. Call at start for every contact and when one is added."""
        self.direct.maintain(now_ms)
        self.direct.add_peer(identity, prekey)
        self.accounts.know(identity)
        # What the router carries for or from a contact outranks strangers' packets.
        self.router.contacts.add(identity.node_id)
        self.router.contact_keys.add(identity.sign_public)
        return self._updates()

    def add_own_device(self, identity: PublicIdentity) -> None:
        """Another device of this account: answer to its pair tags and carry what it sends
        as a contact's (the node keeps it as a contact row of trust ``own``)."""
        self.direct.add_peer(identity)
        self.router.contacts.add(identity.node_id)
        self.router.contact_keys.add(identity.sign_public)

    def meet(
        self, identity: PublicIdentity, prekey: SignedPrekey | None, now_ms: int
    ) -> list[Output]:
        """Take up the keys a stranger announced before writing to it: its signed prekey
        (kept only if it signed it and it is newer) lets the first message be forward
        secret. Unlike :meth:`add_contact`, its packets do not outrank strangers'."""
        self.direct.maintain(now_ms)
        self.direct.add_peer(identity, prekey)
        return self._updates()

    def prekey(self, now_ms: int) -> SignedPrekey:
        """This node's current signed prekey (rotated when due)."""
        return self.direct.own_prekey(now_ms)

    def card(self, now_ms: int) -> ContactCard:
        """This node's contact card, version 2 with its current signed prekey (3 with its
        account, when that is more than this device alone)."""
        item = self.account_glue.announce_item()
        account = None if item is None else (item.account_id, item.version)
        return self.identity.card(self.name, self.prekey(now_ms), account)

    def flush(self) -> list[Output]:
        """Session state changed since the last outputs (e.g. by :meth:`card`), as events."""
        return self._updates()

    def _updates(self) -> list[Output]:
        out: list[Output] = []
        for key, blob in self.direct.take_updates():
            out.append(PrekeysUpdated(blob) if key is None else SessionUpdated(key, blob))
        for key, blob in self.groups.take_updates():
            out.append(GroupStateUpdated(key, blob))
        for account_id, blob in self.accounts.take_updates():
            out.append(DeviceListUpdated(account_id, blob))
        out.extend(self.groups.take_notices())
        out.extend(self.account_glue.take_notices())
        return out

    # -- accounts (see _account.AccountGlue) ----------------------------------------------

    @property
    def account_id(self) -> bytes:
        return self.accounts.account_id

    def contact_added(
        self, identity: PublicIdentity, now_ms: int, account: tuple[bytes, int] | None = None
    ) -> list[Output]:
        """A contact was just added by the user: it is sent this account's list (when the
        account is more than this device alone), and asked for its own when its card named
        an ``account`` (id, list version) newer than held."""
        out = self.account_glue.share_own(now_ms, [identity])
        if account is not None:
            out.extend(self.account_glue.ask(identity, account[0], account[1], now_ms))
        return [*out, *self._updates()]

    def revoke_device(self, node_id: bytes, now_ms: int) -> list[Output]:
        """Take one of this account's other devices off its list; everyone is told."""
        return [*self.account_glue.revoke(node_id, now_ms), *self._updates()]

    # -- private groups (see _groups.GroupGlue) -------------------------------------------

    def load_groups(self, blobs: dict[bytes, bytes], now_ms: int) -> list[bytes]:
        """Restore stored group state (after :meth:`load_sessions`); the unreadable keys."""
        return self._group_glue.load(blobs, now_ms)

    def distrust(self, node_id: bytes) -> list[Output]:
        """The user marked these keys compromised: send them no group keys from now on."""
        self._group_glue.distrust(node_id)
        return self._updates()

    def create_group(
        self, name: str, members: list[PublicIdentity], now_ms: int
    ) -> tuple[Group, list[Output]]:
        """A new private group with this node as admin; members are sent its keys."""
        return self._group_glue.create(name, members, now_ms)

    def change_group(
        self,
        group_id: bytes,
        now_ms: int,
        *,
        add: Sequence[PublicIdentity] = (),
        remove: Sequence[bytes] = (),
        admins: set[bytes] | None = None,
    ) -> list[Output]:
        """Add or remove members (this node must be an admin): the group is re-keyed."""
        return self._group_glue.change(group_id, now_ms, add=add, remove=remove, admins=admins)

    def leave_group(self, group_id: bytes, now_ms: int) -> list[Output]:
        """Leave a group: its admins are told (their nodes re-key it), our keys erased, and
        my other devices leave it too."""
        out = self._group_glue.leave(group_id, now_ms)
        return [*out, *self.group_sync.left(group_id, now_ms)]

    def send_group(
        self,
        group_id: bytes,
        msg_id: bytes,
        text: str,
        now_ms: int,
        *,
        expires_ms: int | None = None,
        parents: Sequence[bytes] = (),
        loose: Sequence[bytes] = (),
        sent_ms: int | None = None,
    ) -> list[Output]:
        """Queue a group message and send it at once if there is a neighbour. ``parents``
        and ``loose`` name the messages it follows; ``sent_ms`` (default ``now_ms``) is the
        time it was written, kept in every retry."""
        group = self.groups.groups.get(group_id)
        if group is None or group.current is None:
            raise UsageError("not a member of that group")
        return self._send_shared(
            group_id, msg_id, text, now_ms, expires_ms, group_id, parents, loose, sent_ms
        )

    def send_history(
        self, conversation_id: bytes, heads: Sequence[bytes], wants: Sequence[bytes], now_ms: int
    ) -> list[Output]:
        """Send a history summary (the ``heads`` we show, the ids we ``want``) to a group or a
        joined channel, once, if there is a link: not queued, not acked. Raises
        :class:`UsageError` if this node is not a member, :class:`PacketError` past the
        bounds."""
        return self.sending.history(conversation_id, heads, wants, now_ms)

    # -- channels ------------------------------------------------------------------------

    def join(self, channel: ChannelKey) -> None:
        self._channels[channel.channel_id] = channel
        self.router.channels.add(channel.channel_id)

    def leave(self, channel: ChannelKey) -> None:
        self._channels.pop(channel.channel_id, None)
        self.router.channels.discard(channel.channel_id)

    @property
    def channels(self) -> list[ChannelKey]:
        return list(self._channels.values())

    def channel(self, channel_id: bytes) -> ChannelKey | None:
        """The joined channel with this id."""
        return self._channels.get(channel_id)

    # -- sending -------------------------------------------------------------------------

    def send_direct(
        self,
        recipient: PublicIdentity,
        msg_id: bytes,
        text: str,
        now_ms: int,
        *,
        expires_ms: int | None = None,
        attempts: int = 0,
        parents: Sequence[bytes] = (),
        loose: Sequence[bytes] = (),
        sent_ms: int | None = None,
        devices: Sequence[PublicIdentity] | None = None,
    ) -> list[Output]:
        """Queue a direct message and try it at once. The caller stored it already.

        One copy goes to each live device of the recipient's account (``devices``, when
        given: only those; see :mod:`._fanout`), all with the same id and body. Each device's
        earlier messages still unacked are retried first (see :mod:`._sending`). A new
        message (``devices`` not given) is also copied to this account's other devices
        (carbons, :mod:`._carbons`).
        ``parents``, ``loose`` and ``sent_ms`` as in :meth:`send_group`.
        """
        sent = now_ms if sent_ms is None else sent_ms
        body = MessageBody(msg_id, text, sent, tuple(parents), tuple(loose))  # valid, or raises
        fresh = devices is None
        if devices is None:
            devices = devices_for(self.directory, recipient, self.identity.node_id)
        expires = expires_ms if expires_ms is not None else now_ms + MAX_AGE_MS
        out: list[Output] = []
        for device in devices:
            item = OutboxItem(
                msg_id=msg_id,
                destination=Destination.node(device.node_id),
                text=text,
                created_ms=now_ms,
                expires_ms=expires,
                recipient=device,
                attempts=attempts,
                next_try_ms=now_ms,
                sent_ms=sent,
                parents=body.parents,
                loose=body.loose,
            )
            out.extend(self.sending.resend_earlier(device, msg_id, now_ms))
            self.outbox.add(item)
            out.extend(self.sending.attempt(item, now_ms))
        if fresh:
            # A message reloaded from the outbox (``devices`` given) has its carbons in flight.
            out.extend(self.carbons.sent(recipient, body, now_ms))
        return out

    def send_channel(
        self,
        channel_id: bytes,
        msg_id: bytes,
        text: str,
        now_ms: int,
        *,
        expires_ms: int | None = None,
        parents: Sequence[bytes] = (),
        loose: Sequence[bytes] = (),
        sent_ms: int | None = None,
    ) -> list[Output]:
        """Queue a channel message and send it at once if there is a neighbour
        (``parents``, ``loose`` and ``sent_ms`` as in :meth:`send_group`)."""
        if channel_id not in self._channels:
            raise UsageError("not a member of that channel")
        return self._send_shared(
            channel_id, msg_id, text, now_ms, expires_ms, None, parents, loose, sent_ms
        )

    def _send_shared(
        self,
        channel_id: bytes,
        msg_id: bytes,
        text: str,
        now_ms: int,
        expires_ms: int | None,
        group_id: bytes | None,
        parents: Sequence[bytes],
        loose: Sequence[bytes],
        sent_ms: int | None,
    ) -> list[Output]:
        """Queue a message that needs no ack (channel, group): it leaves once there is a
        neighbour to hand it to."""
        item = OutboxItem(
            msg_id=msg_id,
            destination=Destination.channel(channel_id),
            text=text,
            created_ms=now_ms,
            expires_ms=expires_ms if expires_ms is not None else now_ms + MAX_AGE_MS,
            next_try_ms=now_ms,
            group_id=group_id,
            sent_ms=now_ms if sent_ms is None else sent_ms,
            parents=tuple(parents),
            loose=tuple(loose),
        )
        message_body(item)  # validate now, at the sender
        self.outbox.add(item)
        return self.sending.attempt(item, now_ms)

    def announce(self, now_ms: int) -> list[Output]:
        """Tell nearby nodes our box key, display name and current signed prekey."""
        prekey = self.prekey(now_ms)
        out = self._updates()
        flags = ANNOUNCE_GATEWAY if self.gateway else 0
        item = self.account_glue.announce_item()
        body = AnnounceBody(
            self.identity.public.box_public, self.name, prekey, flags, item
        ).encode()
        packet = codec.build(
            self.identity,
            PacketKind.ANNOUNCE,
            BROADCAST,
            Suite.SIGNED,
            body,
            now_ms,
            ANNOUNCE_TTL,
        )
        out.extend(a for a in self.router.originate(packet, now_ms) if not isinstance(a, Drop))
        return out

    def cancel(self, msg_id: bytes) -> None:
        """Forget a queued message (its owner could not store it): it is not sent again."""
        self._end(msg_id)

    def _end(self, msg_id: bytes) -> None:
        """Every copy of ``msg_id`` leaves the outbox."""
        for item in self.outbox.copies(msg_id):
            self._end_copy(item)
        self.groups.control_done(msg_id)

    def _end_copy(self, item: OutboxItem) -> bool:
        """One copy leaves the outbox; True if it was the message's last."""
        self.outbox.remove(item.key)
        self.direct.forget(item.key)
        if item.is_control:
            self.groups.control_done(item.msg_id)
        return not self.outbox.copies(item.msg_id)

    # -- receiving -----------------------------------------------------------------------

    def receive(
        self, link: str | None, frame: bytes, now_ms: int, rssi: float | None = None
    ) -> list[Output]:
        if frame[:1] == LINK_FILE_TAG:  # a neighbour's file body, not a packet
            return self.files.receive_link(link, frame, now_ms)
        self.direct.maintain(now_ms)  # the address set must be current for the router
        out = self._updates()
        out.extend(self._handle(self.router.receive(link, frame, now_ms, rssi), now_ms))
        return out

    def _handle(self, actions: Iterable[Action], now_ms: int) -> list[Output]:
        """The router's actions, each packet it delivers to us opened (:mod:`._receiving`)."""
        out: list[Output] = []
        late: list[Output] = []
        for action in actions:
            if not isinstance(action, Deliver):
                out.append(action)
                continue
            packet, link = action.packet, action.link
            opened: list[Output] = []
            try:
                if packet.kind is PacketKind.MESSAGE:
                    opened = self.receiving.message(packet, now_ms, link)
                elif packet.kind is PacketKind.ACK:
                    opened = self.receiving.ack(packet, now_ms, link)
                elif packet.kind is PacketKind.ANNOUNCE:
                    opened = self._on_announce(packet, now_ms)
                elif packet.kind is PacketKind.FILE:
                    opened = self.files.receive(packet, link)
            except (PacketError, CryptoError) as exc:
                opened = [*self._updates(), MessageRejected(str(exc), packet.packet_id, link)]
            for o in opened:
                # Our ack of a sealed message uncarries it; the router's Carry of that same
                # message follows the Deliver, so the Uncarry must come after it.
                (late if isinstance(o, Uncarry) else out).append(o)
        return out + late

    def _on_announce(self, packet: Packet, now_ms: int) -> list[Output]:
        body = AnnounceBody.decode(packet.payload)
        peer = PublicIdentity(packet.origin, body.box_public)
        if body.prekey is not None:
            # Kept only for a known peer, only if signed by it and newer than the one we have.
            self.direct.learn_prekey(peer, body.prekey)
        announced = PeerAnnounced(peer, body.name, packet.hops, body.prekey, body.gateway)
        asked = self.account_glue.on_announce(peer, body.account, body.prekey, now_ms)
        return [*asked, *self._updates(), announced]

    # -- links and time ------------------------------------------------------------------

    def link_up(self, link: str, now_ms: int, peer: bytes | None = None) -> list[Output]:
        """A neighbour appeared (``peer``: its node id, if known; what we carry for it first)."""
        self.direct.maintain(now_ms)
        out: list[Output] = self._updates()
        out.extend(self.router.link_up(link, now_ms, peer))
        self.files.link_up(link, peer)
        self.outbox.wake(now_ms)
        out.extend(self._retry_due(now_ms))
        return out

    def link_down(self, link: str, now_ms: int) -> list[Output]:
        self.files.link_down(link)
        return list(self.router.link_down(link, now_ms))

    def tick(self, now_ms: int) -> list[Output]:
        self.direct.maintain(now_ms)
        if self.groups.maintain(now_ms):
            self._group_glue.sync_addresses()
        out: list[Output] = self._updates()
        out.extend(self._handle(self.router.tick(now_ms), now_ms))
        for item in self.outbox.expire(now_ms):
            self.direct.forget(item.key)
            if not self.groups.control_done(item.msg_id):
                last = not self.outbox.copies(item.msg_id)
                out.append(MessageExpired(item.msg_id, item.device, last))
        out.extend(self._updates())
        out.extend(self._retry_due(now_ms))
        return out

    def _retry_due(self, now_ms: int) -> list[Output]:
        out: list[Output] = []
        for item in self.outbox.due(now_ms):
            out.extend(self.sending.attempt(item, now_ms))
        return out

    def next_deadline(self) -> int | None:
        times = [
            t for t in (self.router.next_deadline(), self.outbox.next_deadline()) if t is not None
        ]
        return min(times) if times else None
