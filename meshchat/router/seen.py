"""Bounded duplicate suppression: remembers packet ids for a while, never more than a cap.

Entries are kept in insertion order in a dict; each expires ``ttl_ms`` after it was added and
the oldest are evicted first when the cap is reached, so memory stays bounded under a flood of
distinct packets (an attacker can at worst make us forget old ids early, which costs duplicate
traffic, not correctness: application-level message ids are deduplicated again in the store).
"""

from __future__ import annotations

__all__ = ["SeenSet"]


class SeenSet:
    """A set of packet ids with a size cap and a time horizon."""

    __slots__ = ("_capacity", "_entries", "_ttl_ms", "complete_since")

    def __init__(self, capacity: int = 65536, ttl_ms: int = 3600_000) -> None:
        if capacity < 1:
            raise ValueError("capacity must be positive")
        self._capacity = capacity
        self._ttl_ms = ttl_ms
        self._entries: dict[bytes, int] = {}
        #: every id added at or after this time (and not yet expired) is still here: the time
        #: of the first add, moved past the entries the capacity pushed out (None: empty so far)
        self.complete_since: int | None = None

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, packet_id: object) -> bool:
        return packet_id in self._entries

    def add(self, packet_id: bytes, now_ms: int) -> None:
        entries = self._entries
        if packet_id in entries:
            return
        if self.complete_since is None:
            self.complete_since = now_ms
        if len(entries) >= self._capacity:
            oldest = next(iter(entries))
            added = entries.pop(oldest) - self._ttl_ms
            self.complete_since = max(self.complete_since, added + 1)
        entries[packet_id] = now_ms + self._ttl_ms

    def expire(self, now_ms: int) -> int:
        """Forget ids older than the horizon; returns how many were forgotten."""
        # Entries sit in insertion order and share one horizon, so the expired ones are a
        # prefix: drop from the front until the first live one.
        entries = self._entries
        removed = 0
        while entries:
            packet_id = next(iter(entries))
            if entries[packet_id] > now_ms:
                break
            del entries[packet_id]
            removed += 1
        return removed
