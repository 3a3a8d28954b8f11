"""Broadcast latency of managed flooding against naive flooding, in the town and crowded cells.

What is measured. The cells of ``flood.py``'s grid A (N = 1000, TTL 12, BLE medium) at town
and crowded density and 0 / 10 / 30% loss, with three strategies on the same scenarios:
naive flooding (the baseline), managed flooding (meshchat's default) and ``managed-base250``,
managed flooding with the defaults it had before its waits were shortened (a 250 ms base delay
per hop, a 300 ms window, 30 ms of jitter, stand down beside a relay within 0.45 r), so that
"transmissions within 10% of before" is measured in the same run, not copied from an old one.

Per cell: latency p50 / p95 of the first copy at each reached node (median over seeds of the
per-run percentile) and their ratio to naive's; reach against naive (pooled over seeds);
transmissions per broadcast against naive's and against ``managed-base250``'s.

The target (issue 18, item 4): in the town and crowded cells, managed flooding's p95 latency
at most 3x naive's, reach at least 99.5% of naive's, transmissions within 10% of the defaults
before. ``flood.py`` prints, before its last line::

    flood_latency_p95_vs_naive_town: X (target <= 3)
    flood_latency_p95_vs_naive_crowded: X (target <= 3)

where X is the largest ratio over the three loss rates. Run this file alone for the latency
section only (``--seeds``, ``--quick``): a few minutes of CPU on two processes.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from multiprocessing import Pool
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flood import Cell

LATENCY_TARGET = 3.0
TX_SLACK = 1.10  # transmissions at most 10% above the defaults before
REACH_TARGET = 0.995
#: strategies of this section, the baseline first
LATENCY_STRATEGIES = ("naive", "managed", "managed-base250")


@dataclass(frozen=True, slots=True)
class LatencyRow:
    """Managed flooding in one cell, against naive and against the defaults before."""

    density: str
    loss: float
    naive_p50: float
    naive_p95: float
    p50: float
    p95: float
    before_p95: float
    before_reach_vs_naive: float
    before_tx_per_broadcast: float
    reach_vs_naive: float
    tx_per_broadcast: float
    tx_vs_naive: float
    tx_vs_before: float

    @property
    def p95_vs_naive(self) -> float:
        return self.p95 / self.naive_p95 if self.naive_p95 else 0.0

    @property
    def p50_vs_naive(self) -> float:
        return self.p50 / self.naive_p50 if self.naive_p50 else 0.0

    @property
    def met(self) -> bool:
        return (
            self.p95_vs_naive <= LATENCY_TARGET
            and self.reach_vs_naive >= REACH_TARGET
            and self.tx_vs_before <= TX_SLACK
        )


def latency_rows(cells: list[Cell]) -> list[LatencyRow]:
    """Rows for every (density, loss) of ``cells`` that has all three strategies."""
    by: dict[tuple[str, str, float], Cell] = {}
    for c in cells:
        by[(c.strategy, c.density, c.loss)] = c
    rows = []
    for (strategy, density, loss), cell in sorted(by.items(), key=lambda kv: kv[0][1:]):
        if strategy != "managed" or density not in ("town", "crowded"):
            continue
        naive = by.get(("naive", density, loss))
        before = by.get(("managed-base250", density, loss))
        if naive is None or before is None:
            continue
        rows.append(
            LatencyRow(
                density=density,
                loss=loss,
                naive_p50=naive.latency_p50,
                naive_p95=naive.latency_p95,
                p50=cell.latency_p50,
                p95=cell.latency_p95,
                before_p95=before.latency_p95,
                before_reach_vs_naive=before.reach_vs_naive,
                before_tx_per_broadcast=before.tx_per_broadcast,
                reach_vs_naive=cell.reach_vs_naive,
                tx_per_broadcast=cell.tx_per_broadcast,
                tx_vs_naive=cell.tx_vs_naive,
                tx_vs_before=cell.tx_per_broadcast / max(1e-9, before.tx_per_broadcast),
            )
        )
    return rows


def print_latency(rows: list[LatencyRow], n: int) -> None:
    print(f"\n### H. broadcast latency against naive: N = {n}, TTL 12\n")
    print(
        "| density | loss | naive p50/p95 ms | managed p50/p95 ms | p50 vs naive | p95 vs naive "
        "| reach vs naive | tx/bcast | tx vs naive | tx vs before | target "
        "| before: p95 ms (vs naive) | before: reach vs naive | before: tx/bcast |"
    )
    print("|---" * 14 + "|")
    for r in rows:
        print(
            f"| {r.density} | {r.loss:.0%} | {r.naive_p50:.0f}/{r.naive_p95:.0f} "
            f"| {r.p50:.0f}/{r.p95:.0f} | {r.p50_vs_naive:.2f} | {r.p95_vs_naive:.2f} "
            f"| {r.reach_vs_naive:.4f} | {r.tx_per_broadcast:.0f} "
            f"| {r.tx_vs_naive:.3f} | {r.tx_vs_before:.3f} | {'met' if r.met else 'missed'} "
            f"| {r.before_p95:.0f} ({r.before_p95 / max(1e-9, r.naive_p95):.1f}) "
            f"| {r.before_reach_vs_naive:.4f} | {r.before_tx_per_broadcast:.0f} |"
        )


def latency_lines(rows: list[LatencyRow]) -> list[str]:
    """The metric lines: the worst p95 ratio over the loss rates, per density."""
    lines = []
    for density in ("town", "crowded"):
        mine = [r for r in rows if r.density == density]
        if mine:
            worst = max(r.p95_vs_naive for r in mine)
            lines.append(
                f"flood_latency_p95_vs_naive_{density}: {worst:.2f} (target <= {LATENCY_TARGET:g})"
            )
    return lines


def main() -> int:
    from flood import cells_of, jobs_for, run_one

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="N = 300, one seed")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--broadcasts", type=int, default=8)
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    args = parser.parse_args()
    n = 300 if args.quick else 1000
    seeds = range(1, 2 if args.quick else args.seeds + 1)
    jobs = jobs_for(
        [n],
        ("town", "crowded"),
        (0.0, 0.1, 0.3),
        seeds,
        args.broadcasts,
        12,
        strategies=LATENCY_STRATEGIES,
    )
    with Pool(args.jobs) as pool:
        runs = pool.map(run_one, jobs, chunksize=1)
    rows = latency_rows(cells_of(runs))
    print_latency(rows, n)
    print(
        f"\ncells meeting all three halves of the target: {sum(r.met for r in rows)} of {len(rows)}"
    )
    for line in latency_lines(rows):
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
