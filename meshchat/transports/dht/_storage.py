"""What a meshchat DHT node keeps for others: checked records only, bounded, expiring.

The ``kademlia`` package stores whatever a peer sends (``rpc_store`` writes straight into the
storage object). This storage refuses anything that is not a valid meshchat record for the key
it is stored under (:func:`check_record_at`), keeps at most ``max_items`` records (the ones
stored longest ago are evicted first) and forgets each at its own expiry. A refused value is
dropped silently: the storing peer gets no signal it could use to probe.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

from kademlia.storage import IStorage

from meshchat.errors import PacketError
from meshchat.transports.dht._records import check_record_at

__all__ = ["RecordStorage"]


class RecordStorage(IStorage):  # type: ignore[misc]
    """A bounded Kademlia storage of checked meshchat records."""

    def __init__(self, max_items: int = 4096, clock: Callable[[], float] = time.time) -> None:
        self.max_items = max_items
        self.clock = clock
        #: dkey -> (stored at monotonic time, expires_s, record)
        self._data: OrderedDict[bytes, tuple[float, int, bytes]] = OrderedDict()
        self.refused = 0

    def __setitem__(self, key: bytes, value: Any) -> None:
        try:
            record = check_record_at(key, value, self.clock())
        except PacketError:
            self.refused += 1
            return
        current = self._data.get(key)
        if current is not None and current[1] > record.expires_s:
            return  # keep the record that lives longer: an old copy must not displace a new one
        self._data.pop(key, None)
        self._data[key] = (time.monotonic(), record.expires_s, value)
        while len(self._data) > self.max_items:
            self._data.popitem(last=False)

    def cull(self) -> None:
        now = self.clock()
        for key in [k for k, (_, expires, _) in self._data.items() if expires <= now]:
            del self._data[key]

    def get(self, key: bytes, default: Any = None) -> Any:
        self.cull()
        item = self._data.get(key)
        return item[2] if item is not None else default

    def __getitem__(self, key: bytes) -> Any:
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def __len__(self) -> int:
        return len(self._data)

    def iter_older_than(self, seconds_old: float) -> list[tuple[bytes, bytes]]:
        self.cull()
        horizon = time.monotonic() - seconds_old
        return [(k, v) for k, (stored, _, v) in self._data.items() if stored < horizon]

    def __iter__(self) -> Iterator[tuple[bytes, bytes]]:
        self.cull()
        return iter([(k, v) for k, (_, _, v) in self._data.items()])
