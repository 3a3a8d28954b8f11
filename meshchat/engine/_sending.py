"""The engine's sending side: building this node's packets, trying and resending them.

:class:`Sending` belongs to one :class:`~meshchat.engine.Engine`, whose ``send_*`` methods
queue a message as an :class:`~meshchat.router.outbox.OutboxItem` that keeps everything its
body carries (text, sent time, parents), so every retry sends the same body in a new packet. A
direct message is retried until acked; a channel or group message until it left on one link.

Resending what a message depends on. A new direct message follows the earlier ones to the same
recipient; if those are still unacked, the recipient may hold the new one back waiting for
them. So sending it first retries the earlier ones at once (oldest first, so the recipient can
show them in order as they come), skipping any tried in the last :data:`RESEND_GAP_MS` (its
packet is probably still on the way) and at most :data:`MAX_RESEND` of them per new message
(an offline recipient with a long queue costs a bounded burst, not the whole queue).

History summaries (:meth:`Sending.history`) go once, in the group's or channel's encryption,
and only if there is a link: they are not queued, retried or acked (the next summary says the
same thing, fresher).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from meshchat.causal import MAX_WANTS
from meshchat.errors import CryptoError, UsageError
from meshchat.events import AttemptMade, MessageExpired, MessageSent
from meshchat.identity import PublicIdentity
from meshchat.router.actions import Drop, Transmit
from meshchat.router.outbox import OutboxItem, backoff_ms
from meshchat.wire import codec
from meshchat.wire.packet import Destination, Packet, PacketKind, Suite
from meshchat.wire.payloads import HistoryBody, MessageBody

if TYPE_CHECKING:
    from meshchat.engine import Engine, Output

__all__ = ["MAX_RESEND", "RESEND_GAP_MS", "Sending"]

#: An earlier message tried this recently is not resent with a new one.
RESEND_GAP_MS = 1_000
#: Most earlier messages one new direct message resends.
MAX_RESEND = MAX_WANTS


def message_body(item: OutboxItem) -> MessageBody:
    """The body an outbox item carries (the same in every retry)."""
    sent_ms = item.sent_ms or item.created_ms
    return MessageBody(item.msg_id, item.text, sent_ms, item.parents, item.loose)


class Sending:
    """Queue, build and try this node's messages, for one engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- resending, building and trying ---------------------------------------------------

    def resend_earlier(self, recipient: PublicIdentity, msg_id: bytes, now_ms: int) -> list[Output]:
        """Retry at once the unacked messages queued earlier for ``recipient``."""
        if not self.engine.router.links:
            return []
        earlier = sorted(
            (
                item
                for item in self.engine.outbox.items()
                if item.recipient is not None
                and item.recipient.node_id == recipient.node_id
                and not item.is_control
                and item.msg_id != msg_id
                and (item.last_try_ms is None or item.last_try_ms <= now_ms - RESEND_GAP_MS)
                and now_ms < item.expires_ms
            ),
            key=lambda item: (item.created_ms, item.msg_id),
        )
        out: list[Output] = []
        for item in earlier[:MAX_RESEND]:
            out.extend(self.attempt(item, now_ms))
        return out

    def build(self, item: OutboxItem, now_ms: int) -> Packet:
        engine = self.engine
        if item.group_id is not None:
            return engine.groups.seal(
                item.group_id, message_body(item).encode(), now_ms, engine.ttl
            )
        if item.body is not None:
            # Group keys travel only in sealed sessions: never in the older BOX suite.
            if item.recipient is None:
                raise UsageError("a control part has no recipient")
            return engine.direct.build_message(
                item.recipient, item.key, item.body, now_ms, engine.ttl
            )
        body = message_body(item).encode()
        if item.recipient is not None and engine.direct.can_seal(item.recipient):
            # Drafts and ack tokens are per copy: each device has its own session.
            return engine.direct.build_message(item.recipient, item.key, body, now_ms, engine.ttl)
        if item.recipient is not None:
            suite, payload = Suite.BOX, engine._box.seal(item.recipient.box_public, body)
            return self._signed(item.destination, suite, payload, now_ms)
        return self._to_channel(item.destination.value, body, now_ms)

    def _to_channel(self, channel_id: bytes, body: bytes, now_ms: int) -> Packet:
        channel = self.engine.channel(channel_id)
        if channel is None:
            raise UsageError("channel left before its message was sent")
        destination = Destination.channel(channel_id)
        if channel.private:
            return self._signed(destination, Suite.CHANNEL, channel.seal(body), now_ms)
        return self._signed(destination, Suite.SIGNED, body, now_ms)

    def _signed(
        self, destination: Destination, suite: Suite, payload: bytes, now_ms: int
    ) -> Packet:
        engine = self.engine
        return codec.build(
            engine.identity, PacketKind.MESSAGE, destination, suite, payload, now_ms, engine.ttl
        )

    def attempt(self, item: OutboxItem, now_ms: int) -> list[Output]:
        engine = self.engine
        if not engine.router.links:
            # Nobody to hand it to: wait for a neighbour (link_up wakes the outbox).
            item.next_try_ms = item.expires_ms
            return []
        if item.is_control:
            return engine._group_glue.attempt_control(item, now_ms)
        try:
            packet = self.build(item, now_ms)
        except (UsageError, CryptoError):
            last = engine._end_copy(item)
            return [*engine.flush(), MessageExpired(item.msg_id, item.device, last)]
        # The ratchet may have moved: store its state before the packet can leave.
        out: list[Output] = engine.flush()
        actions = engine.router.originate(packet, now_ms)
        out.extend(actions)
        item.last_try_ms = now_ms
        if any(isinstance(a, Transmit) for a in actions):
            engine.outbox.record_packet(item, packet.packet_id)
            if not item.transmitted:
                item.transmitted = True
                out.append(MessageSent(item.msg_id, packet.packet_id, item.device))
        item.attempts += 1
        if item.needs_ack:
            item.next_try_ms = now_ms + backoff_ms(item.attempts, engine.rng)
            out.append(AttemptMade(item.msg_id, item.attempts, item.next_try_ms, item.device))
        elif item.transmitted:
            engine._end_copy(item)
        return out

    # -- history summaries --------------------------------------------------------------

    def history(
        self,
        conversation_id: bytes,
        heads: Sequence[bytes],
        wants: Sequence[bytes],
        now_ms: int,
    ) -> list[Output]:
        """Send a history summary to a group or a joined channel once, if there is a link."""
        engine = self.engine
        body = HistoryBody(tuple(heads), tuple(wants)).encode()
        group = engine.groups.groups.get(conversation_id)
        if group is None and engine.channel(conversation_id) is None:
            raise UsageError("not a member of that group or channel")
        if group is not None and group.current is None:
            raise UsageError("not a member of that group")
        if not engine.router.links:
            return []
        if group is not None:
            packet = engine.groups.seal(conversation_id, body, now_ms, engine.ttl)
        else:
            packet = self._to_channel(conversation_id, body, now_ms)
        # A group's sender chain moved: its state is stored before the packet leaves.
        out = engine.flush()
        out.extend(a for a in engine.router.originate(packet, now_ms) if not isinstance(a, Drop))
        return out
