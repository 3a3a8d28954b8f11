"""What a run measured: per broadcast, then summed up.

Every figure is a plain number or a tuple of numbers, so two runs can be compared with ``==``
(the reproducibility test does exactly that).

* ``eligible`` -- nodes that were up when the broadcast started, the origin excluded;
* ``reachable`` -- of those, the ones connected to the origin over live links at that moment
  (what a perfect flood with no loss could reach, ignoring later movement);
* ``reached`` -- nodes whose router delivered the packet;
* ``transmissions`` -- radio transmissions (one per ``Transmit`` action, whatever the number of
  links it names: the medium is shared, one frame on the air is heard by all it is sent to);
* ``link_frames`` -- the sum over transmissions of the links named, i.e. what a medium with a
  separate send per link (GATT writes, TCP) would cost;
* ``hellos`` / ``hello_bytes`` -- one-hop hello transmissions (and their bytes) sent during
  the run, for policies that read neighbour lists; not part of any broadcast's count;
* ``hops`` / ``latencies_ms`` -- per reached node, the path length of the first copy and the
  time from origination to delivery.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["BroadcastResult", "RunResult", "percentile"]


def percentile(values: list[float] | tuple[float, ...], q: float) -> float:
    """The ``q``-th percentile (0-100) by the nearest-rank method; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q / 100.0 * len(ordered))))
    return float(ordered[rank - 1])


@dataclass(frozen=True, slots=True)
class BroadcastResult:
    """One flood from one origin."""

    origin: int
    start_ms: int
    eligible: int
    reachable: int
    reached: int
    transmissions: int
    link_frames: int
    hops: tuple[int, ...]
    latencies_ms: tuple[float, ...]

    @property
    def delivery(self) -> float:
        return self.reached / self.eligible if self.eligible else 1.0


@dataclass(frozen=True, slots=True)
class RunResult:
    """A whole run: the broadcasts plus router counters summed over all nodes."""

    policy: str
    n: int
    mean_degree: float
    broadcasts: tuple[BroadcastResult, ...]
    counters: tuple[tuple[str, int], ...]
    events: int
    hellos: int = 0
    hello_bytes: int = 0

    @property
    def delivery(self) -> float:
        """Delivered receptions over eligible ones, across all broadcasts."""
        eligible = sum(b.eligible for b in self.broadcasts)
        return sum(b.reached for b in self.broadcasts) / eligible if eligible else 1.0

    @property
    def reachable_delivery(self) -> float:
        """Delivered over reachable: how close the flood came to a perfect one."""
        reachable = sum(b.reachable for b in self.broadcasts)
        return sum(b.reached for b in self.broadcasts) / reachable if reachable else 1.0

    @property
    def reached(self) -> int:
        return sum(b.reached for b in self.broadcasts)

    @property
    def transmissions(self) -> int:
        return sum(b.transmissions for b in self.broadcasts)

    @property
    def tx_per_broadcast(self) -> float:
        return self.transmissions / len(self.broadcasts) if self.broadcasts else 0.0

    @property
    def frames_per_broadcast(self) -> float:
        frames = sum(b.link_frames for b in self.broadcasts)
        return frames / len(self.broadcasts) if self.broadcasts else 0.0

    def hops(self, q: float) -> float:
        return percentile([h for b in self.broadcasts for h in b.hops], q)

    def latency_ms(self, q: float) -> float:
        return percentile([t for b in self.broadcasts for t in b.latencies_ms], q)

    def counter(self, name: str) -> int:
        return dict(self.counters).get(name, 0)
