"""The engine: a node's pure brain, joining the flood router to payload crypto and the outbox.

The engine is sans-IO like the router it wraps: it is fed frames, link changes and clock
ticks, and returns a list of router actions (:mod:`meshchat.router.actions`) and application
events (:mod:`meshchat.events`) in the order the owner must carry them out. Order matters: a
:class:`MessageReceived` comes before the :class:`Transmit` of its ack, so an owner that stores
each event before going on never acknowledges a message it could lose.

Direct messages use suite BOX and are retried from the outbox until acked; each retry is a new
packet (new packet id, new nonce) carrying the same message id, so relays that remember the old
packet id still pass the retry on. Channel messages use suite CHANNEL for a private channel and
SIGNED for the public ``#mesh``. A packet that fails to open or has the wrong suite for its
destination yields :class:`MessageRejected` and no reply on the wire, the same outcome as a
packet that never arrived.
"""

from __future__ import annotations

import random
from collections.abc import Iterable

from meshchat.crypto.box import BoxSuite
from meshchat.crypto.channel import ChannelKey
from meshchat.errors import CryptoError, PacketError, UsageError
from meshchat.events import (
    AttemptMade,
    Event,
    MessageDelivered,
    MessageExpired,
    MessageReceived,
    MessageRejected,
    MessageSent,
    PeerAnnounced,
)
from meshchat.identity import Identity, PublicIdentity
from meshchat.router.actions import Action, Deliver, Drop, Transmit
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
from meshchat.wire.payloads import AckBody, AnnounceBody, MessageBody

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
        self.rng = rng or random.Random()
        self.router = router or FloodRouter(
            identity.node_id, identity.public.sign_public, rng=self.rng
        )
        self.ttl = ttl
        self.outbox = Outbox()
        self._box = BoxSuite(identity)
        self._channels: dict[bytes, ChannelKey] = {}

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
        MessageBody(msg_id, text)
        item = OutboxItem(
            msg_id=msg_id,
            destination=Destination.channel(channel_id),
            text=text,
            created_ms=now_ms,
            expires_ms=expires_ms if expires_ms is not None else now_ms + MAX_AGE_MS,
            next_try_ms=now_ms,
        )
        self.outbox.add(item)
        return self._attempt(item, now_ms)

    def announce(self, now_ms: int) -> list[Output]:
        """Tell nearby nodes our box key and display name."""
        body = AnnounceBody(self.identity.public.box_public, self.name).encode()
        packet = codec.build(
            self.identity,
            PacketKind.ANNOUNCE,
            BROADCAST,
            Suite.SIGNED,
            body,
            now_ms,
            ANNOUNCE_TTL,
        )
        return [a for a in self.router.originate(packet, now_ms) if not isinstance(a, Drop)]

    def _build_message(self, item: OutboxItem, now_ms: int) -> Packet:
        body = MessageBody(item.msg_id, item.text).encode()
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
        try:
            packet = self._build_message(item, now_ms)
        except UsageError:
            self.outbox.remove(item.msg_id)
            return [MessageExpired(item.msg_id)]
        out: list[Output] = []
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
            self.outbox.remove(item.msg_id)
        return out

    # -- receiving -----------------------------------------------------------------------

    def receive(
        self, link: str | None, frame: bytes, now_ms: int, rssi: float | None = None
    ) -> list[Output]:
        return self._handle(self.router.receive(link, frame, now_ms, rssi), now_ms)

    def _handle(self, actions: Iterable[Action], now_ms: int) -> list[Output]:
        out: list[Output] = []
        for action in actions:
            if isinstance(action, Deliver):
                out.extend(self._deliver(action.packet, action.link, now_ms))
            else:
                out.append(action)
        return out

    def _deliver(self, packet: Packet, link: str | None, now_ms: int) -> list[Output]:
        try:
            if packet.kind is PacketKind.MESSAGE:
                return self._on_message(packet, now_ms)
            if packet.kind is PacketKind.ACK:
                return self._on_ack(packet)
            if packet.kind is PacketKind.ANNOUNCE:
                body = AnnounceBody.decode(packet.payload)
                peer = PublicIdentity(packet.origin, body.box_public)
                return [PeerAnnounced(peer, body.name, packet.hops)]
        except (PacketError, CryptoError) as exc:
            return [MessageRejected(str(exc), packet.packet_id, link)]
        return []

    def _on_message(self, packet: Packet, now_ms: int) -> list[Output]:
        dest = packet.destination
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

    def _on_ack(self, packet: Packet) -> list[Output]:
        ack = AckBody.decode(packet.payload)
        item = self.outbox.get(ack.msg_id)
        if item is None or item.recipient is None:
            return []
        if packet.origin != item.recipient.sign_public:
            return [MessageRejected("ack not from the recipient", packet.packet_id, None)]
        self.outbox.remove(ack.msg_id)
        out: list[Output] = []
        if not item.transmitted:
            out.append(MessageSent(item.msg_id, ack.acked_packet_id))
        out.append(MessageDelivered(ack.msg_id))
        return out

    # -- links and time ------------------------------------------------------------------

    def link_up(self, link: str, now_ms: int) -> list[Output]:
        out: list[Output] = list(self.router.link_up(link, now_ms))
        self.outbox.wake(now_ms)
        out.extend(self._retry_due(now_ms))
        return out

    def link_down(self, link: str, now_ms: int) -> list[Output]:
        return list(self.router.link_down(link, now_ms))

    def tick(self, now_ms: int) -> list[Output]:
        out: list[Output] = self._handle(self.router.tick(now_ms), now_ms)
        out.extend(MessageExpired(m) for m in self.outbox.expire(now_ms))
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
