"""The receiver against a network that loses, repeats and reorders bodies, and against
sources that lie or lack pieces: the file always arrives whole, within the bounds."""

from __future__ import annotations

import os
import random
from dataclasses import replace

from files_pair import RECEIVER, Harness, make_file
from hypothesis import given, settings
from hypothesis import strategies as st

from meshchat.files import Downloads, Limits
from meshchat.files.effects import Abandoned, Completed
from meshchat.files.wire import Piece


def _chaos_run(
    seed: int, size: int, loss: float, dup: float, liars: int, lacking: int, window: int
) -> Harness:
    rng = random.Random(seed)
    data = os.urandom(size)
    manifest, tree = make_file(data, 512)
    limits = Limits(window=window, per_source=max(1, window // 2), request_timeout_ms=2_000)
    h = Harness(Downloads(limits), data)
    peers = ["honest"] + [f"liar{n}" for n in range(liars)] + [f"lacks{n}" for n in range(lacking)]
    for peer in peers:
        seeder = h.seed(peer, manifest, tree)
        del seeder
    for n in range(liars):
        h.tamper[f"liar{n}"] = lambda p: replace(p, data=bytes(len(p.data)) + b"!")

    def lose_some(piece: Piece) -> Piece | None:
        return None if rng.random() < loss else piece

    h.tamper["honest"] = lose_some
    for n in range(lacking):
        h.tamper[f"lacks{n}"] = lambda p: None  # serves nothing it is asked for
    for peer in rng.sample(peers, len(peers)):
        h.apply(RECEIVER, h.downloads.offer(manifest, peer, 0))
    for _ in range(400):
        # reorder and repeat what is in flight
        items = list(h.queue)
        rng.shuffle(items)
        items += [item for item in items if rng.random() < dup]
        h.queue.clear()
        h.queue.extend(items)
        h.run()
        if h.of(Completed) or h.of(Abandoned):
            break
        h.tick(2_000)
    assert h.max_in_flight <= window
    assert h.of(Completed) and not h.of(Abandoned)
    assert h.assembled() == data
    return h


@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    size=st.integers(0, 60_000),
    loss=st.floats(0, 0.5),
    dup=st.floats(0, 0.3),
    liars=st.integers(0, 3),
    lacking=st.integers(0, 2),
    window=st.integers(1, 48),
)
def test_the_file_arrives_whole_through_chaos(
    seed: int, size: int, loss: float, dup: float, liars: int, lacking: int, window: int
) -> None:
    _chaos_run(seed, size, loss, dup, liars, lacking, window)


def test_a_lossy_reordering_network_with_liars() -> None:
    h = _chaos_run(7, 200_000, loss=0.3, dup=0.2, liars=2, lacking=1, window=32)
    assert len(h.of(Completed)) == 1
