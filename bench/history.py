"""The causal history in the store: what inserting one message costs as the history grows,
and how long showing 10,000 messages takes, in one run.

What is measured. For each history size (1k, 10k, 100k messages, one conversation, a real
:class:`meshchat.store.Store` on a temporary directory), a group conversation is built through
the store's own API (``add_incoming`` / ``add_outgoing`` in batches of 1,000 per transaction):
three senders taking turns, each message naming the newest one or two heads as parents, as a
node does. Then, on that history:

* **insert with parents**: one new incoming message naming the conversation's heads (looked
  up with :meth:`Store.heads`, as the node does before sending) -- lookups of each parent by
  tag, placement against the newest shown order time, links, head flags, release check. Timed
  in batches of ``--batch`` messages inside one transaction, so the figure is the ordering
  work and not the disk sync (printed apart: the median wall time of one insert in its own
  durable commit). Inserts are timed in process CPU time, so other processes on the machine
  move the figure less.
* **history(conv, 10000)**: the page ``meshchat log`` shows, decrypting each row; wall time,
  the best of ``--repeats``.

Baseline, same run, same stores: inserting a message that names no parent (still placed in
the order: one index seek for the newest shown time), interleaved batch by batch with the
measured inserts; and, for the page, the pre-history query (the last 10,000 rows by row id,
decrypted) that ``messages()`` ran before the causal order.

Target (issue 13): inserting costs O(log n) or O(parents), i.e. flat from 1k to 100k messages
(the ratio of the per-message cost at 100k to that at 1k close to 1), and showing 10,000
messages takes at most 0.3 s.

Run ``python bench/history.py`` (about a minute; ``--sizes 1000,10000`` for a quick look).
Last line::

    history_insert_cost_ratio_100k_vs_1k: 1.05 (target <= 1.5)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from meshchat.store import Store
from meshchat.store import _sql as q

KEY = bytes(range(32))
CONV = "grp:" + "42" * 16
SENDERS = [bytes([0xA0 + i]) * 16 for i in range(3)]
ME = b"\x01" * 16
T0 = 1_760_000_000_000
PAGE = 10_000
RATIO_TARGET = 1.5
PAGE_TARGET_S = 0.3


class History:
    """One store holding one conversation, grown message by message as a node would."""

    def __init__(self, path: Path) -> None:
        self.store = Store.open(path, key=KEY)
        self.count = 0
        self.clock = T0

    def add(self, *, parents: bool) -> None:
        """Store the next message: from a sender in turn, naming the heads (or nothing)."""
        self.count += 1
        self.clock += 1000
        n = self.count
        named = self.store.heads(CONV)[:2] if parents else ()
        if n % 7 == 0:
            self.store.add_outgoing(
                CONV, os.urandom(16), b"\x42" * 16, ME, "me", f"mine {n}", self.clock,
                self.clock + 10**9, parents=named,
            )  # fmt: skip
            return
        self.store.add_incoming(
            CONV, os.urandom(16), SENDERS[n % 3], "peer", f"message number {n} " * 3,
            self.clock - 200, self.clock, parents=named,
        )  # fmt: skip

    def grow(self, size: int) -> None:
        while self.count < size:
            with self.store.transaction():
                for _ in range(min(1000, size - self.count)):
                    self.add(parents=True)


def timed_batch(history: History, batch: int, *, parents: bool) -> float:
    """CPU seconds per message for ``batch`` inserts in one transaction."""
    start = time.process_time()
    with history.store.transaction():
        for _ in range(batch):
            history.add(parents=parents)
    return (time.process_time() - start) / batch


def durable_insert(history: History, count: int) -> float:
    """Median seconds for one insert with parents in its own durable commit."""
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        history.add(parents=True)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def page_times(history: History, repeats: int) -> tuple[float, float, int]:
    """Best wall seconds of ``history(conv, PAGE)`` and of the old row-order page."""
    store = history.store
    ours, old = [], []
    shown = 0
    for _ in range(repeats):
        start = time.perf_counter()
        shown = len(store.history(CONV, PAGE))
        ours.append(time.perf_counter() - start)
        start = time.perf_counter()
        with store._reading() as conn:
            rows = conn.execute(q.MESSAGES_LAST, (store._rows.conv_tag(CONV), PAGE)).fetchall()
            [store._rows.open_message(row) for row in rows]
        old.append(time.perf_counter() - start)
    return min(ours), min(old), shown


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    print(
        f"causal history in one conversation (3 senders + own messages, 1-2 parents each), "
        f"Python {sys.version.split()[0]}, SQLite store on a temporary directory"
    )
    header = (
        f"{'history':>9}{'build s':>9}{'insert+parents us':>19}{'plain insert us':>17}"
        f"{'ratio':>7}{'durable ms':>12}{'history() s':>13}{'old page s':>12}"
    )
    print(header)
    per_size: dict[int, float] = {}
    page_at: dict[int, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            history = History(Path(tmp) / f"h{size}.db")
            start = time.perf_counter()
            history.grow(size)
            build_s = time.perf_counter() - start
            with_parents, plain = [], []
            for _ in range(args.batches):  # interleaved, so both see the same history size
                with_parents.append(timed_batch(history, args.batch, parents=True))
                plain.append(timed_batch(history, args.batch, parents=False))
            durable = durable_insert(history, 20)
            ours, old, shown = page_times(history, args.repeats)
            history.store.close()
            dag_us = statistics.median(with_parents) * 1e6
            plain_us = statistics.median(plain) * 1e6
            per_size[size], page_at[size] = dag_us, ours
            print(
                f"{size:>9,}{build_s:>9.1f}{dag_us:>19.0f}{plain_us:>17.0f}"
                f"{dag_us / plain_us:>7.2f}{durable * 1e3:>12.2f}{ours:>13.3f}{old:>12.3f}"
                f"  ({shown:,} shown)"
            )
    small, large = min(sizes), max(sizes)
    ratio = per_size[large] / per_size[small]
    page_size = max((s for s in sizes if s >= PAGE), default=large)
    print(
        f"insert with parents at {large:,} vs {small:,} messages: {ratio:.2f}; "
        f"history(conv, {PAGE:,}) at {page_size:,} messages: {page_at[page_size]:.3f} s "
        f"(target <= {PAGE_TARGET_S})"
    )
    print(f"history_page_10k_s: {page_at[page_size]:.3f} (target <= {PAGE_TARGET_S})")
    label = f"{large // 1000}k_vs_{small // 1000}k" if small >= 1000 else f"{large}_vs_{small}"
    print(f"history_insert_cost_ratio_{label}: {ratio:.2f} (target <= {RATIO_TARGET})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
