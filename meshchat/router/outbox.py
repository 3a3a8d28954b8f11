"""The outbox: this node's own messages until they are delivered, sent, or expire.

A direct message stays until the recipient's end-to-end ack arrives; it is retried with
exponential backoff (with jitter, capped) and offered again at once whenever a new neighbour
appears. A channel message has no ack; it stays until it has been transmitted on at least one
link. Items past their expiry are dropped and reported as failed. Time only comes from the
``now_ms`` arguments; jitter from the caller's ``rng``.
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
    def needs_ack(self) -> bool:
        return self.recipient is not None

    @property
    def is_control(self) -> bool:
        return self.body is not None


class Outbox:
    """The items in flight, indexed by message id and by the packet ids that carried them."""

    __slots__ = ("_by_packet", "_items")

    def __init__(self) -> None:
        self._items: dict[bytes, OutboxItem] = {}
        self._by_packet: dict[bytes, bytes] = {}

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, msg_id: object) -> bool:
        return msg_id in self._items

    def get(self, msg_id: bytes) -> OutboxItem | None:
        return self._items.get(msg_id)

    def items(self) -> list[OutboxItem]:
        return list(self._items.values())

    def add(self, item: OutboxItem) -> None:
        self._items[item.msg_id] = item

    def remove(self, msg_id: bytes) -> OutboxItem | None:
        item = self._items.pop(msg_id, None)
        if item is not None:
            for packet_id in item.packet_ids:
                self._by_packet.pop(packet_id, None)
        return item

    def record_packet(self, item: OutboxItem, packet_id: bytes) -> None:
        item.packet_ids.add(packet_id)
        self._by_packet[packet_id] = item.msg_id

    def due(self, now_ms: int) -> list[OutboxItem]:
        return [i for i in self._items.values() if i.next_try_ms <= now_ms < i.expires_ms]

    def expire(self, now_ms: int) -> list[bytes]:
        expired = [m for m, i in self._items.items() if i.expires_ms <= now_ms]
        for msg_id in expired:
            self.remove(msg_id)
        return expired

    def wake(self, now_ms: int) -> None:
        """A new neighbour appeared: everything waiting is due now."""
        for item in self._items.values():
            item.next_try_ms = min(item.next_try_ms, now_ms)

    def next_deadline(self) -> int | None:
        times = [min(i.next_try_ms, i.expires_ms) for i in self._items.values()]
        return min(times) if times else None
