"""The engine's receiving side: messages and acks for this node, opened and turned into events.

:class:`Receiving` belongs to one :class:`~meshchat.engine.Engine`. A direct message (sealed to
one of our tags, or BOX to our node id) is reported as :class:`MessageReceived` and acked; a
channel or group message as :class:`MessageReceived`, or as :class:`HistoryReceived` when its
body is a history summary (never acked). A history summary inside a direct message does not
decode (direct bodies are text messages or control parts) and is rejected like any malformed
body. An ack ends its message in the outbox. A message from a device that a device list held
here revokes is refused unacked (its new session, if it opened one, is dropped at once).

Every :class:`MessageReceived` carries the body's sent time, or the packet's creation time for
a body from an older node (which has none), and the parents the body names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from meshchat.errors import CryptoError, PacketError
from meshchat.events import (
    HistoryReceived,
    MessageDelivered,
    MessageReceived,
    MessageRejected,
    MessageSent,
)
from meshchat.identity import PublicIdentity
from meshchat.router.outbox import OutboxItem
from meshchat.wire import codec
from meshchat.wire.packet import Destination, DestKind, Packet, PacketKind, Suite
from meshchat.wire.payloads import (
    AckBody,
    HistoryBody,
    MessageBody,
    ack_hash_of,
    decode_shared_body,
)

if TYPE_CHECKING:
    from meshchat.engine import Engine, Output

__all__ = ["Receiving", "dm_conversation", "message_received"]


def dm_conversation(account_id: bytes) -> str:
    """The conversation name of direct messages with an account (whichever of its devices
    sent them; an account of one device is its node id)."""
    return "dm:" + account_id.hex()


def message_received(
    conversation: str,
    body: MessageBody,
    sender: PublicIdentity | None,
    sender_key: bytes,
    packet: Packet,
) -> MessageReceived:
    """The event for a text message that opened in ``packet``."""
    return MessageReceived(
        conversation=conversation,
        msg_id=body.msg_id,
        sender=sender,
        sender_key=sender_key,
        text=body.text,
        created_ms=packet.created_ms,
        packet_id=packet.packet_id,
        hops=packet.hops,
        sent_ms=body.sent_ms or packet.created_ms,
        parents=body.parents,
        loose=body.loose,
    )


class Receiving:
    """Open this node's messages and acks, for one engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def to_tag(self, packet: Packet) -> bool:
        dest = packet.destination
        return dest.kind is DestKind.NODE and dest.value in self.engine.direct.book.tags

    def _sealed_message(self, packet: Packet, now_ms: int, link: str | None) -> list[Output]:
        opened = self.engine.direct.open_message(packet, now_ms, link)
        if self.engine.account_glue.is_revoked(opened.sender.node_id):
            # a device revoked on a list held here: its new session is dropped, nothing acked
            self.engine.direct.drop_peer(opened.sender.node_id)
            reason = "from a device revoked on its account's list"
            return [*self.engine.flush(), MessageRejected(reason, packet.packet_id, None)]
        out: list[Output] = []
        if opened.control is not None:
            # A control part not kept, or whose blob was not applied, is not acked (nor are
            # retries of it): the sender hears "not applied" instead.
            try:
                outputs, take = self.engine._group_glue.on_control(
                    opened.sender, opened.control, now_ms, packet.packet_id
                )
                out.extend(outputs)
            except (PacketError, CryptoError) as exc:
                out.append(MessageRejected(f"group control: {exc}", packet.packet_id, None))
                take = False
            if not take:
                self.engine.direct.withhold(opened)
                return [*out, *self.engine.flush()]
        if opened.body is not None:
            sender = opened.sender
            conversation = dm_conversation(self.engine.directory.account_of(sender.node_id))
            out.append(
                message_received(conversation, opened.body, sender, sender.sign_public, packet)
            )
            out.extend(self.engine.carbons.received(sender, opened.body, now_ms))
        try:
            ack = self.engine.direct.build_ack(opened.sender, opened.token, now_ms, self.engine.ttl)
        except CryptoError as exc:
            return [
                *out,
                *self.engine.flush(),
                MessageRejected(str(exc), packet.packet_id, None),
            ]
        # The message, then the session state (received and acked), then the ack.
        out.extend(self.engine.flush())
        out.extend(self.engine.router.originate(ack, now_ms, link))
        return out

    def message(self, packet: Packet, now_ms: int, link: str | None = None) -> list[Output]:
        dest = packet.destination
        if self.to_tag(packet):
            if packet.suite is not Suite.RATCHET:
                return [MessageRejected("wrong suite for a sealed address", packet.packet_id, None)]
            return self._sealed_message(packet, now_ms, link)
        if dest.kind is DestKind.NODE:
            if packet.suite is not Suite.BOX:
                return [
                    MessageRejected(
                        "direct message not end-to-end encrypted", packet.packet_id, None
                    )
                ]
            sender_box, plaintext = self.engine._box.open(packet.payload)
            sender = PublicIdentity(packet.origin, sender_box)
            if self.engine.account_glue.is_revoked(sender.node_id):
                reason = "from a device revoked on its account's list"
                return [MessageRejected(reason, packet.packet_id, None)]
            body = MessageBody.decode(plaintext)  # a history body is never direct
            conversation = dm_conversation(self.engine.directory.account_of(sender.node_id))
            received = message_received(conversation, body, sender, packet.origin, packet)
            carbons = self.engine.carbons.received(sender, body, now_ms)
            ack = codec.build(
                self.engine.identity,
                PacketKind.ACK,
                Destination.node(sender.node_id),
                Suite.SIGNED,
                AckBody(
                    packet.packet_id, body.msg_id, self.engine.identity.public.box_public
                ).encode(),
                now_ms,
                self.engine.ttl,
            )
            return [received, *carbons, *self.engine.router.originate(ack, now_ms, link)]
        if dest.kind is DestKind.CHANNEL and self.engine.groups.is_group_address(dest.value):
            return self.engine._group_glue.on_message(packet, now_ms)
        if dest.kind is DestKind.CHANNEL:
            channel = self.engine.channel(dest.value)
            if channel is None:
                return []
            expected = Suite.CHANNEL if channel.private else Suite.SIGNED
            if packet.suite is not expected:
                return [MessageRejected("wrong suite for channel", packet.packet_id, None)]
            plaintext = channel.open(packet.payload) if channel.private else packet.payload
            shared = decode_shared_body(plaintext)
            if isinstance(shared, HistoryBody):
                return [HistoryReceived(channel.name, packet.origin, shared.heads, shared.wants)]
            return [message_received(channel.name, shared, None, packet.origin, packet)]
        return []

    def _sealed_ack(self, packet: Packet, now_ms: int, link: str | None) -> list[Output]:
        token = ack_hash_of(packet.payload)
        key = self.engine.direct.token_owner(token) if token is not None else None
        out: list[Output] = []
        try:
            self.engine.direct.open_ack(packet, now_ms, link)
        except CryptoError as exc:
            # The token alone proves delivery (only the recipient could find it); the sealed
            # part only moves the session on.
            out.append(MessageRejected(str(exc), packet.packet_id, None))
        out[:0] = self.engine.flush()
        item = self.engine.outbox.get(key) if key is not None else None
        if item is None or item.recipient is None:
            return out
        if item.is_control:
            self.engine.groups.control_acked(item.msg_id)
            self.engine.account_glue.acked(item.msg_id, now_ms)
            self.engine._end(item.msg_id)
            return [*out, *self.engine.flush()]
        return [*out, *self._copy_acked(item, packet.packet_id)]

    def _copy_acked(self, item: OutboxItem, packet_id: bytes) -> list[Output]:
        """One device acked its copy: the message is delivered; the other copies go on."""
        last = self.engine._end_copy(item)
        out: list[Output] = []
        if not item.transmitted:
            out.append(MessageSent(item.msg_id, packet_id, item.device))
        out.append(MessageDelivered(item.msg_id, item.device, last))
        return out

    def ack(self, packet: Packet, now_ms: int, link: str | None = None) -> list[Output]:
        if self.to_tag(packet):
            if packet.suite is not Suite.RATCHET:
                return [MessageRejected("wrong suite for a sealed address", packet.packet_id, None)]
            return self._sealed_ack(packet, now_ms, link)
        ack = AckBody.decode(packet.payload)
        copies = [c for c in self.engine.outbox.copies(ack.msg_id) if c.recipient is not None]
        if not copies:
            return []
        item = next((c for c in copies if c.recipient_key == packet.origin), None)
        if item is None:
            return [MessageRejected("ack not from the recipient", packet.packet_id, None)]
        return self._copy_acked(item, ack.acked_packet_id)
