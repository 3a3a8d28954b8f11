"""Rebroadcast strategies, pluggable so the router and the simulator can compare them.

When a node first receives a packet it should relay, the router asks the policy how long to
wait (``first_copy``); while it waits, every further copy heard from a neighbour is reported
(``copy_heard``) and the policy may cancel the relay. When the wait ends, ``choose_links``
picks which links to send on, from the links that have not already sent us a copy.

* :class:`ManagedFlood` (meshchat's default): farther receivers relay first, nearer ones wait
  and stand down once enough neighbours were heard relaying (see its docstring).
* :class:`NaiveFlood`: every node relays every packet once, at once.
* :class:`ContentionWindow`: Meshtastic's scheme: a random wait drawn from a window that is
  smaller for weaker signals, cancelled by the first relayed copy heard.
* :class:`RandomFanout`: bitchat's scheme as described for comparison: a short jitter, then
  send on about ``log2`` of the remaining links, chosen at random, never cancelled.
* :class:`NeighbourCoverage`: self-pruning with two-hop knowledge. Every node advertises its
  neighbours' short ids in a one-hop hello; a node relays only if some neighbour of its own is
  not yet covered ``k`` times by the neighbour lists of the nodes it heard sending the packet.

Policies hold no per-packet state (the router keeps it), so one instance may serve many
routers. Per-node knowledge that a policy reads (the :class:`NeighbourTable`) belongs to the
router, whose owner fills it from the hellos it receives.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Protocol

from meshchat.errors import UsageError
from meshchat.router.neighbours import SHORT_ID_SIZE, NeighbourTable
from meshchat.wire.packet import Packet

__all__ = [
    "POLICIES",
    "SHORT_ID_SIZE",
    "ContentionWindow",
    "FirstCopy",
    "ManagedFlood",
    "NaiveFlood",
    "NeighbourAware",
    "NeighbourCoverage",
    "NeighbourTable",
    "RandomFanout",
    "RelayPolicy",
]


@dataclass(frozen=True, slots=True)
class FirstCopy:
    """What a policy knows when a packet to relay is first received."""

    packet: Packet
    link: str | None
    rssi: float | None
    degree: int  # how many links the node has now
    rng: random.Random
    neighbours: NeighbourTable | None = field(default=None, compare=False)


class RelayPolicy(Protocol):
    @property
    def name(self) -> str:
        """A short name for tables and logs."""
        ...

    def first_copy(self, event: FirstCopy) -> int | None:
        """Milliseconds to wait before relaying, or None not to relay at all."""
        ...

    def uncovered_after(self, uncovered: float, rssi: float | None) -> float:
        """The share of our range left uncovered once a relay heard at ``rssi`` is added to
        the copies that left ``uncovered`` (1.0 before any); a policy that does not estimate
        coverage returns ``uncovered`` as it is."""
        ...

    def copy_heard(
        self, copies: int, rssi: float | None, degree: int, uncovered: float = 1.0
    ) -> bool:
        """A neighbour relayed the packet (``copies`` heard so far, ``degree`` links when the
        first copy came, ``uncovered`` what :meth:`uncovered_after` made of all the copies
        heard); True cancels our relay."""
        ...

    def choose_links(self, candidates: list[str], rng: random.Random) -> list[str]:
        """The links to relay on, from those that have not sent us a copy."""
        ...


def _outside_share(d: float) -> float:
    """Share of a disc of radius 1 outside another of radius 1 whose centre is ``d`` away.

    The lens two such discs share has area ``2 acos(d / 2) - (d / 2) sqrt(4 - d^2)``.
    """
    d = min(2.0, max(0.0, d))
    lens = 2.0 * math.acos(d / 2.0) - (d / 2.0) * math.sqrt(4.0 - d * d)
    return 1.0 - lens / math.pi


def _closeness(rssi: float, far_dbm: float, near_dbm: float) -> float:
    """0.0 at or below ``far_dbm`` (edge of range), 1.0 at or above ``near_dbm``."""
    return min(1.0, max(0.0, (rssi - far_dbm) / (near_dbm - far_dbm)))


@dataclass(frozen=True, slots=True)
class ManagedFlood:
    """meshchat's managed flooding: farther receivers relay first, nearer ones stand down.

    Why it works. A relay is worth sending if it reaches nodes that the copies already sent
    did not, and a receiver far from the sender covers the most new ground. The first copy's
    RSSI gives an estimated distance ``d`` (log-distance path loss, ``edge_dbm`` at the edge of
    range ``r``), and the wait is

        ``base_ms + window * (1 - (d / r)**2) + uniform(0, jitter_ms)``

    ``1 - (d / r)**2`` is the share of the sender's neighbours that are nearer to it than we
    are, so the farthest receivers go first and relays are spread evenly over the window. The
    nearer ones, still waiting, hear them and stand down once enough of their range was
    covered (see Density), or at once when a copy comes from a relay right beside them
    (within ``beside_ratio * r``: its coverage is nearly ours).

    The window is ``window_per_link_ms`` per link the node has (at most ``window_ms``): with
    ``k`` links, the ``j``-th farthest receiver waits about ``j * window_per_link_ms``, so the
    first relay of each hop (which sets the flood's latency) goes after a few milliseconds at
    any density, while the relays after it are spread at the same pace, whatever the density,
    for the waiting ones to hear. ``window_per_link_ms=None`` gives a fixed ``window_ms``.

    Density. A node with fewer than ``dense_degree`` links is in a sparse patch, where each
    relay covers more that nobody else will and where the flood's TTL runs out first: it
    waits ``base_ms`` and stands down after ``sparse_threshold`` copies. With more links,
    many neighbours relay quickly and the fastest path is close to the shortest: it waits
    ``dense_base_ms`` and stands down by area (adaptive suppression, after Tseng, Ni and
    Shih's adaptive broadcast schemes).

    Stand-down by area (nodes with ``dense_degree`` links or more). A relay heard at an
    estimated distance ``d`` has sent the packet over the part of our range that its own
    range overlaps (the lens of two discs of radius ``r``, ``d`` apart: 39% of ours at
    ``d = r``, 62% at ``0.6 r``). Taking the relays heard as independent, the share of our
    range that no copy reached is the product of the shares each leaves outside
    (:meth:`uncovered_after`; a distance estimated beyond ``r`` counts as ``r``, since the
    copy was heard). The node stands down once that share falls below
    ``dense_uncovered``: at 0.45, after two copies from anywhere in range or one from within
    about ``0.75 r``. This is the distance-based scheme of Ni, Tseng, Chen and Sheu (1999),
    with the additional coverage of every copy combined; it replaced a count of ``threshold``
    copies there (``dense_uncovered=None`` brings the count back), which sent 4-6% more
    for the same reach in crowds (docs/performance.md, "Broadcast latency"). In sparse
    patches the count stays: the same rule there lost reach at the TTL horizon.

    ``base_ms`` is an assessment delay of about one link latency (BLE: 8-53 ms per hop),
    paid by every relay, so that a node hears the other receivers of the same transmission
    that relay at once before it relays: their copies count against the threshold, and one
    that came a shorter way raises the TTL it relays with (the router takes the best TTL
    heard). Without it, the first relays of each hop relay before they hear anything and
    more of them relay; and where the TTL bounds the flood, a path of more hops through quick
    relays often beats a shorter one by so much that its TTL runs out before naive
    flooding's would. A base longer than the window's spread (250 ms before) makes arrival
    order follow hop count exactly, at 0.3-0.45 s per hop; ``bench/flood_latency.py``
    compares the two.

    Nodes with ``min_degree`` links or fewer relay at once: in a sparse patch each may be the
    only bridge. Without an RSSI the copy came over a point-to-point link (TCP on a LAN, a
    GATT connection, an internet link): every link is its own transmission, and a copy heard
    from one neighbour says nothing about the neighbours on the other links. So the node never
    stands down; it waits a short random ``window_without_rssi_ms`` (copies arriving meanwhile
    take their links off the list, which is where the savings come from) and sends on every
    link that has not already sent it the packet. Counter-based suppression here lost whole
    ends of long random meshes (``tests/test_engine.py``); ``threshold_without_rssi`` brings
    it back for experiments.

    The defaults were tuned with ``bench/flood.py`` (tables in docs/performance.md).
    """

    base_ms: int = 30
    dense_base_ms: int = 20
    window_ms: int = 300
    window_per_link_ms: float | None = 6.0
    jitter_ms: int = 10
    threshold: int = 2
    sparse_threshold: int = 3
    dense_degree: int = 25
    dense_uncovered: float | None = 0.45
    threshold_without_rssi: int | None = None
    window_without_rssi_ms: int = 40
    beside_ratio: float | None = 0.6
    min_degree: int = 2
    edge_dbm: float = -96.0  # RSSI at the edge of range (BLE at 0 dBm: about 30 m)
    path_loss_exponent: float = 2.5
    name: str = "managed"

    def _range_ratio(self, rssi: float) -> float:
        """Estimated ``d / r`` from an RSSI: ``rssi = edge - 10 n log10(d / r)``."""
        exponent = (self.edge_dbm - rssi) / (10.0 * self.path_loss_exponent)
        return float(10.0 ** min(exponent, 3.0))

    def first_copy(self, event: FirstCopy) -> int | None:
        if event.degree <= self.min_degree:
            return 0
        rng = event.rng
        jitter = rng.randint(0, self.jitter_ms) if self.jitter_ms > 0 else 0
        if event.rssi is None or not math.isfinite(event.rssi):
            return rng.randint(0, self.window_without_rssi_ms)
        ratio = self._range_ratio(event.rssi)
        nearer_share = max(0.0, 1.0 - ratio * ratio)
        return self.base(event.degree) + int(nearer_share * self.window(event.degree)) + jitter

    def base(self, degree: int) -> int:
        """The assessment delay every relay of a node with ``degree`` links waits."""
        return self.base_ms if degree < self.dense_degree else self.dense_base_ms

    def window(self, degree: int) -> float:
        """Milliseconds over which a node with ``degree`` links spreads its neighbours' relays."""
        if self.window_per_link_ms is None:
            return float(self.window_ms)
        return min(float(self.window_ms), self.window_per_link_ms * max(0, degree))

    def uncovered_after(self, uncovered: float, rssi: float | None) -> float:
        if rssi is None or not math.isfinite(rssi):
            return uncovered  # a point-to-point link: a copy says nothing about the others
        return uncovered * _outside_share(min(1.0, self._range_ratio(rssi)))

    def copy_heard(
        self, copies: int, rssi: float | None, degree: int, uncovered: float = 1.0
    ) -> bool:
        if rssi is None or not math.isfinite(rssi):
            return self.threshold_without_rssi is not None and copies >= self.threshold_without_rssi
        if self.beside_ratio is not None and self._range_ratio(rssi) <= self.beside_ratio:
            return True
        if degree >= self.dense_degree:
            if self.dense_uncovered is not None:
                return uncovered < self.dense_uncovered
            return copies >= self.threshold
        return copies >= self.sparse_threshold

    def choose_links(self, candidates: list[str], rng: random.Random) -> list[str]:
        return candidates


@dataclass(frozen=True, slots=True)
class NaiveFlood:
    """Relay every packet once, immediately, on every other link."""

    name: str = "naive"

    def first_copy(self, event: FirstCopy) -> int | None:
        return 0

    def uncovered_after(self, uncovered: float, rssi: float | None) -> float:
        return uncovered

    def copy_heard(
        self, copies: int, rssi: float | None, degree: int, uncovered: float = 1.0
    ) -> bool:
        return False

    def choose_links(self, candidates: list[str], rng: random.Random) -> list[str]:
        return candidates


@dataclass(frozen=True, slots=True)
class ContentionWindow:
    """Meshtastic-style flooding: weaker signal, smaller contention window, earlier relay.

    As in Meshtastic's firmware, the signal of the received copy is mapped linearly onto a
    contention-window exponent between ``cw_min`` and ``cw_max`` (weak -> ``cw_min``), and the
    wait is a random number of slots in ``[0, 2**cw)``. The relay is cancelled as soon as one
    other node is heard relaying the packet. RSSI stands in for LoRa's SNR; without one the
    widest window is used. A slot is the time within which a node hears another's
    transmission; on LoRa that is a few symbol times, here ``slot_ms`` = 10 ms stands for the
    spread of BLE's per-hop latency (the firmware's fixed offset for client nodes is left out:
    it delays every relay alike and changes no order).
    """

    slot_ms: int = 10
    cw_min: int = 2
    cw_max: int = 7
    weak_dbm: float = -96.0
    strong_dbm: float = -50.0
    name: str = "meshtastic"

    def first_copy(self, event: FirstCopy) -> int | None:
        if event.rssi is None or not math.isfinite(event.rssi):
            cw = self.cw_max
        else:
            span = self.cw_max - self.cw_min
            cw = self.cw_min + round(span * _closeness(event.rssi, self.weak_dbm, self.strong_dbm))
        return event.rng.randrange(2**cw) * self.slot_ms

    def uncovered_after(self, uncovered: float, rssi: float | None) -> float:
        return uncovered

    def copy_heard(
        self, copies: int, rssi: float | None, degree: int, uncovered: float = 1.0
    ) -> bool:
        return copies >= 1

    def choose_links(self, candidates: list[str], rng: random.Random) -> list[str]:
        return candidates


@dataclass(frozen=True, slots=True)
class RandomFanout:
    """bitchat-style gossip: after a short jitter, relay to about log2(links) random links.

    No suppression: every node that receives the packet relays it once, but only to a random
    few of its neighbours, so the medium carries fewer frames per relay (on a connection-based
    medium such as GATT each link is a separate send) at the price of reach.
    """

    min_jitter_ms: int = 10
    max_jitter_ms: int = 100
    name: str = "bitchat"

    def first_copy(self, event: FirstCopy) -> int | None:
        return event.rng.randint(self.min_jitter_ms, self.max_jitter_ms)

    def uncovered_after(self, uncovered: float, rssi: float | None) -> float:
        return uncovered

    def copy_heard(
        self, copies: int, rssi: float | None, degree: int, uncovered: float = 1.0
    ) -> bool:
        return False

    def choose_links(self, candidates: list[str], rng: random.Random) -> list[str]:
        if len(candidates) <= 2:
            return candidates
        fanout = max(1, math.ceil(math.log2(len(candidates))))
        return rng.sample(candidates, fanout)


class NeighbourAware:
    """Marker base of policies that decide, when their wait ends, from the neighbour table.

    For such a policy the router calls :meth:`relay_links` instead of ``choose_links``, with
    the links that sent it a copy of the packet so far and the TTL each copy carried, and its
    neighbour table.
    """

    __slots__ = ()

    def relay_links(
        self,
        heard: dict[str, int],
        ttl_in: int,
        candidates: list[str],
        table: NeighbourTable,
        rng: random.Random,
    ) -> list[str]:
        """The links to relay on, or an empty list to stand down.

        ``heard`` maps each link that sent us a copy (the first sender included) to the best
        TTL its copies carried; ``ttl_in`` is the best TTL of any copy (our relay's, plus one).
        """
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class NeighbourCoverage(NeighbourAware):
    """Self-pruning by neighbour coverage: relay only for neighbours nobody else covers.

    Why it works. Every node advertises its neighbours' short ids in a one-hop hello, so each
    node knows its neighbours and theirs (two hops). A copy heard from neighbour ``w`` means
    ``w`` transmitted, so every neighbour of ``w`` was sent the packet. When its wait ends a
    node looks at each of its own neighbours that has not sent it a copy:

    * *covered*: at least ``k`` of the transmissions heard came from nodes that list it;
    * *delegated*: a neighbour of ours that outranks us (advertises more neighbours; ties by
      short id) lists it and is itself covered. That node will relay for it or leave it to
      one that outranks it in turn; the chain ends at a node that relays, so under no loss
      nothing is lost (Wu and Dai's coverage condition, with one intermediate node;
      ``chain_hops`` allows longer chains of outranking neighbours). Each such delegate
      counts as one chance, like a cover: a neighbour needs ``k`` covers and delegates in
      all.

    If every neighbour is covered or delegated, the node stands down. A neighbour whose hello
    was never heard is skipped (a new link triggers a hello within about a second); a sender
    whose list is unknown covers nothing. Without any hello heard the node relays.

    TTL. A copy that reaches a neighbour through more hops leaves it less TTL, and where the
    TTL bounds the flood that costs reach. A cover counts only if it gives the neighbour at
    least our own relay's TTL less ``ttl_slack``; through a delegate, one hop more, less
    ``delegate_slack``. The router reports the TTL of every copy heard.

    Loss. ``k`` covers: a covered neighbour missed one transmission with probability ``p``
    and all ``k`` with ``p**k``. The node estimates ``p`` from the gaps in its neighbours'
    hello sequence numbers and asks for ``k = ceil(log(miss) / log(p))`` (between ``k_min``
    and ``k_max``): 1 without loss and up to about 12%, 2 up to about 35%.

    The wait orders relays by how much they add: ``base_ms + window_ms * (1 - u) +
    uniform(0, jitter_ms)``, where ``u`` is the share of our neighbours that the first
    sender's list does not cover; ``base_ms`` keeps arrival order following hop count (see
    :class:`ManagedFlood`).

    ``multipoint=True, delegate=False`` gives OLSR's multipoint-relay flooding instead (relay
    only if the first sender chose us as one of its relays, announced in its hello), for
    comparison. The two do not combine: a delegate may have declined as a non-relay.
    """

    base_ms: int = 250
    window_ms: int = 300
    jitter_ms: int = 30
    k_min: int = 1
    k_max: int = 4
    miss: float = 0.12
    multipoint: bool = False
    delegate: bool = True
    chain_hops: int = 0
    ttl_slack: int = 1
    delegate_slack: int = 1
    name: str = "coverage"

    def __post_init__(self) -> None:
        if self.multipoint and self.delegate:
            raise UsageError("multipoint relays and delegation do not combine")
        if not 0.0 < self.miss < 1.0 or not 1 <= self.k_min <= self.k_max:
            raise UsageError("0 < miss < 1 and 1 <= k_min <= k_max")

    def first_copy(self, event: FirstCopy) -> int | None:
        rng = event.rng
        jitter = rng.randint(0, self.jitter_ms) if self.jitter_ms > 0 else 0
        table = event.neighbours
        share = 1.0
        if (
            self.multipoint
            and table is not None
            and event.link in table.ids
            and event.link not in table.selectors
        ):
            return None  # the sender chose other relays for the neighbours we could reach
        if table is not None and table.ids and event.link is not None:
            covered = table.lists.get(event.link, frozenset())
            sender = table.ids.get(event.link)
            mine = [x for x in table.ids.values() if x != sender]
            if mine:
                share = sum(1 for x in mine if x not in covered) / len(mine)
        return self.base_ms + int((1.0 - share) * self.window_ms) + jitter

    def uncovered_after(self, uncovered: float, rssi: float | None) -> float:
        return uncovered

    def copy_heard(
        self, copies: int, rssi: float | None, degree: int, uncovered: float = 1.0
    ) -> bool:
        return False

    def choose_links(self, candidates: list[str], rng: random.Random) -> list[str]:
        return candidates

    def covers_needed(self, loss: float) -> int:
        """``k`` for an estimated loss rate: enough covers that a neighbour misses all rarely."""
        if loss <= 0.0:
            return self.k_min
        if loss >= 1.0:
            return self.k_max
        k = math.ceil(math.log(self.miss) / math.log(loss))
        return max(self.k_min, min(self.k_max, k))

    def relay_links(
        self,
        heard: dict[str, int],
        ttl_in: int,
        candidates: list[str],
        table: NeighbourTable,
        rng: random.Random,
    ) -> list[str]:
        if not candidates:
            return []
        ids, lists = table.ids, table.lists
        if not lists:
            return candidates  # no hellos heard yet: nothing to prune with
        k = self.covers_needed(table.loss_estimate())
        # TTL each node has (or will get) from the copies heard, counting only the k best
        # copies: level[y] = the k-th highest TTL among heard senders that list y.
        ttls: dict[bytes, list[int]] = {}
        for link, ttl in heard.items():
            for y in lists.get(link, ()):
                ttls.setdefault(y, []).append(ttl)
        level: dict[bytes, int] = {}
        for y, got in ttls.items():
            if len(got) >= k:
                got.sort(reverse=True)
                level[y] = got[k - 1]
        # Our relay would give each neighbour ttl_in - 1; a neighbour is covered when the
        # copies heard give it at least that (less ``ttl_slack``), so pruning never shortens
        # how far the flood goes.
        enough = ttl_in - 1 - self.ttl_slack
        uncovered = []
        for link in candidates:
            x = ids.get(link)
            if x is None:
                continue  # no hello from it yet; its own hello will follow within a trigger
            if level.get(x, -1) < enough:
                uncovered.append(x)
        if not uncovered:
            return []
        if not self.delegate:
            return candidates
        # Neighbours that outrank us (advertise more neighbours; ties by short id) and will
        # get the packet: each relays for its uncovered neighbours or leaves them to one that
        # outranks it in turn, so whatever they reach in time needs nothing from us. A
        # delegate with TTL t gives its neighbours t - 1; through ``chain_hops`` further
        # outranking neighbours the TTL drops by one per hop.
        mine = (len(heard) + len(candidates), table.own_id)
        higher = {link: its for link, its in lists.items() if (len(its), ids[link]) > mine}
        reach = {link: level[ids[link]] for link in higher if ids[link] in level}
        frontier = list(reach)
        for _ in range(self.chain_hops):
            step: list[str] = []
            for known in frontier:
                its, onward = higher[known], reach[known] - 1
                for link in higher:
                    if ids[link] in its and onward > reach.get(link, -1):
                        reach[link] = onward
                        step.append(link)
            frontier = step
        # Each delegate is one more chance for x, like a cover: x needs k of them in all.
        enough_via = ttl_in - 1 - self.delegate_slack
        chances: dict[bytes, int] = {}
        for link, ttl in reach.items():
            if ttl - 1 >= enough_via:
                for y in higher[link]:
                    chances[y] = chances.get(y, 0) + 1
        for x in uncovered:
            direct = sum(1 for t in ttls.get(x, ()) if t >= enough)
            if direct + chances.get(x, 0) < k:
                return candidates
        return []


#: The strategies compared by the simulator and ``bench/flood.py``, by name.
POLICIES: dict[str, RelayPolicy] = {
    p.name: p
    for p in (
        NaiveFlood(),
        ManagedFlood(),
        ContentionWindow(),
        RandomFanout(),
        NeighbourCoverage(),
    )
}
