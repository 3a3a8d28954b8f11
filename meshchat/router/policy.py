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

Policies hold no per-packet state (the router keeps it), so one instance may serve many
routers.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Protocol

from meshchat.wire.packet import Packet

__all__ = [
    "POLICIES",
    "ContentionWindow",
    "FirstCopy",
    "ManagedFlood",
    "NaiveFlood",
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


class RelayPolicy(Protocol):
    @property
    def name(self) -> str:
        """A short name for tables and logs."""
        ...

    def first_copy(self, event: FirstCopy) -> int | None:
        """Milliseconds to wait before relaying, or None not to relay at all."""
        ...

    def copy_heard(self, copies: int, rssi: float | None) -> bool:
        """A neighbour relayed the packet (``copies`` heard so far); True cancels our relay."""
        ...

    def choose_links(self, candidates: list[str], rng: random.Random) -> list[str]:
        """The links to relay on, from those that have not sent us a copy."""
        ...


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

        ``base_ms + window_ms * (1 - (d / r)**2) + uniform(0, jitter_ms)``

    ``1 - (d / r)**2`` is the share of the sender's neighbours that are nearer to it than we
    are, so the farthest receivers go first and relays are spread evenly over the window. The
    nearer ones, still waiting, hear them and stand down after ``threshold`` further copies,
    or at once when a copy comes from a relay right beside them (within ``beside_ratio * r``:
    its coverage is nearly ours). The window must be long against the per-hop latency (BLE:
    8-53 ms) or waiting nodes cannot hear each other in time.

    ``base_ms`` keeps the flood hop-ordered: a packet's remaining TTL comes from the *first*
    copy a node hears, and without a common delay a path of more hops through far (quick)
    relays often beats a shorter one, so far from the origin the TTL runs out before naive
    flooding's would. A base delay larger than the window's spread makes arrival order follow
    hop count again. It costs latency (about 0.3-0.45 s per hop), not transmissions.

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

    base_ms: int = 250
    window_ms: int = 300
    jitter_ms: int = 30
    threshold: int = 2
    threshold_without_rssi: int | None = None
    window_without_rssi_ms: int = 40
    beside_ratio: float | None = 0.45
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
        return self.base_ms + int(nearer_share * self.window_ms) + jitter

    def copy_heard(self, copies: int, rssi: float | None) -> bool:
        if rssi is None or not math.isfinite(rssi):
            return self.threshold_without_rssi is not None and copies >= self.threshold_without_rssi
        if self.beside_ratio is not None and self._range_ratio(rssi) <= self.beside_ratio:
            return True
        return copies >= self.threshold

    def choose_links(self, candidates: list[str], rng: random.Random) -> list[str]:
        return candidates


@dataclass(frozen=True, slots=True)
class NaiveFlood:
    """Relay every packet once, immediately, on every other link."""

    name: str = "naive"

    def first_copy(self, event: FirstCopy) -> int | None:
        return 0

    def copy_heard(self, copies: int, rssi: float | None) -> bool:
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

    def copy_heard(self, copies: int, rssi: float | None) -> bool:
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

    def copy_heard(self, copies: int, rssi: float | None) -> bool:
        return False

    def choose_links(self, candidates: list[str], rng: random.Random) -> list[str]:
        if len(candidates) <= 2:
            return candidates
        fanout = max(1, math.ceil(math.log2(len(candidates))))
        return rng.sample(candidates, fanout)


#: The strategies compared by the simulator and ``bench/flood.py``, by name.
POLICIES: dict[str, RelayPolicy] = {
    p.name: p for p in (NaiveFlood(), ManagedFlood(), ContentionWindow(), RandomFanout())
}
