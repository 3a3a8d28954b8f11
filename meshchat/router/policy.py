"""Rebroadcast strategies, pluggable so the router and the simulator can compare them.

When a node first receives a packet it should relay, the router asks the policy how long to
wait (``first_copy``); while it waits, every further copy heard from a neighbour is reported
(``copy_heard``) and the policy may cancel the relay. When the wait ends, ``choose_links``
picks which links to send on (by default every link that has not already sent us a copy).

* :class:`ManagedFlood` (meshchat's default): a random jitter, then relay unless ``threshold``
  neighbours were already heard relaying the packet (counter-based suppression).
* :class:`NaiveFlood`: every node relays every packet once, at once.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Protocol

from meshchat.wire.packet import Packet

__all__ = ["FirstCopy", "ManagedFlood", "NaiveFlood", "RelayPolicy"]


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


@dataclass(frozen=True, slots=True)
class ManagedFlood:
    """Jittered relay, suppressed after ``threshold`` copies were heard from neighbours."""

    jitter_ms: int = 40
    threshold: int = 3
    name: str = "managed"

    def first_copy(self, event: FirstCopy) -> int | None:
        return event.rng.randint(0, self.jitter_ms) if self.jitter_ms > 0 else 0

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
