"""The relay outbox: publishes waiting for the broker, kept while it is unreachable.

An item leaves the outbox only when the broker acknowledged it (QoS 1 PUBACK). Items being
published are *in flight*; when the connection drops they go back to the front of the queue
and are published again after the reconnect (a receiver drops the duplicate by packet id).
The outbox is bounded: beyond ``limit`` items the oldest waiting one is dropped and counted,
and an item whose expiry has passed is dropped when it would be sent. Frames queued one after
the other for the same topic, with close expiries, are taken together (:meth:`Outbox.take_run`)
and published as one envelope. Pure: no asyncio.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

__all__ = ["Outbox", "Publish"]

#: frames share an envelope only if their expiries are this close (the envelope takes the
#: earliest, so none is kept by the broker much less than its own lifetime)
_EXPIRY_SLACK_S = 60


@dataclass(eq=False, slots=True)
class Publish:
    """One frame (or a ready envelope, ``payload``) for one topic."""

    topic: str
    payload: bytes
    #: wall-clock second after which nobody would accept it
    expires_s: int
    packet_id: bytes = field(default=b"")
    #: the frame, sealed when it is published (with its neighbours for the same topic)
    frame: bytes = b""
    #: the topic's envelope key
    key: bytes = b""


class Outbox:
    """Waiting and in-flight publishes."""

    __slots__ = ("_inflight", "_waiting", "dropped", "expired", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._waiting: deque[Publish] = deque()
        # insertion-ordered, so a requeue keeps the order items were taken in
        self._inflight: dict[Publish, None] = {}
        self.dropped = 0
        self.expired = 0

    def __len__(self) -> int:
        return len(self._waiting) + len(self._inflight)

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def add(self, item: Publish) -> None:
        self._waiting.append(item)
        while len(self) > self.limit and self._waiting:
            self._waiting.popleft()
            self.dropped += 1

    def take(self, now_s: float) -> Publish | None:
        """The next item to publish (now in flight), skipping expired ones; None if empty."""
        while self._waiting:
            item = self._waiting.popleft()
            if item.expires_s <= now_s:
                self.expired += 1
                continue
            self._inflight[item] = None
            return item
        return None

    def take_run(self, now_s: float, most: int, budget: int) -> list[Publish]:
        """The next item and the unexpired frame items right behind it for the same topic
        (at most ``most`` items, ``budget`` frame bytes), all now in flight."""
        first = self.take(now_s)
        if first is None:
            return []
        run = [first]
        size = len(first.frame)
        while first.frame and self._waiting and len(run) < most:
            item = self._waiting[0]
            if (
                item.topic != first.topic
                or not item.frame
                or size + len(item.frame) > budget
                or abs(item.expires_s - first.expires_s) > _EXPIRY_SLACK_S
            ):
                break
            self._waiting.popleft()
            if item.expires_s <= now_s:
                self.expired += 1
                continue
            self._inflight[item] = None
            run.append(item)
            size += len(item.frame)
        return run

    def done(self, item: Publish) -> None:
        """The broker acknowledged ``item``."""
        self._inflight.pop(item, None)

    def retry(self, item: Publish) -> None:
        """Publishing ``item`` failed: it goes back to the front of the queue."""
        if item in self._inflight:
            del self._inflight[item]
            self._waiting.appendleft(item)

    def requeue_inflight(self) -> int:
        """The connection dropped: put every in-flight item back in front, oldest first."""
        items = list(self._inflight)
        self._inflight.clear()
        self._waiting.extendleft(reversed(items))
        return len(items)
