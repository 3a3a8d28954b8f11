"""Channel history budgets: how much of a channel's incoming history the store keeps.

Theory of operation. Anyone can write to a public channel such as ``#mesh``, so without a
bound a few strangers fill the disk (four links grew a database by 57.6 MB in 48 s). Every
incoming message stored in a channel conversation (a name starting with ``#``) is charged
``len(sealed row) + ROW_OVERHEAD`` bytes, and right after it is stored the channel is trimmed,
in the same transaction, to its :class:`HistoryBudget`:

1. **age**: incoming messages received more than ``max_age_ms`` ago go (among the 64 oldest
   per write, so a backlog drains over the next writes);
2. **per sender**: a sender's messages in the channel beyond ``sender_bytes`` go, its oldest
   first;
3. **per channel**: when the channel's incoming history exceeds ``channel_bytes``, it is cut
   to ``TRIM_TO`` of that by *water level*: the noisiest senders are cut down, oldest first,
   to the largest common level that fits, so quiet senders keep everything.

Outgoing messages (the user's own) and direct and group conversations are never trimmed.
The channel's total is counted once per store and then kept up to date, so a write costs an
indexed sum over one sender's rows, not a scan of the channel.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from meshchat.errors import StoreError
from meshchat.store import _sql as q

__all__ = ["DEFAULT_HISTORY", "ROW_OVERHEAD", "TRIM_TO", "HistoryBudget", "HistoryTrimmer"]

#: bytes charged per stored row on top of its sealed cell (tags, index entries, page slack);
#: the statements in ``_sql.py`` spell it out
ROW_OVERHEAD = q.HISTORY_ROW_OVERHEAD
#: a channel over its budget is cut to this share of it, so the costly cut is rare
TRIM_TO = 0.9


@dataclass(frozen=True, slots=True)
class HistoryBudget:
    """Bounds on a channel's stored incoming history (see the module docstring)."""

    channel_bytes: int = 8 * 1024 * 1024
    sender_bytes: int = 512 * 1024
    max_age_ms: int = 30 * 24 * 3600_000

    def __post_init__(self) -> None:
        if min(self.channel_bytes, self.sender_bytes, self.max_age_ms) < 1:
            raise StoreError("history budgets must be positive")


DEFAULT_HISTORY = HistoryBudget()


def water_level(used: list[int], target: int) -> int:
    """The largest level ``L`` with ``sum(min(u, L) for u in used) <= target``."""
    ordered = sorted(used)
    remaining, count = target, len(ordered)
    for i, u in enumerate(ordered):
        share = remaining // (count - i)
        if u > share:
            return share
        remaining -= u
    return max(ordered, default=0)


class HistoryTrimmer:
    """Applies a :class:`HistoryBudget` inside the store's write transactions."""

    __slots__ = ("_totals", "budget")

    def __init__(self, budget: HistoryBudget = DEFAULT_HISTORY) -> None:
        self.budget = budget
        self._totals: dict[bytes, int] = {}  # conv_tag -> incoming bytes (joined channels)

    def forget(self) -> None:
        """A transaction rolled back: recount the totals on next use."""
        self._totals.clear()

    def after_insert(
        self,
        conn: sqlite3.Connection,
        conv_tag: bytes,
        sender_tag: bytes,
        row_id: int,
        now_ms: int,
    ) -> int:
        """Trim the channel after an incoming row was stored; returns rows deleted."""
        budget = self.budget
        total = self._totals.get(conv_tag)
        if total is None:
            total = int(conn.execute(q.HISTORY_CHANNEL_TOTAL, (conv_tag,)).fetchone()[0])
        else:
            row = conn.execute(q.HISTORY_ROW_COST, (row_id,)).fetchone()
            total += 0 if row is None else int(row[0])
        freed: list[int] = []
        freed += _costs(conn.execute(q.HISTORY_AGE_CUT, (conv_tag, now_ms - budget.max_age_ms)))
        used = int(conn.execute(q.HISTORY_SENDER_TOTAL, (sender_tag, conv_tag)).fetchone()[0])
        if used > budget.sender_bytes:
            params = (sender_tag, conv_tag, budget.sender_bytes)
            freed += _costs(conn.execute(q.HISTORY_SENDER_CUT, params))
        total -= sum(freed)
        if total > budget.channel_bytes:
            target = int(budget.channel_bytes * TRIM_TO)
            senders = [(bytes(tag), int(u)) for tag, u in conv_rows(conn, conv_tag)]
            level = water_level([u for _, u in senders], target)
            for tag, u in senders:
                if u <= level:
                    break
                cut = _costs(conn.execute(q.HISTORY_SENDER_CUT, (tag, conv_tag, level)))
                freed += cut
                total -= sum(cut)
        self._totals[conv_tag] = total
        return len(freed)


def conv_rows(conn: sqlite3.Connection, conv_tag: bytes) -> list[tuple[bytes, int]]:
    """``(sender tag, bytes used)`` of a channel's senders, the noisiest first."""
    return [(bytes(r[0]), int(r[1])) for r in conn.execute(q.HISTORY_SENDERS, (conv_tag,))]


def _costs(cursor: sqlite3.Cursor) -> list[int]:
    return [int(row[0]) for row in cursor.fetchall()]
