"""Hellos in the simulator: neighbour-aware policies get neighbour lists the way nodes would."""

from __future__ import annotations

import dataclasses

from meshchat.router.policy import ManagedFlood, NaiveFlood, NeighbourCoverage
from meshchat.sim import Churn, Scenario, Simulator, simulate
from meshchat.sim.engine import HELLO_OVERHEAD_BYTES, hello_size

TOWN = Scenario(n=120, degree=18, broadcasts=4, interval_ms=3000, ttl=16, seed=4)


def test_tables_hold_every_neighbours_list_without_loss() -> None:
    sim = Simulator(TOWN, NeighbourCoverage())
    short = [sim.routers[i].neighbours.own_id for i in range(TOWN.n)]
    for i in (0, 17, 99):
        table = sim.routers[i].neighbours
        assert set(table.ids) == {sim.names[j] for j in sim.topology.neighbours[i]}
        for link, listed in table.lists.items():
            j = int(link)
            assert listed == frozenset(short[m] for m in sim.topology.neighbours[j])
        assert table.loss_estimate() == 0.0


def test_hellos_are_counted_and_only_for_neighbour_aware_policies() -> None:
    result = simulate(TOWN, NeighbourCoverage())
    # One hello per node per interval (random phase) over the run: about n * run / interval.
    expected = TOWN.n * TOWN.end_ms / TOWN.hello_interval_ms
    assert 0.5 * expected <= result.hellos <= 1.5 * expected
    assert result.hello_bytes >= result.hellos * HELLO_OVERHEAD_BYTES
    assert hello_size(10) == HELLO_OVERHEAD_BYTES + 40
    assert simulate(TOWN, ManagedFlood()).hellos == 0


def test_coverage_reaches_what_naive_reaches_for_far_fewer_transmissions() -> None:
    naive = simulate(TOWN, NaiveFlood())
    coverage = simulate(TOWN, NeighbourCoverage())
    assert coverage.reached == naive.reached
    assert coverage.transmissions < 0.4 * naive.transmissions
    assert coverage.counter("relay.pruned") > 0


def test_loss_is_measured_from_hello_gaps() -> None:
    lossy = dataclasses.replace(TOWN, loss=0.3, hello_warmup_rounds=8)
    sim = Simulator(lossy, NeighbourCoverage())
    estimates = [r.neighbours.loss_estimate() for r in sim.routers if len(r.neighbours) > 5]
    mean = sum(estimates) / len(estimates)
    assert 0.2 < mean < 0.4
    result = sim.run()
    naive = simulate(lossy, NaiveFlood())
    assert result.reached >= 0.98 * naive.reached


def test_tables_follow_churn_and_runs_are_reproducible() -> None:
    churny = dataclasses.replace(TOWN, churn=Churn(mean_up_ms=4000, mean_down_ms=2000))
    sim = Simulator(churny, NeighbourCoverage())
    first = sim.run()
    for i, router in enumerate(sim.routers):
        if sim.alive[i]:
            assert set(router.neighbours.ids) <= set(router.links)
    assert Simulator(churny, NeighbourCoverage()).run() == first
