"""The linear-programming floor of bench/flood_bounds.py, on graphs one can check by hand."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from flood_bounds import fewest_transmissions, naive_model, segments


def test_segments_interpolate_the_miss_probability_at_the_integers() -> None:
    for loss in (0.1, 0.3, 0.5):
        for value, slope, k in segments(loss):
            assert value == pytest.approx(loss**k)
            assert value + slope == pytest.approx(loss ** (k + 1))
    assert segments(0.0) == [(1.0, -1.0, 0)]


def test_a_chain_needs_every_node_but_the_last_to_send() -> None:
    chain = [{1}, {0, 2}, {1, 3}, {2}]
    assert fewest_transmissions(chain, {0, 1, 2, 3}, 0, 0.0, 0.0) == pytest.approx(3.0)
    # One expected miss allowed: the last node may be left out, so one send fewer.
    assert fewest_transmissions(chain, {0, 1, 2, 3}, 0, 0.0, 1.0) == pytest.approx(2.0)


def test_a_star_from_its_centre_needs_one_send_without_loss() -> None:
    star = [{1, 2, 3, 4}, {0}, {0}, {0}, {0}]
    assert fewest_transmissions(star, set(range(5)), 0, 0.0, 0.0) == pytest.approx(1.0)


def test_under_loss_a_leaf_needs_repeats_and_the_cap_makes_it_infeasible() -> None:
    pair = [{1}, {0}]
    # Miss at most 1/8 at loss 1/2: three sends from the origin (0.5 ** 3).
    assert fewest_transmissions(pair, {0, 1}, 0, 0.5, 0.125) == pytest.approx(3.0)
    with pytest.raises(RuntimeError):
        fewest_transmissions(pair, {0, 1}, 0, 0.5, 0.125, once_each=True)


def test_naive_flooding_itself_is_never_below_the_bound() -> None:
    rng = random.Random(7)
    n = 40
    nb: list[set[int]] = [set() for _ in range(n)]
    for i in range(1, n):  # a random tree plus chords: connected
        j = rng.randrange(i)
        nb[i].add(j)
        nb[j].add(i)
    for _ in range(30):
        a, b = rng.sample(range(n), 2)
        nb[a].add(b)
        nb[b].add(a)
    for loss in (0.0, 0.1, 0.3):
        reached, sent = naive_model(nb, 0, loss, 40, rng, 200 if loss else 1)
        mean_reach = sum(reached) / len(reached)
        allowed = (n - 1) - mean_reach  # naive's own expected misses
        bound = fewest_transmissions(nb, set(range(n)), 0, loss, allowed)
        assert bound <= sum(sent) / len(sent) + 1e-6
