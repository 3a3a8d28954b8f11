"""Neighbour-coverage relaying: the two-hop table, the pruning rule, and the router's hook."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshchat.errors import UsageError
from meshchat.identity import Identity
from meshchat.router import FloodRouter, RouterConfig, Transmit
from meshchat.router.policy import (
    ManagedFlood,
    NeighbourAware,
    NeighbourCoverage,
    NeighbourTable,
)
from meshchat.wire import codec
from meshchat.wire.packet import BROADCAST, Packet, PacketKind, Suite

NOW = 1_700_000_000_000
ALICE = Identity.from_seeds(b"\xc1" * 32, b"\xc2" * 32)
ME = Identity.from_seeds(b"\xd1" * 32, b"\xd2" * 32)
_ids = itertools.count(1)


def _sid(name: str) -> bytes:
    return name.encode().ljust(4, b"_")[:4]


def _packet(ttl: int = 8) -> Packet:
    return codec.build(
        ALICE,
        PacketKind.MESSAGE,
        BROADCAST,
        Suite.SIGNED,
        b"hi",
        NOW,
        ttl,
        next(_ids).to_bytes(16, "big"),
    )


def _table(graph: dict[str, set[str]], me: str = "me", seq: int = 1) -> NeighbourTable:
    """The table ``me`` builds from one hello of each of its neighbours in ``graph``."""
    table = NeighbourTable(own_id=_sid(me))
    for link in sorted(graph[me]):
        listed = frozenset(_sid(n) for n in graph[link])
        table.heard_hello(link, _sid(link), listed, seq, NOW)
    return table


def _undirected(edges: list[tuple[str, str]]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
        graph.setdefault(b, set()).add(a)
    return graph


# -- the table -----------------------------------------------------------------------------


def test_table_records_hellos_estimates_loss_and_forgets() -> None:
    table = NeighbourTable(own_id=_sid("me"), max_age_ms=1000)
    listed = frozenset({_sid("me"), _sid("x")})
    assert table.loss_estimate() == 0.0
    for seq in (1, 2, 4, 5, 8):  # hellos 3, 6 and 7 were lost: 3 of 7 after the first
        table.heard_hello("a", _sid("a"), listed, seq, NOW)
    assert abs(table.loss_estimate() - 3 / 7) < 1e-9
    assert table.ids == {"a": _sid("a")} and table.lists["a"] == listed
    table.heard_hello("b", _sid("b"), frozenset(), 1, NOW + 900)
    table.expire(NOW + 1500)  # a's last hello is too old; b's is not
    assert set(table.ids) == {"b"} and len(table) == 1
    table.forget("b")
    assert len(table) == 0 and not table.lists


def test_multipoint_relays_reach_every_two_hop_neighbour_k_times() -> None:
    # me - a, b, c; two-hop: x (via a, b), y (via c only), z (via a, b, c)
    edges = [("me", "a"), ("me", "b"), ("me", "c"), ("a", "x"), ("b", "x"), ("c", "y")]
    edges += [("a", "z"), ("b", "z"), ("c", "z")]
    graph = _undirected(edges)
    table = _table(graph)
    one = table.select_relays(1)
    assert "c" in one and len(one) == 2  # c is the only way to y; one of a, b for x
    two = table.select_relays(2)
    assert two == {"a", "b", "c"}
    # A node's hello naming us among its relays makes its link a selector.
    table.heard_hello("a", _sid("a"), frozenset(), 2, NOW, relays=frozenset({_sid("me")}))
    assert table.selectors == {"a"}
    table.heard_hello("a", _sid("a"), frozenset(), 3, NOW, relays=frozenset())
    assert table.selectors == set()


# -- the rule ------------------------------------------------------------------------------


def test_loss_estimate_sets_the_covers_asked_for() -> None:
    policy = NeighbourCoverage()
    assert [policy.covers_needed(p) for p in (0.0, 0.05, 0.1, 0.2, 0.3, 0.6, 0.99)] == [
        1,
        1,
        1,
        2,
        2,
        4,
        4,
    ]
    with pytest.raises(UsageError):
        NeighbourCoverage(multipoint=True)
    with pytest.raises(UsageError):
        NeighbourCoverage(miss=0.0)
    assert isinstance(policy, NeighbourAware)


def test_stands_down_when_the_sender_covered_every_neighbour() -> None:
    # s reaches a and b too: our relay would reach nobody new.
    graph = _undirected([("me", "s"), ("me", "a"), ("me", "b"), ("s", "a"), ("s", "b")])
    policy = NeighbourCoverage()
    table = _table(graph)
    assert policy.relay_links({"s": 8}, 8, ["a", "b"], table, random.Random(1)) == []


def test_relays_for_a_neighbour_nobody_else_reaches() -> None:
    graph = _undirected([("me", "s"), ("me", "a"), ("me", "far"), ("s", "a")])
    policy = NeighbourCoverage()
    table = _table(graph)
    got = policy.relay_links({"s": 8}, 8, ["a", "far"], table, random.Random(1))
    assert got == ["a", "far"]
    # Once "far" has been heard relaying itself, it no longer needs us.
    assert policy.relay_links({"s": 8, "far": 7}, 8, ["a"], table, random.Random(1)) == []


def test_delegates_to_an_outranking_covered_neighbour() -> None:
    # x hangs off both us and h; h also hears s (so it gets the packet) and has more
    # neighbours than we do, so h answers for x.
    edges = [("me", "s"), ("me", "h"), ("me", "x"), ("s", "h"), ("h", "x")]
    edges += [("h", f"h{i}") for i in range(4)]
    graph = _undirected(edges)
    table = _table(graph)
    heard = {"s": 8}
    assert NeighbourCoverage().relay_links(heard, 8, ["h", "x"], table, random.Random(1)) == []
    alone = NeighbourCoverage(delegate=False)
    assert alone.relay_links(heard, 8, ["h", "x"], table, random.Random(1)) == ["h", "x"]


def test_a_cover_that_leaves_less_ttl_does_not_count() -> None:
    graph = _undirected([("me", "s"), ("me", "w"), ("me", "x"), ("w", "x")])
    table = _table(graph)
    strict = NeighbourCoverage(ttl_slack=0, delegate_slack=0)
    # w's copy carried TTL 6; ours would give x TTL 7: relay. From w at 7, x is covered.
    assert strict.relay_links({"s": 8, "w": 6}, 8, ["x"], table, random.Random(1)) == ["x"]
    assert strict.relay_links({"s": 8, "w": 7}, 8, ["x"], table, random.Random(1)) == []
    loose = NeighbourCoverage(ttl_slack=1)
    assert loose.relay_links({"s": 8, "w": 6}, 8, ["x"], table, random.Random(1)) == []


def test_under_loss_a_neighbour_needs_two_covers() -> None:
    graph = _undirected([("me", "s"), ("me", "w"), ("me", "x"), ("s", "x"), ("w", "x"), ("s", "w")])
    table = NeighbourTable(own_id=_sid("me"))
    for seq in (1, 2, 4, 5, 7, 8, 10):  # 3 of 9 hellos lost on each link: p = 1/3, k = 2
        for link in ("s", "w", "x"):
            listed = frozenset(_sid(n) for n in graph[link])
            table.heard_hello(link, _sid(link), listed, seq, NOW)
    policy = NeighbourCoverage(delegate=False)
    assert policy.covers_needed(table.loss_estimate()) == 2
    assert policy.relay_links({"s": 8}, 8, ["w", "x"], table, random.Random(1)) == ["w", "x"]
    assert policy.relay_links({"s": 8, "w": 7}, 8, ["x"], table, random.Random(1)) == []


def test_under_loss_a_delegate_is_one_chance_of_k() -> None:
    # x hangs off us and off h; h outranks us and is covered twice (by s and t).
    edges = [("me", "s"), ("me", "t"), ("me", "h"), ("me", "x"), ("s", "h"), ("t", "h")]
    edges += [("h", "x"), ("s", "t")] + [("h", f"h{i}") for i in range(4)]
    graph = _undirected(edges)
    table = NeighbourTable(own_id=_sid("me"))
    for seq in (1, 2, 4, 5, 7, 8, 10):  # p = 1/3: k = 2
        for link in sorted(graph["me"]):
            listed = frozenset(_sid(n) for n in graph[link])
            table.heard_hello(link, _sid(link), listed, seq, NOW)
    policy = NeighbourCoverage()
    assert policy.covers_needed(table.loss_estimate()) == 2
    heard = {"s": 8, "t": 8}
    # The delegate alone is one chance of two: relay.
    assert policy.relay_links(heard, 8, ["h", "x"], table, random.Random(1)) == ["h", "x"]
    # Once x's other neighbour h2 (also covered, also outranking) lists it too: two chances.
    graph = _undirected([*edges, ("me", "h2"), ("h2", "x"), ("s", "h2"), ("t", "h2")])
    graph["h2"] |= {f"g{i}" for i in range(5)}
    for seq in (11, 12):
        for link in sorted(graph["me"]):
            listed = frozenset(_sid(n) for n in graph[link])
            table.heard_hello(link, _sid(link), listed, seq, NOW)
    assert policy.relay_links(heard, 8, ["h", "h2", "x"], table, random.Random(1)) == []


def test_without_hellos_it_relays() -> None:
    policy = NeighbourCoverage()
    table = NeighbourTable(own_id=_sid("me"))
    assert policy.relay_links({"s": 8}, 8, ["a", "b"], table, random.Random(1)) == ["a", "b"]


@given(
    st.lists(st.tuples(st.integers(0, 7), st.integers(0, 7)), max_size=30),
    st.sets(st.integers(1, 7), max_size=7),
    st.integers(2, 12),
)
def test_without_delegation_it_stands_down_exactly_when_all_are_covered(
    edges: list[tuple[int, int]], heard_nodes: set[int], ttl_in: int
) -> None:
    names = [f"n{i}" for i in range(8)]
    names[0] = "me"
    graph = _undirected([(names[a], names[b]) for a, b in edges if a != b])
    graph.setdefault("me", set())
    for name in names:
        graph.setdefault(name, set())
    mine = sorted(graph["me"])
    heard = {names[i]: ttl_in for i in heard_nodes if names[i] in graph["me"]}
    candidates = [link for link in mine if link not in heard]
    table = _table(graph)
    got = NeighbourCoverage(delegate=False, ttl_slack=0).relay_links(
        heard, ttl_in, candidates, table, random.Random(1)
    )
    covered = set().union(*(graph[h] for h in heard)) if heard else set()
    if not candidates:
        assert got == []
    else:
        assert got in ([], candidates)
        assert (got == []) == all(c in covered for c in candidates)


# -- inside the router ---------------------------------------------------------------------


def _router(*links: str) -> FloodRouter:
    router = FloodRouter(
        ME.node_id,
        ME.public.sign_public,
        config=RouterConfig(),
        policy=NeighbourCoverage(),
        rng=random.Random(5),
    )
    for link in links:
        router.link_up(link, NOW)
    router.neighbours.own_id = _sid("me")
    return router


def _hello(router: FloodRouter, graph: dict[str, set[str]]) -> None:
    for link in sorted(graph["me"]):
        listed = frozenset(_sid(n) for n in graph[link])
        router.neighbours.heard_hello(link, _sid(link), listed, 1, NOW)


def test_router_prunes_a_relay_the_sender_made_useless() -> None:
    graph = _undirected([("me", "s"), ("me", "a"), ("s", "a")])
    router = _router("s", "a")
    _hello(router, graph)
    router.receive("s", codec.encode(_packet()), NOW, rssi=-80.0)
    deadline = router.next_deadline()
    assert deadline is not None
    assert [a for a in router.tick(deadline) if isinstance(a, Transmit)] == []
    assert router.counters["relay.pruned"] == 1


def test_router_relays_for_an_uncovered_neighbour_and_reports_copy_ttls() -> None:
    graph = _undirected([("me", "s"), ("me", "a"), ("me", "b"), ("s", "a"), ("b", "a")])
    router = _router("s", "a", "b")
    _hello(router, graph)
    packet = _packet(ttl=8)
    router.receive("s", codec.encode(packet), NOW, rssi=-80.0)
    # a relays it one hop on (TTL 7): it covers b with TTL 7, one less than ours would (7).
    router.receive("a", codec.encode(packet.relayed()), NOW + 5)
    deadline = router.next_deadline()
    assert deadline is not None
    sent = [a for a in router.tick(deadline) if isinstance(a, Transmit)]
    assert sent == []  # b got TTL 7 from a, as much as our relay would give it
    assert router.counters["relay.pruned"] == 1

    router2 = _router("s", "a", "b")
    _hello(router2, graph)
    packet2 = _packet(ttl=8)
    router2.receive("s", codec.encode(packet2), NOW, rssi=-80.0)
    deadline = router2.next_deadline()
    assert deadline is not None
    [tx] = [a for a in router2.tick(deadline) if isinstance(a, Transmit)]
    assert set(tx.links) == {"a", "b"}


def test_router_forgets_a_neighbours_list_when_its_link_goes_down() -> None:
    router = _router("s", "a")
    _hello(router, _undirected([("me", "s"), ("me", "a")]))
    assert set(router.neighbours.ids) == {"s", "a"}
    router.link_down("a", NOW)
    assert set(router.neighbours.ids) == {"s"}


def test_other_policies_ignore_the_table() -> None:
    router = FloodRouter(ME.node_id, ME.public.sign_public, policy=ManagedFlood())
    for link in ("s", "a"):
        router.link_up(link, NOW)
    _hello(router, _undirected([("me", "s"), ("me", "a"), ("s", "a")]))
    actions = router.receive("s", codec.encode(_packet()), NOW)  # 2 links: relays at once
    actions += router.tick(NOW + 1000)
    [tx] = [a for a in actions if isinstance(a, Transmit)]
    assert tx.links == ("a",)  # although s's list says a already has it
