"""Two-hop neighbour knowledge from one-hop hellos, for neighbour-aware relay policies.

A hello carries the sender's short id, a sequence number and the short ids of its current
neighbours; the router's owner records each one it receives in the router's
:class:`NeighbourTable`, and policies such as
:class:`~meshchat.router.policy.NeighbourCoverage` read it when deciding whether to relay.
"""

from __future__ import annotations

__all__ = ["SHORT_ID_SIZE", "NeighbourTable"]


#: Bytes of a short node id in a neighbour list: a truncated hash of the node id. Two nodes of
#: one two-hop neighbourhood (a few hundred nodes at most) share one with odds of about 1e-5.
SHORT_ID_SIZE = 4


class NeighbourTable:
    """Two-hop knowledge: who each link leads to, and whom that neighbour says it hears.

    Filled by the router's owner from one-hop hellos (``heard_hello``); the router forgets a
    link when it goes down. A hello carries the sender's short id, a sequence number and the
    short ids of its current neighbours. The sequence numbers give the share of hellos lost
    on the links (``loss_estimate``), which a policy may use to ask for more redundancy.
    Entries of a link whose hellos stopped are dropped after ``max_age_ms``.
    """

    __slots__ = (
        "_expected",
        "_heard_at",
        "_received",
        "_relays",
        "_seq",
        "ids",
        "lists",
        "max_age_ms",
        "own_id",
        "selectors",
    )

    def __init__(self, own_id: bytes = b"", max_age_ms: int = 90_000) -> None:
        self.max_age_ms = max_age_ms
        #: this node's short id, as its own hellos carry it
        self.own_id = own_id
        #: links whose last hello named this node among their relays (multipoint relays)
        self.selectors: set[str] = set()
        self._relays: tuple[int, frozenset[str]] | None = None  # (k, selection) cache
        #: link -> the short id its hellos carry
        self.ids: dict[str, bytes] = {}
        #: link -> the short ids that neighbour advertised in its last hello
        self.lists: dict[str, frozenset[bytes]] = {}
        self._heard_at: dict[str, int] = {}
        self._seq: dict[str, int] = {}
        self._received = 0
        self._expected = 0

    def __len__(self) -> int:
        return len(self.ids)

    def heard_hello(
        self,
        link: str,
        short_id: bytes,
        neighbours: frozenset[bytes],
        seq: int,
        now_ms: int,
        relays: frozenset[bytes] = frozenset(),
    ) -> None:
        """Record a hello received on ``link`` (``relays``: the neighbours it chose as relays)."""
        last = self._seq.get(link)
        if last is not None and 0 < seq - last <= 64:
            self._received += 1
            self._expected += seq - last
        self._seq[link] = seq
        if self.ids.get(link) != short_id or self.lists.get(link) != neighbours:
            self._relays = None
        self.ids[link] = short_id
        self.lists[link] = neighbours
        self._heard_at[link] = now_ms
        if self.own_id and self.own_id in relays:
            self.selectors.add(link)
        else:
            self.selectors.discard(link)

    def select_relays(self, k: int) -> frozenset[str]:
        """Multipoint relays: neighbours that together reach every two-hop neighbour k times.

        OLSR's greedy selection (RFC 3626 section 8.3.1, with its MPR_COVERAGE ``k``): first
        every neighbour that is one of at most ``k`` ways to reach some two-hop neighbour, then
        repeatedly the neighbour that reaches the most two-hop neighbours still short of
        ``k`` covers. The result is cached until a neighbour's list or the link set changes.
        """
        if self._relays is not None and self._relays[0] == k:
            return self._relays[1]
        mine = set(self.ids.values())
        mine.add(self.own_id)
        reach = {link: self.lists.get(link, frozenset()) - mine for link in self.ids}
        providers: dict[bytes, list[str]] = {}
        for link, two_hop in reach.items():
            for y in two_hop:
                providers.setdefault(y, []).append(link)
        need = {y: min(k, len(p)) for y, p in providers.items()}
        chosen: set[str] = set()

        def take(link: str) -> None:
            chosen.add(link)
            for y in reach[link]:
                need[y] -= 1

        for p in providers.values():
            if len(p) <= k:
                for link in p:
                    if link not in chosen:
                        take(link)
        short = {y for y, n in need.items() if n > 0}
        while short:
            best = max(
                (link for link in reach if link not in chosen),
                key=lambda link: (len(reach[link] & short), link),
            )
            take(best)
            short = {y for y in short if need[y] > 0}
        result = frozenset(chosen)
        self._relays = (k, result)
        return result

    def forget(self, link: str) -> None:
        """The link went down: what it told us no longer describes a neighbour."""
        if link in self.ids:
            self._relays = None
        self.selectors.discard(link)
        self.ids.pop(link, None)
        self.lists.pop(link, None)
        self._heard_at.pop(link, None)
        self._seq.pop(link, None)

    def expire(self, now_ms: int) -> None:
        for link in [k for k, t in self._heard_at.items() if now_ms - t > self.max_age_ms]:
            self.forget(link)

    def loss_estimate(self) -> float:
        """Share of neighbours' hellos lost (0.0 until two hellos of one link were heard)."""
        if self._expected == 0:
            return 0.0
        return 1.0 - self._received / self._expected
