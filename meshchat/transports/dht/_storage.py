"""What a meshchat DHT node keeps for others: checked records only, bounded per source, expiring.

The ``kademlia`` package stores whatever a peer sends (``rpc_store`` writes straight into the
storage object). This storage refuses anything that is not a valid meshchat record for the key
it is stored under (:func:`check_record_at`: at most ``MAX_RECORD`` bytes, signed, lifetime
at most 8 days, filed under its own key), and bounds what it keeps:

- at most ``limits.records`` records and ``limits.bytes`` bytes in all;
- at most ``limits.source_records`` records and ``limits.source_bytes`` bytes from one
  *source* (the IPv4 address, or the IPv6 /64, that sent the ``STORE``; :func:`source_of`):
  a source over its share loses its own oldest records, never anyone else's;
- when the whole storage is full, the oldest record of the source that holds the most bytes
  goes first, so a flood from one address evicts only that address's records;
- at most ``limits.per_key`` records under one key, one per source (a record that lives
  longer is not replaced by one of the same source that ends sooner); when a key is full, the
  record of the source that holds the most bytes overall gives way, so whoever learned a key
  cannot squat it with long-lived records from a few addresses. A lookup is answered with
  each record under the key in turn (:meth:`RecordStorage.get`);
- each record is forgotten at its own expiry (a heap, so a lookup costs no scan).

A refused value is dropped silently: the storing peer gets no signal it could use to probe.
"""

from __future__ import annotations

import heapq
import ipaddress
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from kademlia.storage import IStorage

from meshchat.errors import PacketError, UsageError
from meshchat.transports.dht._records import check_record_at

__all__ = ["LOCAL_SOURCE", "RecordStorage", "StorageLimits", "source_of"]

#: the source charged for records this node stores itself (its own ``set`` and republishing)
LOCAL_SOURCE = "local"


def source_of(ip: object) -> str:
    """The source a ``STORE`` is charged to: an IPv4 address, or the /64 of an IPv6 one."""
    try:
        address = ipaddress.ip_address(str(ip))
    except ValueError:
        return str(ip)[:64]
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


