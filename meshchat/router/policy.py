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

    Why it works. A relay is worth sending if it reaches nodes the copies already sent did
    not, and a receiver far from the sender covers the most new ground. So the wait grows with
    the signal: the first copy's RSSI gives an estimated distance ``d`` (log-distance path loss,
    ``edge_dbm`` at the edge of range ``r``), and the wait is ``window_ms * (1 - (d / r)**2)``
    -- the share of the sender's neighbours that are farther away than we are, so relays are
    spread evenly over the window -- plus a random ``jitter_ms`` to break ties. The farthest
    receivers go first; the nearer ones, still waiting, hear them and stand down after
    ``threshold`` further copies (counter-based suppression). The window must be long
    against the per-hop latency (BLE: 8-53 ms) or waiting nodes cannot hear each other in time.
    Nodes with ``min_degree`` links or fewer relay at once: in a sparse patch each of them may
    be the only bridge. Without an RSSI (a LAN link) the wait is uniform over the window.

    The defaults come from ``bench/flood.py`` (see docs/performance.md): about 30% of naive
    flooding's transmissions at 20 neighbours, under 20% at 50, for 99.5% of its reach.
    """

    window_ms: int = 500
    jitter_ms: int = 50
    threshold: int = 2
    min_degree: int = 2
    edge_dbm: float = -96.0  # RSSI at the edge of range (BLE, 0 dBm, about 30 m)
    path_loss_exponent: float = 2.5
    name: str = "managed"

    def first_copy(self, event: FirstCopy) -> int | None:
        if event.degree <= self.min_degree:
            return 0
        rng = event.rng
        jitter = rng.randint(0, self.jitter_ms) if self.jitter_ms > 0 else 0
        if event.rssi is None or not math.isfinite(event.rssi):
            return rng.randint(0, self.window_ms) + jitter
        # d / r from the RSSI drop below the edge value: rssi = edge - 10 n log10(d / r)
        exponent = (self.edge_dbm - event.rssi) / (10.0 * self.path_loss_exponent)
        ratio = 10.0 ** min(exponent, 3.0)
        nearer_share = max(0.0, 1.0 - ratio * ratio)
        return int(nearer_share * self.window_ms) + jitter

    def copy_heard(self, copies: int, rssi: float | None) -> bool:
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
