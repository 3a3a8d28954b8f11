"""Packets carried for others (store-and-forward), bounded so strangers cannot evict them.

Theory of operation. A relay keeps a copy of every direct message for another node (and of
private group messages) until it is acknowledged or expires, and offers the copies to each new
neighbour. Storage is bounded three ways, each checked before a packet is kept:

==================  =========================  ============================================
bound               default                    when reached, the victim is
==================  =========================  ============================================
per destination     ``max_per_destination``    that destination's lowest-ranked, oldest
per origin link     ``max_per_link``           that link's lowest-ranked, oldest
overall             ``max_carried``            the lowest-ranked, oldest of the link that
                                               holds the most
==================  =========================  ============================================

A packet's *rank* is read when a victim is chosen, so it follows what the node knows now:

* 2 -- its origin (signing key) is one of this node's contacts, or this node itself;
* 1 -- its destination is a contact, one of this node's own addresses or channels, or a
  node that proved it exists by acknowledging a packet (an ack signed by that recipient, or a
  sealed ack whose token only the recipient could know): a conversation acked later;
* 0 -- anything else: strangers writing to made-up node ids.

A victim is never of a higher rank than the packet that would replace it; if every candidate
outranks the newcomer, the newcomer is simply not carried (it is still relayed). So junk from
strangers only ever displaces other junk, and junk from one link only that link's own: a
flood from one neighbour fills at most ``max_per_link`` slots. "Oldest" means the order of
arrival here, not the packet's own (sender-chosen) creation time; expiry is computed from the
creation time clamped to the present, so a packet dated in the future is not kept longer.
Frames without a link (internet sources, or reloaded after a restart) share one pseudo-link
each. A new neighbour is offered the packets addressed to it first, then the origin links'
packets in turns (so one link's junk cannot crowd the others out of the re-offer batch).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from meshchat.errors import UsageError

__all__ = ["INTERNET_LINK", "RESTORED_LINK", "CarriedEntry", "CarriedSet"]

#: the pseudo-link of packets reloaded from the store after a restart
RESTORED_LINK = "(restored)"
#: the pseudo-link of packets that came from a non-link (internet) source
INTERNET_LINK = "(internet)"
#: most destinations remembered as having acknowledged something (oldest forgotten first)
MAX_PROVEN = 4096


@dataclass(slots=True)
class CarriedEntry:
    frame: bytes
    expires_ms: int
    recipient: bytes
    origin: bytes
    link: str
    ack_hash: bytes | None = None  # sealed messages: the hash of their ack token


class CarriedSet:
    """The carried packets, indexed by packet id, origin link and destination."""

    __slots__ = (
        "_by_dest",
        "_by_link",
        "_entries",
        "_rank_of",
        "max_carried",
        "max_per_destination",
        "max_per_link",
        "proven",
    )

    def __init__(
        self,
        max_carried: int,
        max_per_link: int,
        max_per_destination: int,
        rank_of: Callable[[CarriedEntry], int],
    ) -> None:
        if min(max_carried, max_per_link, max_per_destination) < 1:
            raise UsageError("carried-packet bounds must be at least 1")
        self.max_carried = max_carried
        self.max_per_link = max_per_link
        self.max_per_destination = max_per_destination
        self._rank_of = rank_of
        self._entries: dict[bytes, CarriedEntry] = {}
        self._by_link: dict[str, dict[bytes, None]] = {}
        self._by_dest: dict[bytes, dict[bytes, None]] = {}
        #: destinations that acknowledged a packet (insertion order is recency order)
        self.proven: dict[bytes, None] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, packet_id: object) -> bool:
        return packet_id in self._entries

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._entries)

    def get(self, packet_id: bytes) -> CarriedEntry | None:
        return self._entries.get(packet_id)

    def items(self) -> list[tuple[bytes, CarriedEntry]]:
        return list(self._entries.items())

    def values(self) -> list[CarriedEntry]:
        return list(self._entries.values())

    def rank(self, entry: CarriedEntry) -> int:
        return self._rank_of(entry)

    def prove(self, destination: bytes) -> None:
        """``destination`` acknowledged a packet: it is a real node, in a live conversation."""
        proven = self.proven
        proven.pop(destination, None)
        proven[destination] = None
        if len(proven) > MAX_PROVEN:
            del proven[next(iter(proven))]

    def make_room(self, entry: CarriedEntry) -> tuple[list[bytes], bool]:
        """What must go for ``entry`` to be kept: ``(victims, whether to keep it)``.

        The caller removes the victims (and keeps ``entry``) only when the answer is yes.
        """
        rank = self._rank_of(entry)
        victims: list[bytes] = []
        pools = [(self._by_dest.get(entry.recipient), self.max_per_destination)]
        if entry.link != RESTORED_LINK:  # what was kept before a restart was within bounds
            pools.append((self._by_link.get(entry.link), self.max_per_link))
        # No entry of the destination's pool ranks below what its destination gives (a
        # packet's rank is that, or 2 for its origin): the pool's floor. Its scan stops at the
        # first entry at the floor (the oldest of the lowest rank), not at the last entry.
        floor = self._rank_of(CarriedEntry(b"", 0, entry.recipient, b"", ""))
        floors = [floor, 0]
        for (pool, limit), pool_floor in zip(pools, floors, strict=False):
            if pool is not None and len(pool) >= limit:
                victim = self._lowest(pool, rank, set(victims), pool_floor)
                if victim is None:
                    return [], False
                victims.append(victim)
        if len(self._entries) - len(victims) >= self.max_carried:
            victim = self._global_victim(rank, set(victims))
            if victim is None:
                return [], False
            victims.append(victim)
        return victims, True

    def _lowest(
        self, pool: dict[bytes, None], rank: int, skip: set[bytes], floor: int = 0
    ) -> bytes | None:
        """The oldest entry of the lowest rank in ``pool``, if that rank is at most ``rank``.
        No entry of ``pool`` ranks below ``floor``."""
        best: bytes | None = None
        best_rank = rank + 1
        for packet_id in pool:
            if packet_id in skip:
                continue
            r = self._rank_of(self._entries[packet_id])
            if r < best_rank:
                best, best_rank = packet_id, r
                if r <= floor:
                    break
        return best

    def _global_victim(self, rank: int, skip: set[bytes]) -> bytes | None:
        for link in sorted(self._by_link, key=lambda k: len(self._by_link[k]), reverse=True):
            victim = self._lowest(self._by_link[link], rank, skip)
            if victim is not None:
                return victim
        return None

    def add(self, packet_id: bytes, entry: CarriedEntry) -> None:
        self.remove(packet_id)
        self._entries[packet_id] = entry
        self._by_link.setdefault(entry.link, {})[packet_id] = None
        self._by_dest.setdefault(entry.recipient, {})[packet_id] = None

    def remove(self, packet_id: bytes) -> CarriedEntry | None:
        entry = self._entries.pop(packet_id, None)
        if entry is None:
            return None
        by_link = self._by_link.get(entry.link)
        if by_link is not None:
            by_link.pop(packet_id, None)
            if not by_link:
                del self._by_link[entry.link]
        by_dest = self._by_dest.get(entry.recipient)
        if by_dest is not None:
            by_dest.pop(packet_id, None)
            if not by_dest:
                del self._by_dest[entry.recipient]
        return entry

    def offer_order(self, now_ms: int, peer: bytes | None = None) -> list[tuple[bytes, bytes]]:
        """``(packet id, frame)`` of live entries in the order to offer them to a neighbour.

        Packets for ``peer`` (the neighbour's node id, when known) come first; then the origin
        links take turns, each link's packets by rank, then latest expiry, so one link's junk
        cannot crowd the others out of a batch.
        """
        first: list[tuple[int, int, bytes, bytes]] = []
        lanes: dict[str, list[tuple[int, int, bytes, bytes]]] = {}
        for pid, e in self._entries.items():
            if e.expires_ms <= now_ms:
                continue
            item = (self._rank_of(e), e.expires_ms, pid, e.frame)
            if peer is not None and e.recipient == peer:
                first.append(item)
            else:
                lanes.setdefault(e.link, []).append(item)
        first.sort(reverse=True)
        ordered = [(pid, frame) for _, _, pid, frame in first]
        queues = [sorted(lane, reverse=True) for lane in lanes.values()]
        queues.sort(key=lambda q: q[0][:2], reverse=True)  # the best first packet's link first
        for turn in range(max((len(q) for q in queues), default=0)):
            ordered.extend((q[turn][2], q[turn][3]) for q in queues if turn < len(q))
        return ordered
