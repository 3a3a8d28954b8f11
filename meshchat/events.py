"""What the engine tells the application: messages in, delivery progress, peers heard."""

from __future__ import annotations

from dataclasses import dataclass

from meshchat.identity import PublicIdentity

__all__ = [
    "AttemptMade",
    "Event",
    "MessageDelivered",
    "MessageExpired",
    "MessageReceived",
    "MessageRejected",
    "MessageSent",
    "PeerAnnounced",
]


@dataclass(frozen=True, slots=True)
class MessageReceived:
    """A message for this node or one of its channels, decrypted and authenticated.

    The owner must store it before executing the actions that follow it (the ack).
    """

    conversation: str
    msg_id: bytes
    sender: PublicIdentity | None  # None on a channel: only the signing key is known
    sender_key: bytes  # the Ed25519 key that signed the packet
    text: str
    created_ms: int
    packet_id: bytes
    hops: int


@dataclass(frozen=True, slots=True)
class MessageSent:
    """A packet carrying the message left on at least one link."""

    msg_id: bytes
    packet_id: bytes


@dataclass(frozen=True, slots=True)
class MessageDelivered:
    """The recipient's end-to-end ack for a direct message arrived."""

    msg_id: bytes


@dataclass(frozen=True, slots=True)
class MessageExpired:
    msg_id: bytes


@dataclass(frozen=True, slots=True)
class AttemptMade:
    """A retry was scheduled; the owner persists it so a restart keeps the backoff."""

    msg_id: bytes
    attempts: int
    next_try_ms: int


@dataclass(frozen=True, slots=True)
class MessageRejected:
    """A packet for us that did not open or parse. Logged locally; nothing goes on the wire."""

    reason: str
    packet_id: bytes
    link: str | None


@dataclass(frozen=True, slots=True)
class PeerAnnounced:
    identity: PublicIdentity
    name: str
    hops: int


Event = (
    MessageReceived
    | MessageSent
    | MessageDelivered
    | MessageExpired
    | AttemptMade
    | MessageRejected
    | PeerAnnounced
)
