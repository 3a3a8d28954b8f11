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
    """meshchat's managed flooding: distance-ordered relays with counter-based suppression.

    Why it works. A relay is worth sending if it reaches nodes the copies already sent did
    not. A receiver far from the sender (weak RSSI) covers the most new ground, so the wait is
    ``window_ms`` scaled by how *strong* the first copy was, plus a random ``jitter_ms`` that
    breaks ties: the farthest receivers go first and the near ones, still waiting, hear them.
    A waiting node stands down after hearing ``threshold`` further copies: its neighbours have
    very likely been covered by then. Nodes with few links (``min_degree`` or fewer) always
    relay, because in a sparse patch each of them may be the only bridge. Without an RSSI
    (a LAN link) the wait is uniform over the whole window, which is plain counter-based
    suppression.
    """

    window_ms: int = 500
    jitter_ms: int = 50
    threshold: int = 2
    min_degree: int = 2
    far_dbm: float = -96.0  # about the edge of BLE range
    near_dbm: float = -70.0  # a few metres
    cancel_dbm: float | None = None  # a copy this strong (a relay right beside us) cancels
    per_link_ms: int = 0  # if set, the window is per_link_ms * degree, at most window_ms
    area: bool = False
    ttl_scale: int = 0
    name: str = "managed"

    def first_copy(self, event: FirstCopy) -> int | None:
        if event.degree <= self.min_degree:
            return 0
        rng = event.rng
        window = self.window_ms
        if self.per_link_ms:
            window = min(window, self.per_link_ms * event.degree)
        if self.ttl_scale:
            window = int(window * min(1.0, event.packet.ttl / self.ttl_scale))
        jitter = rng.randint(0, self.jitter_ms) if self.jitter_ms > 0 else 0
        if event.rssi is None:
            return rng.randint(0, window) + jitter if window > 0 else jitter
        if self.area:
            ratio = 10 ** ((self.far_dbm - event.rssi) / 25.0)  # d / range, exponent 2.5
            closeness = max(0.0, 1.0 - ratio * ratio)
        else:
            closeness = _closeness(event.rssi, self.far_dbm, self.near_dbm)
        return int(closeness * window) + jitter

    def copy_heard(self, copies: int, rssi: float | None) -> bool:
        if self.cancel_dbm is not None and rssi is not None and rssi >= self.cancel_dbm:
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
    widest window is used.
    """

    slot_ms: int = 5
    cw_min: int = 2
    cw_max: int = 7
    weak_dbm: float = -96.0
    strong_dbm: float = -50.0
    name: str = "meshtastic"

    def first_copy(self, event: FirstCopy) -> int | None:
        if event.rssi is None:
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
