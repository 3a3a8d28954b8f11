"""The outbox: this node's own messages until they are delivered, sent, or expire.

A direct message stays until the recipient's end-to-end ack arrives; it is retried with
exponential backoff (with jitter, capped) and offered again at once whenever a new neighbour
appears. A channel message has no ack; it stays until it has been transmitted on at least one
link. Items past their expiry are dropped and reported as failed. Time only comes from the
``now_ms`` arguments; jitter from the caller's ``rng``.

A direct message to an account of several devices is one item per device (a *copy*), all with
the same ``msg_id`` and body: items are keyed by :attr:`OutboxItem.key` (the message id and
the recipient device's node id), and :meth:`Outbox.copies` finds every copy of a message. Each
copy has its own attempts, backoff and expiry.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from meshchat.identity import PublicIdentity
from meshchat.wire.packet import Destination

__all__ = ["Outbox", "OutboxItem", "backoff_ms"]

RETRY_BASE_MS = 3_000
RETRY_CAP_MS = 300_000


def backoff_ms(attempts: int, rng: random.Random) -> int:
    """Delay before the next try after ``attempts`` tries: doubling, capped, +-25% jitter."""
    base = min(RETRY_CAP_MS, RETRY_BASE_MS * (2 ** max(0, min(attempts - 1, 20))))
    return int(base * rng.uniform(0.75, 1.25))


@dataclass(slots=True)
class OutboxItem:
    """One message waiting to be sent, acknowledged or expired."""

    msg_id: bytes
    destination: Destination
    text: str
    created_ms: int
    expires_ms: int
    #: the recipient of a direct message (None for a channel message)
    recipient: PublicIdentity | None = None
    attempts: int = 0
    next_try_ms: int = 0
    transmitted: bool = False
    packet_ids: set[bytes] = field(default_factory=set)
    #: a control part (group keys) to send instead of text, over a sealed session only
    body: bytes | None = None
    #: the group of a group message (its destination is the group's current address)
    group_id: bytes | None = None
    #: what the message body carries besides its text, the same in every retry: the
    #: sender's time (0: ``created_ms``) and the messages it follows (blocking and loose)
    sent_ms: int = 0
    parents: tuple[bytes, ...] = ()
    loose: tuple[bytes, ...] = ()
    #: when it was last handed to the router (None: never)
    last_try_ms: int | None = None

    @property
    def key(self) -> bytes:
        """What identifies this copy: the message id, then the recipient device's node id
        (nothing more for a channel or group message, which has one copy)."""
        if self.recipient is None:
            return self.msg_id
        return self.msg_id + self.recipient.node_id

    @property
    def device(self) -> bytes:
        """The node id of the device this copy goes to (b"" for a channel or group)."""
        return b"" if self.recipient is None else self.recipient.node_id

    @property
    def recipient_key(self) -> bytes:
        """The recipient device's signing key (b"" for a channel or group)."""
        return b"" if self.recipient is None else self.recipient.sign_public

    @property
    def needs_ack(self) -> bool:
        return self.recipient is not None

    @property
    def is_control(self) -> bool:
        return self.body is not None


class Outbox:
    """The copies in flight, indexed by :attr:`OutboxItem.key`, by message id and by the
    packet ids that carried them."""

    __slots__ = ("_by_msg", "_by_packet", "_items")

    def __init__(self) -> None:
        self._items: dict[bytes, OutboxItem] = {}
        self._by_msg: dict[bytes, dict[bytes, None]] = {}
        self._by_packet: dict[bytes, bytes] = {}

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def get(self, key: bytes) -> OutboxItem | None:
        return self._items.get(key)

    def items(self) -> list[OutboxItem]:
        return list(self._items.values())

    def copies(self, msg_id: bytes) -> list[OutboxItem]:
        """Every copy of message ``msg_id`` still in flight (one per device)."""
        return [self._items[k] for k in self._by_msg.get(msg_id, ())]

    def add(self, item: OutboxItem) -> None:
        self.remove(item.key)
        self._items[item.key] = item
        self._by_msg.setdefault(item.msg_id, {})[item.key] = None

    def remove(self, key: bytes) -> OutboxItem | None:
        item = self._items.pop(key, None)
        if item is not None:
            for packet_id in item.packet_ids:
                self._by_packet.pop(packet_id, None)
            keys = self._by_msg.get(item.msg_id, {})
            keys.pop(key, None)
            if not keys:
                self._by_msg.pop(item.msg_id, None)
        return item

    def record_packet(self, item: OutboxItem, packet_id: bytes) -> None:
        item.packet_ids.add(packet_id)
        self._by_packet[packet_id] = item.key

    def due(self, now_ms: int) -> list[OutboxItem]:
        return [i for i in self._items.values() if i.next_try_ms <= now_ms < i.expires_ms]

    def expire(self, now_ms: int) -> list[OutboxItem]:
        """Remove and return the copies past their expiry."""
        expired = [i for i in self._items.values() if i.expires_ms <= now_ms]
        for item in expired:
            self.remove(item.key)
        return expired

    def wake(self, now_ms: int) -> None:
        """A new neighbour appeared: everything waiting is due now."""
        for item in self._items.values():
            item.next_try_ms = min(item.next_try_ms, now_ms)

    def next_deadline(self) -> int | None:
        times = [min(i.next_try_ms, i.expires_ms) for i in self._items.values()]
        return min(times) if times else None
