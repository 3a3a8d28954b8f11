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
Private groups are joined to the sessions, outbox and router by :mod:`._groups`.

Uniform failures. A packet that fails to open or has the wrong suite for its destination yields
:class:`MessageRejected` (logged locally) and no reply on the wire, the same outcome as a packet
that never arrived. A sealed message to one of our tags is relayed and carried by the router
like a packet to anyone else's address whether or not it opens here; only its ack (sealed,
to a tag of the sender's) tells anyone it arrived, and a packet that does not open gets none.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence

from meshchat.crypto.box import BoxSuite
from meshchat.crypto.channel import ChannelKey
from meshchat.crypto.direct import DirectSuite
from meshchat.engine._groups import GroupGlue
from meshchat.errors import CryptoError, PacketError, UsageError
from meshchat.events import (
    AttemptMade,
    Event,
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
from meshchat.group.book import Group, GroupBook
from meshchat.identity import ContactCard, Identity, PublicIdentity, SignedPrekey
from meshchat.router.actions import Action, Deliver, Drop, Transmit, Uncarry
from meshchat.router.flood import FloodRouter
from meshchat.router.outbox import Outbox, OutboxItem, backoff_ms
from meshchat.wire import codec
from meshchat.wire.packet import (
    BROADCAST,
    DEFAULT_TTL,
    MAX_AGE_MS,
    Destination,
    DestKind,
    Packet,
    PacketKind,
    Suite,
)
from meshchat.wire.payloads import (
    ANNOUNCE_GATEWAY,
    AckBody,
    AnnounceBody,
    MessageBody,
    ack_hash_of,
)

__all__ = ["ANNOUNCE_TTL", "Engine", "Output", "dm_conversation"]

ANNOUNCE_TTL = 4
Output = Action | Event


def dm_conversation(node_id: bytes) -> str:
    """The conversation name of direct messages with a node."""
    return "dm:" + node_id.hex()


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
        # What the router carries for or from a contact outranks strangers' packets.
        self.router.contacts.add(identity.node_id)
        self.router.contact_keys.add(identity.sign_public)
        return self._updates()

    def prekey(self, now_ms: int) -> SignedPrekey:
        """This node's current signed prekey (rotated when due)."""
        return self.direct.own_prekey(now_ms)

    def card(self, now_ms: int) -> ContactCard:
        """This node's contact card, version 2 with its current signed prekey."""
        return self.identity.card(self.name, self.prekey(now_ms))

    def flush(self) -> list[Output]:
        """Session state changed since the last outputs (e.g. by :meth:`card`), as events."""
        return self._updates()

    def _updates(self) -> list[Output]:
        out: list[Output] = []
        for key, blob in self.direct.take_updates():
            out.append(PrekeysUpdated(blob) if key is None else SessionUpdated(key, blob))
        for key, blob in self.groups.take_updates():
            out.append(GroupStateUpdated(key, blob))
        out.extend(self.groups.take_notices())
        return out

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
        """Leave a group: its admins are told (their nodes re-key it), our keys erased."""
        return self._group_glue.leave(group_id, now_ms)

    def send_group(
        self,
        group_id: bytes,
        msg_id: bytes,
        text: str,
        now_ms: int,
        *,
        expires_ms: int | None = None,
    ) -> list[Output]:
        """Queue a group message and send it at once if there is a neighbour."""
        group = self.groups.groups.get(group_id)
        if group is None or group.current is None:
            raise UsageError("not a member of that group")
        return self._send_once(group_id, msg_id, text, now_ms, expires_ms, group_id=group_id)

    def _send_once(
        self,
        channel_id: bytes,
        msg_id: bytes,
        text: str,
        now_ms: int,
        expires_ms: int | None,
        group_id: bytes | None = None,
    ) -> list[Output]:
        """Queue a message that needs no ack (channel, group): it leaves once there is a
        neighbour to hand it to."""
        MessageBody(msg_id, text)  # validate now, at the sender
        item = OutboxItem(
            msg_id=msg_id,
            destination=Destination.channel(channel_id),
            text=text,
            created_ms=now_ms,
            expires_ms=expires_ms if expires_ms is not None else now_ms + MAX_AGE_MS,
            next_try_ms=now_ms,
            group_id=group_id,
        )
        self.outbox.add(item)
        return self._attempt(item, now_ms)

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
    ) -> list[Output]:
        """Queue a direct message and try it at once. The caller stored it already."""
        MessageBody(msg_id, text)  # validate now, at the sender
        item = OutboxItem(
            msg_id=msg_id,
            destination=Destination.node(recipient.node_id),
            text=text,
            created_ms=now_ms,
            expires_ms=expires_ms if expires_ms is not None else now_ms + MAX_AGE_MS,
            recipient=recipient,
            attempts=attempts,
            next_try_ms=now_ms,
        )
        self.outbox.add(item)
        return self._attempt(item, now_ms)

    def send_channel(
        self,
        channel_id: bytes,
        msg_id: bytes,
        text: str,
        now_ms: int,
        *,
        expires_ms: int | None = None,
    ) -> list[Output]:
        """Queue a channel message and send it at once if there is a neighbour."""
        if channel_id not in self._channels:
            raise UsageError("not a member of that channel")
        return self._send_once(channel_id, msg_id, text, now_ms, expires_ms)

    def announce(self, now_ms: int) -> list[Output]:
        """Tell nearby nodes our box key, display name and current signed prekey."""
        prekey = self.prekey(now_ms)
        out = self._updates()
        flags = ANNOUNCE_GATEWAY if self.gateway else 0
        body = AnnounceBody(self.identity.public.box_public, self.name, prekey, flags).encode()
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

    def _build_message(self, item: OutboxItem, now_ms: int) -> Packet:
        if item.group_id is not None:
            body = MessageBody(item.msg_id, item.text).encode()
            return self.groups.seal(item.group_id, body, now_ms, self.ttl)
        if item.body is not None:
            # Group keys travel only in sealed sessions: never in the older BOX suite.
            if item.recipient is None:
                raise UsageError("a control part has no recipient")
            return self.direct.build_message(
                item.recipient, item.msg_id, item.body, now_ms, self.ttl
            )
        body = MessageBody(item.msg_id, item.text).encode()
        if item.recipient is not None and self.direct.can_seal(item.recipient):
            return self.direct.build_message(item.recipient, item.msg_id, body, now_ms, self.ttl)
        if item.recipient is not None:
            suite, payload = Suite.BOX, self._box.seal(item.recipient.box_public, body)
        else:
            channel = self._channels.get(item.destination.value)
            if channel is None:
                raise UsageError("channel left before its message was sent")
            if channel.private:
                suite, payload = Suite.CHANNEL, channel.seal(body)
            else:
                suite, payload = Suite.SIGNED, body
        return codec.build(
            self.identity,
            PacketKind.MESSAGE,
            item.destination,
            suite,
            payload,
            now_ms,
            self.ttl,
        )

    def _attempt(self, item: OutboxItem, now_ms: int) -> list[Output]:
        if not self.router.links:
            # Nobody to hand it to: wait for a neighbour (link_up wakes the outbox).
            item.next_try_ms = item.expires_ms
            return []
        if item.is_control:
            return self._group_glue.attempt_control(item, now_ms)
        try:
            packet = self._build_message(item, now_ms)
        except (UsageError, CryptoError):
            self._end(item.msg_id)
            return [*self._updates(), MessageExpired(item.msg_id)]
        # The ratchet may have moved: store its state before the packet can leave.
        out: list[Output] = self._updates()
        actions = self.router.originate(packet, now_ms)
        out.extend(actions)
        if any(isinstance(a, Transmit) for a in actions):
            self.outbox.record_packet(item, packet.packet_id)
            if not item.transmitted:
                item.transmitted = True
                out.append(MessageSent(item.msg_id, packet.packet_id))
        item.attempts += 1
        if item.needs_ack:
            item.next_try_ms = now_ms + backoff_ms(item.attempts, self.rng)
            out.append(AttemptMade(item.msg_id, item.attempts, item.next_try_ms))
        elif item.transmitted:
            self._end(item.msg_id)
        return out

    def cancel(self, msg_id: bytes) -> None:
        """Forget a queued message (its owner could not store it): it is not sent again."""
        self._end(msg_id)

    def _end(self, msg_id: bytes) -> None:
        self.outbox.remove(msg_id)
        self.direct.forget(msg_id)
        self.groups.control_done(msg_id)

    # -- receiving -----------------------------------------------------------------------

    def receive(
        self, link: str | None, frame: bytes, now_ms: int, rssi: float | None = None
    ) -> list[Output]:
        self.direct.maintain(now_ms)  # the address set must be current for the router
        out = self._updates()
        out.extend(self._handle(self.router.receive(link, frame, now_ms, rssi), now_ms))
        return out

    def _handle(self, actions: Iterable[Action], now_ms: int) -> list[Output]:
        out: list[Output] = []
        late: list[Output] = []
        for action in actions:
            if isinstance(action, Deliver):
                for o in self._deliver(action.packet, action.link, now_ms):
                    # Our ack of a sealed message uncarries it; the router's Carry of that
                    # same message follows the Deliver, so the Uncarry must come after it.
                    (late if isinstance(o, Uncarry) else out).append(o)
            else:
                out.append(action)
        return out + late

    def _deliver(self, packet: Packet, link: str | None, now_ms: int) -> list[Output]:
        try:
            if packet.kind is PacketKind.MESSAGE:
                return self._on_message(packet, now_ms, link)
            if packet.kind is PacketKind.ACK:
                return self._on_ack(packet, now_ms, link)
            if packet.kind is PacketKind.ANNOUNCE:
                return self._on_announce(packet)
        except (PacketError, CryptoError) as exc:
            return [*self._updates(), MessageRejected(str(exc), packet.packet_id, link)]
        return []

    def _on_announce(self, packet: Packet) -> list[Output]:
        body = AnnounceBody.decode(packet.payload)
        peer = PublicIdentity(packet.origin, body.box_public)
        if body.prekey is not None:
            # Kept only for a known peer, only if signed by it and newer than the one we have.
            self.direct.learn_prekey(peer, body.prekey)
        announced = PeerAnnounced(peer, body.name, packet.hops, body.prekey, body.gateway)
        return [*self._updates(), announced]

    def _to_tag(self, packet: Packet) -> bool:
        dest = packet.destination
        return dest.kind is DestKind.NODE and dest.value in self.direct.book.tags

    def _on_sealed_message(self, packet: Packet, now_ms: int, link: str | None) -> list[Output]:
        opened = self.direct.open_message(packet, now_ms, link)
        out: list[Output] = []
        if opened.control is not None:
            # A control part not kept, or whose blob was not applied, is not acked (nor are
            # retries of it): the sender hears "not applied" instead.
            try:
                outputs, take = self._group_glue.on_control(
                    opened.sender, opened.control, now_ms, packet.packet_id
                )
                out.extend(outputs)
            except (PacketError, CryptoError) as exc:
                out.append(MessageRejected(f"group control: {exc}", packet.packet_id, None))
                take = False
            if not take:
                self.direct.withhold(opened)
                return [*out, *self._updates()]
        if opened.text is not None and opened.msg_id is not None:
            out.append(
                MessageReceived(
                    conversation=dm_conversation(opened.sender.node_id),
                    msg_id=opened.msg_id,
                    sender=opened.sender,
                    sender_key=opened.sender.sign_public,
                    text=opened.text,
                    created_ms=packet.created_ms,
                    packet_id=packet.packet_id,
                    hops=packet.hops,
                )
            )
        try:
            ack = self.direct.build_ack(opened.sender, opened.token, now_ms, self.ttl)
        except CryptoError as exc:
            return [*out, *self._updates(), MessageRejected(str(exc), packet.packet_id, None)]
        # The message, then the session state (received and acked), then the ack.
        out.extend(self._updates())
        out.extend(self.router.originate(ack, now_ms))
        return out

    def _on_message(self, packet: Packet, now_ms: int, link: str | None = None) -> list[Output]:
        dest = packet.destination
        if self._to_tag(packet):
            if packet.suite is not Suite.RATCHET:
                return [MessageRejected("wrong suite for a sealed address", packet.packet_id, None)]
            return self._on_sealed_message(packet, now_ms, link)
        if dest.kind is DestKind.NODE:
            if packet.suite is not Suite.BOX:
                return [
                    MessageRejected(
                        "direct message not end-to-end encrypted", packet.packet_id, None
                    )
                ]
            sender_box, plaintext = self._box.open(packet.payload)
            sender = PublicIdentity(packet.origin, sender_box)
            body = MessageBody.decode(plaintext)
            received = MessageReceived(
                conversation=dm_conversation(sender.node_id),
                msg_id=body.msg_id,
                sender=sender,
                sender_key=packet.origin,
                text=body.text,
                created_ms=packet.created_ms,
                packet_id=packet.packet_id,
                hops=packet.hops,
            )
            ack = codec.build(
                self.identity,
                PacketKind.ACK,
                Destination.node(sender.node_id),
                Suite.SIGNED,
                AckBody(packet.packet_id, body.msg_id, self.identity.public.box_public).encode(),
                now_ms,
                self.ttl,
            )
            return [received, *self.router.originate(ack, now_ms)]
        if dest.kind is DestKind.CHANNEL and self.groups.is_group_address(dest.value):
            return self._group_glue.on_message(packet, now_ms)
        if dest.kind is DestKind.CHANNEL:
            channel = self._channels.get(dest.value)
            if channel is None:
                return []
            expected = Suite.CHANNEL if channel.private else Suite.SIGNED
            if packet.suite is not expected:
                return [MessageRejected("wrong suite for channel", packet.packet_id, None)]
            plaintext = channel.open(packet.payload) if channel.private else packet.payload
            body = MessageBody.decode(plaintext)
            return [
                MessageReceived(
                    conversation=channel.name,
                    msg_id=body.msg_id,
                    sender=None,
                    sender_key=packet.origin,
                    text=body.text,
                    created_ms=packet.created_ms,
                    packet_id=packet.packet_id,
                    hops=packet.hops,
                )
            ]
        return []

    def _on_sealed_ack(self, packet: Packet, now_ms: int, link: str | None) -> list[Output]:
        token = ack_hash_of(packet.payload)
        msg_id = self.direct.token_owner(token) if token is not None else None
        out: list[Output] = []
        try:
            self.direct.open_ack(packet, now_ms, link)
        except CryptoError as exc:
            # The token alone proves delivery (only the recipient could find it); the sealed
            # part only moves the session on.
            out.append(MessageRejected(str(exc), packet.packet_id, None))
        out[:0] = self._updates()
        item = self.outbox.get(msg_id) if msg_id is not None else None
        if item is None or item.recipient is None:
            return out
        if item.is_control:
            self.groups.control_acked(item.msg_id)
        self._end(item.msg_id)
        if item.is_control:
            return [*out, *self._updates()]
        if not item.transmitted:
            out.append(MessageSent(item.msg_id, packet.packet_id))
        out.append(MessageDelivered(item.msg_id))
        return out

    def _on_ack(self, packet: Packet, now_ms: int, link: str | None = None) -> list[Output]:
        if self._to_tag(packet):
            if packet.suite is not Suite.RATCHET:
                return [MessageRejected("wrong suite for a sealed address", packet.packet_id, None)]
            return self._on_sealed_ack(packet, now_ms, link)
        ack = AckBody.decode(packet.payload)
        item = self.outbox.get(ack.msg_id)
        if item is None or item.recipient is None:
            return []
        if packet.origin != item.recipient.sign_public:
            return [MessageRejected("ack not from the recipient", packet.packet_id, None)]
        self._end(ack.msg_id)
        out: list[Output] = []
        if not item.transmitted:
            out.append(MessageSent(item.msg_id, ack.acked_packet_id))
        out.append(MessageDelivered(ack.msg_id))
        return out

    # -- links and time ------------------------------------------------------------------

    def link_up(self, link: str, now_ms: int, peer: bytes | None = None) -> list[Output]:
        """A neighbour appeared (``peer``: its node id, if known; what we carry for it first)."""
        self.direct.maintain(now_ms)
        out: list[Output] = self._updates()
        out.extend(self.router.link_up(link, now_ms, peer))
        self.outbox.wake(now_ms)
        out.extend(self._retry_due(now_ms))
        return out

    def link_down(self, link: str, now_ms: int) -> list[Output]:
        return list(self.router.link_down(link, now_ms))

    def tick(self, now_ms: int) -> list[Output]:
        self.direct.maintain(now_ms)
        if self.groups.maintain(now_ms):
            self._group_glue.sync_addresses()
        out: list[Output] = self._updates()
        out.extend(self._handle(self.router.tick(now_ms), now_ms))
        for msg_id in self.outbox.expire(now_ms):
            self.direct.forget(msg_id)
            if not self.groups.control_done(msg_id):
                out.append(MessageExpired(msg_id))
        out.extend(self._updates())
        out.extend(self._retry_due(now_ms))
        return out

    def _retry_due(self, now_ms: int) -> list[Output]:
        out: list[Output] = []
        for item in self.outbox.due(now_ms):
            out.extend(self._attempt(item, now_ms))
        return out

    def next_deadline(self) -> int | None:
        times = [
            t for t in (self.router.next_deadline(), self.outbox.next_deadline()) if t is not None
        ]
        return min(times) if times else None
