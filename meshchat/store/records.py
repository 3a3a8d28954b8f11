"""The records the message store hands out: frozen, slotted dataclasses and their enums.

These are plain values. The store builds them from rows and takes them as arguments; nothing in
them touches the database, so faces and the node can pass them around freely. Identifiers
(node ids, message ids, channel ids, packet ids) are raw ``bytes``; times are integer
milliseconds since the Unix epoch.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "CarriedPacket",
    "Channel",
    "Contact",
    "Conversation",
    "Delivery",
    "Message",
    "MessageState",
    "OutboxEntry",
    "SetAside",
    "Trust",
]


class Trust(StrEnum):
    """How far the user trusts that a contact's keys belong to the person named.

    Every contact starts ``UNVERIFIED``, whoever handed over the card (the person, or a third
    party sharing it). Only comparing the safety number (``meshchat verify``) makes it
    ``VERIFIED``. When the user accepts new keys for a person (a key change), the old contact is
    kept, ``COMPROMISED``, so its history stays readable and the change stays visible; nothing
    is sent to a compromised contact.
    """

    UNVERIFIED = "unverified"  #: added from a card, safety number not compared
    VERIFIED = "verified"  #: safety number compared out of band
    COMPROMISED = "compromised"  #: replaced by new keys, or marked unsafe by the user
    #: another device of the user's own account (on the user's signed device list): never
    #: shown as a stranger, never verified by hand
    OWN = "own"


class MessageState(StrEnum):
    """Where a message stands. Outgoing messages move forward only (see ``states.py``)."""

    QUEUED = "queued"  #: stored, waiting in the outbox for its first transmission
    SENT = "sent"  #: handed to at least one link; no acknowledgement yet
    DELIVERED = "delivered"  #: the recipient acknowledged it
    FAILED = "failed"  #: the outbox gave up (expired before an acknowledgement came)
    RECEIVED = "received"  #: an incoming message


@dataclass(frozen=True, slots=True)
class Contact:
    """A person the user added, with their device's public keys.

    ``card`` is the signed contact card (``mc1:...``) the contact was added from, kept so it
    can be shared on; empty for a contact added from bare keys. ``account_id`` is the account
    the device belongs to (the founding device's node id); a contact of one device (and every
    contact stored before accounts) is its own account, its node id (the default).
    """

    node_id: bytes
    sign_public: bytes
    box_public: bytes
    name: str
    trust: Trust
    added_ms: int
    card: str = ""
    account_id: bytes = b""

    def __post_init__(self) -> None:
        if not self.account_id:
            object.__setattr__(self, "account_id", self.node_id)


@dataclass(frozen=True, slots=True)
class Channel:
    """A joined channel. ``key`` is None for a public channel whose messages are only signed."""

    name: str
    channel_id: bytes
    key: bytes | None
    joined_ms: int


@dataclass(frozen=True, slots=True)
class Message:
    """One message in a conversation, outgoing or incoming.

    ``row_id`` is the order in which this store learnt of the message. ``updated_ms`` is when
    its state last changed: for an incoming message, the time it was received. ``created_ms``
    is the sender's clock when it wrote the message (its ``sent_ms``).

    The causal history (see :mod:`meshchat.causal`): ``parents`` are the messages it names
    that must be shown before it, ``loose`` those it names without waiting for them (files,
    voice). ``order_ms`` is where it sorts in its conversation (by ``(order_ms, msg_id)``), or
    None while it is held back waiting for a parent; ``late`` marks a message that claimed a
    time too far before what was already shown and was put at the end instead. ``missing``
    counts the blocking parents not shown here: what a held message waits for, or a shown
    message's gap.
    """

    row_id: int
    conversation: str
    msg_id: bytes
    outgoing: bool
    sender: bytes
    sender_name: str
    text: str
    created_ms: int
    state: MessageState
    updated_ms: int
    parents: tuple[bytes, ...] = ()
    loose: tuple[bytes, ...] = ()
    order_ms: int | None = None
    late: bool = False
    missing: int = 0

    @property
    def held(self) -> bool:
        """True while the message waits for a parent (not shown in the order yet)."""
        return self.order_ms is None


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """An outgoing message still to be delivered.

    ``destination`` is the recipient's node id for a direct message, or the channel id.
    ``parents`` and ``loose`` are the parents the message names, so a retry after a restart
    sends the same body.
    """

    msg_id: bytes
    conversation: str
    destination: bytes
    text: str
    created_ms: int
    attempts: int
    next_try_ms: int
    expires_ms: int
    parents: tuple[bytes, ...] = ()
    loose: tuple[bytes, ...] = ()


@dataclass(frozen=True, slots=True)
class Delivery:
    """One device's copy of an outgoing message."""

    msg_id: bytes
    device: bytes
    state: MessageState
    updated_ms: int
    attempts: int = 0
    next_try_ms: int = 0

    @property
    def pending(self) -> bool:
        return self.state in (MessageState.QUEUED, MessageState.SENT)


@dataclass(frozen=True, slots=True)
class CarriedPacket:
    """Another node's packet held for store-and-forward until it expires or is delivered."""

    packet_id: bytes
    frame: bytes
    destination: bytes
    expires_ms: int


@dataclass(frozen=True, slots=True)
class Conversation:
    """A summary line for the conversation list."""

    name: str
    last_ms: int
    unread: int
    last_text: str


@dataclass(frozen=True, slots=True)
class SetAside:
    """A stored state blob that could not be decoded, kept aside with the reason."""

    kind: str
    key: bytes
    blob: bytes
    reason: str
    set_ms: int
