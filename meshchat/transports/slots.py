"""Which links and half-open connections a stream transport keeps when strangers crowd it.

Theory of operation. A node has room for a bounded number of links (``max_links``) and of
connections still in their handshake (``max_pending``). Anyone on the network can fill both:
handshakes are cheap and identities are free. So slots are not first come, first served;
each link has a *class*:

=========  ======================================================================  ========
class      the link's peer                                                          value
=========  ======================================================================  ========
CONTACT    a peer the node prefers (a contact; the node tells the transport)       2
ACTIVE     a peer that sent a useful frame (a new, valid packet) within             1
           ``active_window`` seconds
IDLE       anyone else: a stranger that has carried nothing useful lately          0
=========  ======================================================================  ========

*Admission when full.* A newcomer (its class is CONTACT or IDLE: it has carried nothing yet)
takes the slot of the weakest link if that link is of a lower class, or, for an IDLE
newcomer, if the weakest is IDLE too and has had ``grace`` seconds to prove useful. The
weakest is the lowest class, then the one useful (or up) least recently. Contacts are never
evicted; a newcomer that finds nobody weaker is refused.

*Idle sweep.* Every ``sweep_every`` seconds, while more than ``soft_links`` links are up, IDLE
links that have carried nothing useful for ``idle_timeout`` seconds are closed, so a crowd of
silent strangers does not sit in the table waiting to be evicted. Below that, an idle link
costs little and is kept (a quiet mesh is not an attack).

*Half-open connections.* At most ``max_pending_per_address`` per remote address and
``max_pending`` overall; a new connection beyond either bound evicts the oldest pending one of
its own address, or else of the address that holds the most. Each also has a handshake
deadline (the transport's). So one host, however fast it connects, holds only its own share,
and a connection from anyone else always gets a slot.

Everything here is pure: the transport passes in views of its links and the clock.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from enum import IntEnum

__all__ = [
    "LinkClass",
    "PendingView",
    "SlotPolicy",
    "SlotView",
]


class LinkClass(IntEnum):
    """How much a link is worth keeping; larger is better."""

    IDLE = 0
    ACTIVE = 1
    CONTACT = 2


@dataclass(frozen=True, slots=True)
class SlotView:
    """What the policy needs to know of one live link."""

    key: Hashable
    preferred: bool
    #: when the link came up (transport clock, seconds)
    since: float
    #: when it last carried a useful frame, None if never
    last_useful: float | None = None


@dataclass(frozen=True, slots=True)
class PendingView:
    """One connection still in its handshake."""

    key: Hashable
    address: str
    since: float


@dataclass(frozen=True, slots=True)
class SlotPolicy:
    """The bounds and the choices made with them (see the module's theory of operation)."""

    max_links: int = 128
    soft_links: int = 64
    max_pending: int = 64
    max_pending_per_address: int = 4
    grace: float = 10.0
    idle_timeout: float = 60.0
    active_window: float = 600.0
    #: how often the idle sweep runs
    sweep_every: float = 5.0

    def __post_init__(self) -> None:
        if not 0 < self.soft_links <= self.max_links:
            raise ValueError("need 0 < soft_links <= max_links")
        if not 0 < self.max_pending_per_address <= self.max_pending:
            raise ValueError("need 0 < max_pending_per_address <= max_pending")
        if min(self.grace, self.idle_timeout, self.active_window) < 0 or self.sweep_every <= 0:
            raise ValueError("durations must not be negative (sweep_every: positive)")

    def classify(self, link: SlotView, now: float) -> LinkClass:
        if link.preferred:
            return LinkClass.CONTACT
        if link.last_useful is not None and now - link.last_useful <= self.active_window:
            return LinkClass.ACTIVE
        return LinkClass.IDLE

    def _weakness(self, link: SlotView, now: float) -> tuple[int, float]:
        last = link.last_useful if link.last_useful is not None else link.since
        return int(self.classify(link, now)), last

    def victim(
        self, links: Sequence[SlotView], newcomer_preferred: bool, now: float
    ) -> Hashable | None:
        """The link to close so that a newcomer fits, or None if the newcomer must be refused.

        Only asked when the table is full (``len(links) >= max_links``).
        """
        if not links:
            return None
        weakest = min(links, key=lambda link: self._weakness(link, now))
        weak_class = self.classify(weakest, now)
        if newcomer_preferred:
            return weakest.key if weak_class < LinkClass.CONTACT else None
        if weak_class is LinkClass.IDLE and now - weakest.since >= self.grace:
            return weakest.key
        return None

    def idle(self, links: Sequence[SlotView], now: float) -> list[Hashable]:
        """Links the idle sweep closes now (oldest first), leaving ``soft_links`` up."""
        excess = len(links) - self.soft_links
        if excess <= 0:
            return []
        stale = [
            link
            for link in links
            if self.classify(link, now) is LinkClass.IDLE
            and now - (link.last_useful if link.last_useful is not None else link.since)
            >= self.idle_timeout
        ]
        stale.sort(key=lambda link: self._weakness(link, now))
        return [link.key for link in stale[:excess]]

    def pending_victim(self, pending: Sequence[PendingView], address: str) -> Hashable | None:
        """The pending connection to drop so that a new one from ``address`` fits, or None if
        there is room."""
        mine = [p for p in pending if p.address == address]
        if len(mine) >= self.max_pending_per_address:
            return min(mine, key=lambda p: p.since).key
        if len(pending) < self.max_pending:
            return None
        counts: dict[str, int] = {}
        for p in pending:
            counts[p.address] = counts.get(p.address, 0) + 1
        busiest = max(counts, key=lambda a: counts[a])
        return min((p for p in pending if p.address == busiest), key=lambda p: p.since).key
