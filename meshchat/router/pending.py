"""A relay waiting for its turn: the frame, when it is due, and the copies heard meanwhile."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from meshchat.errors import PacketError
from meshchat.wire import codec

__all__ = ["Pending"]


@dataclass(slots=True)
class Pending:
    frame: bytes
    due_ms: int
    heard_from: set[str] = field(default_factory=set)
    copies: int = 0
    cancelled: bool = False
    ttl_in: int = 0  # the best TTL a copy carried as received (the first, or a later, better one)
    ttls: dict[str, int] | None = None  # neighbour-aware policies: best TTL heard per link
    degree: int = 0  # links when the first copy came (the policy's density)
    uncovered: float = 1.0  # share of our range no copy heard reached, as the policy estimates
    cause: str | None = None  # the link of the first copy: what the relay is charged to

    def raise_ttl(self, ttl: int, hops: int) -> bool:
        """A copy heard while we wait came by a shorter path: relay with its TTL, not ours.

        A packet's TTL comes from the first copy a node hears, and the first is not always the
        one that came the fewest hops (relays wait different times), so without this a flood
        ends short of the TTL horizon that naive flooding reaches. Only the copy's TTL and hop
        count are taken (they are not signed, so a sender could have put any value in its
        first copy too; :meth:`Packet.relayed` clamps ``ttl + hops``); the rest of the frame
        stays the one this node accepted and verified. Returns whether the TTL was raised.
        """
        try:
            ours = codec.parse(self.frame)
            better = replace(ours, ttl=ttl, hops=hops).relayed()
        except PacketError:
            return False
        if better.ttl <= ours.ttl:
            return False
        self.frame = codec.encode(better)
        self.ttl_in = ttl
        return True