@dataclass(frozen=True, slots=True)
class StorageLimits:
    """What one node keeps for others, in all, per source and per key."""

    records: int = 4096
    bytes: int = 8 * 1024 * 1024
    source_records: int = 512
    source_bytes: int = 1024 * 1024
    per_key: int = 4

    def __post_init__(self) -> None:
        if min(self.records, self.bytes, self.source_records, self.source_bytes) < 1:
            raise UsageError("DHT storage limits must be positive")
        if self.per_key < 1:
            raise UsageError("DHT storage limits must be positive")

    @classmethod
    def scaled(cls, records: int, share: int = 8, per_key: int = 4) -> StorageLimits:
        """Limits for ``records`` records of the largest size, a ``1/share`` part per source."""
        from meshchat.transports.dht._records import MAX_RECORD

        per_source = max(1, records // share)
        return cls(records, records * MAX_RECORD, per_source, per_source * MAX_RECORD, per_key)


@dataclass(frozen=True, slots=True)
class _Item:
    stored: float  # monotonic time it was stored (for republishing)
    expires_s: int
    value: bytes


class RecordStorage(IStorage):  # type: ignore[misc]
    """A bounded Kademlia storage of checked meshchat records, with quotas per source and per
    key (``max_items`` is a :class:`StorageLimits`, or a plain count with no quota per source
    and one record per key)."""

    def __init__(
        self,
        max_items: int | StorageLimits = 4096,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if isinstance(max_items, StorageLimits):
            limits = max_items
        else:  # a plain count: every source may use all of it
            limits = StorageLimits.scaled(max_items, share=1, per_key=1)
        self.limits = limits
        self.max_items = limits.records
        self.clock = clock
        #: key -> source -> its record under that key (insertion order: oldest first)
        self._data: dict[bytes, dict[str, _Item]] = {}
        #: per source, its keys oldest first
        self._by_source: dict[str, OrderedDict[bytes, None]] = {}
        self._source_bytes: dict[str, int] = {}
        self._count = 0
        self._bytes = 0
        self._expiry: list[tuple[int, bytes, str]] = []
        self._turn: dict[bytes, int] = {}
        #: (-bytes, source), with stale entries: the heaviest source without a scan
        self._weights: list[tuple[int, str]] = []
        self.refused = 0
        self.evicted = 0

    def __bool__(self) -> bool:
        return True  # an empty storage is still a storage (``Server`` tests ``storage or ...``)

    # -- writing -------------------------------------------------------------------------

    def __setitem__(self, key: bytes, value: Any) -> None:
        self.put(key, value, LOCAL_SOURCE)

    def put(self, key: bytes, value: Any, source: str) -> bool:
        """Store ``value`` under ``key`` for ``source``; whether it is kept."""
        try:
            record = check_record_at(key, value, self.clock())
        except PacketError:
            self.refused += 1
            return False
        held = self._data.get(key, {})
        if any(item.value == value for item in held.values()):
            return True  # already here (a copy republished or cached by another node)
        current = held.get(source)
        if current is not None:
            if current.expires_s > record.expires_s:
                return False  # an old copy must not displace a newer one from the same source
            self._remove(key, source)
        elif len(held) >= self.limits.per_key:
            # the key is full: the record of the heaviest source gives way (or this one)
            heaviest = max(held, key=self._source_bytes.__getitem__)
            if self._source_bytes[heaviest] <= self._source_bytes.get(source, 0):
                self.refused += 1
                return False
            self._remove(key, heaviest)
            self.evicted += 1
        self._data.setdefault(key, {})[source] = _Item(time.monotonic(), record.expires_s, value)
        self._by_source.setdefault(source, OrderedDict())[key] = None
        self._source_bytes[source] = self._source_bytes.get(source, 0) + len(value)
        self._weigh(source)
        self._count += 1
        self._bytes += len(value)
        heapq.heappush(self._expiry, (record.expires_s, key, source))
        self._enforce(source)
        return source in self._data.get(key, {})

    def _enforce(self, source: str) -> None:
        limits = self.limits
        while (
            len(self._by_source.get(source, ())) > limits.source_records
            or self._source_bytes.get(source, 0) > limits.source_bytes
        ):
            self._evict_oldest_of(source)
        while self._count > limits.records or self._bytes > limits.bytes:
            self._evict_oldest_of(self._heaviest())

    def _weigh(self, source: str) -> None:
        """Note ``source``'s new weight (the heap's older entries for it go stale)."""
        weight = self._source_bytes.get(source)
        if weight:
            heapq.heappush(self._weights, (-weight, source))
        if len(self._weights) > 4 * len(self._source_bytes) + 64:
            self._weights = [(-w, src) for src, w in self._source_bytes.items()]
            heapq.heapify(self._weights)

    def _heaviest(self) -> str:
        """The source that holds the most bytes (no scan: a heap with stale entries)."""
        while True:
            weight, source = self._weights[0]
            if self._source_bytes.get(source) == -weight:
                return source
            heapq.heappop(self._weights)

    def _evict_oldest_of(self, source: str) -> None:
        key = next(iter(self._by_source[source]))
        self._remove(key, source)
        self.evicted += 1

    def _remove(self, key: bytes, source: str) -> None:
        held = self._data[key]
        item = held.pop(source)
        if not held:
            del self._data[key]
            self._turn.pop(key, None)
        keys = self._by_source[source]
        del keys[key]
        self._source_bytes[source] -= len(item.value)
        if not keys:
            del self._by_source[source]
            del self._source_bytes[source]
        self._weigh(source)
        self._count -= 1
        self._bytes -= len(item.value)

    def cull(self) -> None:
        """Forget every record whose time is over (the heap's stale entries are skipped)."""
        now = self.clock()
        while self._expiry and self._expiry[0][0] <= now:
            expires_s, key, source = heapq.heappop(self._expiry)
            item = self._data.get(key, {}).get(source)
            if item is not None and item.expires_s == expires_s:
                self._remove(key, source)
        if len(self._expiry) > 2 * self._count + 64:  # stale entries from replacements
            self._expiry = [(i.expires_s, k, s) for k, s, i in self._items()]
            heapq.heapify(self._expiry)

    # -- reading -------------------------------------------------------------------------

    def _items(self) -> list[tuple[bytes, str, _Item]]:
        return [(k, s, i) for k, held in self._data.items() for s, i in held.items()]

    def get(self, key: bytes, default: Any = None) -> Any:
        """One of the records under ``key``, each in turn (a lookup gets one value; a reader
        that asks again gets the next, so a record stored beside others is still found)."""
        self.cull()
        held = self._data.get(key)
        if not held:
            return default
        turn = self._turn.get(key, 0)
        self._turn[key] = turn + 1
        items = list(held.values())
        return items[turn % len(items)].value

    def values_of(self, key: bytes) -> list[bytes]:
        """Every record under ``key``."""
        self.cull()
        return [item.value for item in self._data.get(key, {}).values()]

    def __getitem__(self, key: bytes) -> Any:
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def __len__(self) -> int:
        return self._count

    @property
    def stored_bytes(self) -> int:
        return self._bytes

    def usage(self, source: str) -> tuple[int, int]:
        """Records and bytes kept for ``source``."""
        return len(self._by_source.get(source, ())), self._source_bytes.get(source, 0)

    def iter_older_than(self, seconds_old: float) -> list[tuple[bytes, bytes]]:
        self.cull()
        horizon = time.monotonic() - seconds_old
        return [(k, i.value) for k, _, i in self._items() if i.stored < horizon]

    def __iter__(self) -> Iterator[tuple[bytes, bytes]]:
        self.cull()
        return iter([(k, i.value) for k, _, i in self._items()])
