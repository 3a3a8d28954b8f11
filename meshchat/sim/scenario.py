"""What a simulation run is: nodes, their radio, the broadcasts and the disturbances.

A :class:`Scenario` is plain, frozen data, so it can be printed next to a result and run again:
the same scenario (seed included) and the same policy give the same :class:`RunResult`.

Density is given as the mean number of neighbours a node would have away from the edges
(``degree``); the square's side follows from it: ``side = sqrt(n * pi * r**2 / degree)``.
Nodes near the edges have fewer neighbours, so the measured mean degree is a little lower;
results report the measured one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from meshchat.errors import UsageError
from meshchat.sim.medium import BLE, Medium

__all__ = ["DENSITIES", "Churn", "Mobility", "Partition", "Scenario"]

#: Named densities (mean neighbours within radio range) used by the benchmarks.
DENSITIES: dict[str, float] = {
    "sparse": 10.0,  # a village street, a hiking group spread out
    "town": 20.0,  # a busy shopping street
    "crowded": 50.0,  # a packed station hall
    "protest": 120.0,  # a protest square: everyone within a few metres of dozens of phones
}


@dataclass(frozen=True, slots=True)
class Churn:
    """Nodes switch off and on: exponential up and down times with these means."""

    mean_up_ms: float
    mean_down_ms: float

    def __post_init__(self) -> None:
        if self.mean_up_ms <= 0 or self.mean_down_ms <= 0:
            raise UsageError("churn means must be positive")


@dataclass(frozen=True, slots=True)
class Mobility:
    """Random-waypoint movement of a fraction of the nodes, applied every ``step_ms``."""

    speed_mps: float = 1.4  # walking pace
    fraction: float = 1.0
    step_ms: int = 1000

    def __post_init__(self) -> None:
        if self.speed_mps < 0 or not 0 <= self.fraction <= 1 or self.step_ms <= 0:
            raise UsageError("mobility: speed >= 0, 0 <= fraction <= 1, step > 0")


@dataclass(frozen=True, slots=True)
class Partition:
    """No link crosses the vertical line at ``x = split * side`` from ``start_ms`` to ``end_ms``."""

    start_ms: int
    end_ms: int
    split: float = 0.5

    def __post_init__(self) -> None:
        if not 0 <= self.start_ms < self.end_ms or not 0 < self.split < 1:
            raise UsageError("partition: 0 <= start < end and 0 < split < 1")


@dataclass(frozen=True, slots=True)
class Scenario:
    """One reproducible run: ``broadcasts`` floods from random live nodes, ``interval_ms`` apart."""

    n: int = 100
    degree: float = 20.0
    loss: float = 0.0  # independent per receiver and per transmission
    medium: Medium = BLE
    range_m: float | None = None  # default: the medium's
    broadcasts: int = 10
    interval_ms: int = 5000
    warmup_ms: int = 1000
    drain_ms: int = 10_000  # time left after the last broadcast for relays to finish
    ttl: int = 12
    payload_size: int = 100
    seed: int = 1
    verify_signatures: bool = False  # Ed25519 per receive is too slow for 10^6 receptions
    churn: Churn | None = None
    mobility: Mobility | None = None
    partitions: tuple[Partition, ...] = field(default_factory=tuple)
    #: neighbour-aware policies: one-hop hello period, delay of a hello after a link change,
    #: and how many hello periods the mesh ran before time zero
    hello_interval_ms: int = 30_000
    hello_trigger_ms: int = 1000
    hello_warmup_rounds: int = 4

    def __post_init__(self) -> None:
        if self.n < 2:
            raise UsageError("a mesh needs at least two nodes")
        if self.degree <= 0:
            raise UsageError("degree must be positive")
        if not 0 <= self.loss < 1:
            raise UsageError("loss must be in [0, 1)")
        if self.broadcasts < 0 or self.interval_ms <= 0:
            raise UsageError("broadcasts >= 0 and interval > 0")
        if self.range_m is not None and self.range_m <= 0:
            raise UsageError("range must be positive")
        if self.hello_interval_ms <= 0 or self.hello_trigger_ms < 0 or self.hello_warmup_rounds < 0:
            raise UsageError("hello interval > 0, trigger delay >= 0, warm-up rounds >= 0")

    @property
    def radio_range_m(self) -> float:
        return self.range_m if self.range_m is not None else self.medium.range_m

    @property
    def side_m(self) -> float:
        """Side of the square the nodes are placed in, from ``n`` and ``degree``."""
        r = self.radio_range_m
        return math.sqrt(self.n * math.pi * r * r / self.degree)

    @property
    def end_ms(self) -> int:
        return self.warmup_ms + max(0, self.broadcasts - 1) * self.interval_ms + self.drain_ms
