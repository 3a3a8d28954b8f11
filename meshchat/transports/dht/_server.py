"""The Kademlia node a meshchat gateway runs: the library's ``Server`` with guarded parts.

:class:`GuardedServer` is ``kademlia.network.Server`` with :class:`~._protocol.GuardedProtocol`
(limits on what peers may ask and answer), a :class:`~._storage.RecordStorage` (checked,
bounded records, quotas per source) that is really used (the library replaces a storage that
is empty, hence falsy, by its own unbounded one), and the lookups of :mod:`._crawl`: ``set``,
bootstrap and refresh keep at most ``per_ip`` nodes of one address among the nearest, and
:meth:`GuardedServer.get_checked` returns only values that pass a check.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from kademlia.network import Server
from kademlia.node import Node
from kademlia.utils import digest

from meshchat.transports.dht._crawl import CheckedValueCrawl, DiverseNodeCrawl
from meshchat.transports.dht._protocol import GuardedProtocol, GuardLimits
from meshchat.transports.dht._storage import RecordStorage

__all__ = ["GuardedServer"]


class GuardedServer(Server):  # type: ignore[misc]
    """A Kademlia node whose protocol, storage and lookups resist hostile peers."""

    protocol_class = GuardedProtocol

    def __init__(self, ksize: int, alpha: int, storage: RecordStorage, limits: GuardLimits) -> None:
        super().__init__(ksize=ksize, alpha=alpha, storage=storage)
        self.storage = storage
        self.limits = limits

    def _create_protocol(self) -> GuardedProtocol:
        return GuardedProtocol(self.node, self.storage, self.ksize, self.limits)

    @property
    def counters(self) -> dict[str, int]:
        protocol = self.protocol
        return dict(protocol.counters) if isinstance(protocol, GuardedProtocol) else {}

    def _crawl(self, node: Node, peers: list[Node]) -> DiverseNodeCrawl:
        return DiverseNodeCrawl(
            self.protocol, node, peers, self.ksize, self.alpha, self.limits.per_ip
        )

    async def bootstrap(self, addrs: list[tuple[str, int]]) -> list[Node]:
        gathered = await asyncio.gather(*map(self.bootstrap_node, addrs))
        nodes = [node for node in gathered if node is not None]
        found: list[Node] = await self._crawl(self.node, nodes).find()
        return found

    async def bootstrap_node(self, addr: tuple[str, int]) -> Node | None:
        result = await self.protocol.ping(addr, self.node.id)
        if not result[0] or not isinstance(result[1], bytes) or len(result[1]) != 20:
            return None
        return Node(result[1], addr[0], addr[1])

    async def _refresh_table(self) -> None:
        crawls = []
        for node_id in self.protocol.get_refresh_ids():
            node = Node(node_id)
            nearest = self.protocol.router.find_neighbors(node, self.alpha)
            crawls.append(self._crawl(node, nearest).find())
        await asyncio.gather(*crawls)
        for dkey, value in self.storage.iter_older_than(3600):
            await self.set_digest(dkey, value)

    async def set_digest(self, dkey: bytes, value: Any) -> bool:
        node = Node(dkey)
        nearest = self.protocol.router.find_neighbors(node)
        if not nearest:
            return False
        nodes: list[Node] = await self._crawl(node, nearest).find()
        if not nodes:
            return False
        biggest = max(n.distance_to(node) for n in nodes)
        if self.node.distance_to(node) < biggest:
            self.storage[dkey] = value
        results = [self.protocol.call_store(n, dkey, value) for n in nodes]
        return any(ok for ok, _ in await asyncio.gather(*results))

    async def get_checked(
        self, key: bytes, check: Callable[[object], bool], max_values: int = 4
    ) -> list[bytes]:
        """The values stored under ``key`` (here or in the network) that pass ``check``."""
        dkey = digest(key)
        for local in self.storage.values_of(dkey):
            if check(local):
                return [local]
        node = Node(dkey)
        nearest = self.protocol.router.find_neighbors(node)
        if not nearest:
            return []
        crawl = CheckedValueCrawl(
            self.protocol,
            node,
            nearest,
            self.ksize,
            self.alpha,
            self.limits.per_ip,
            check,
            max_values,
        )
        return await crawl.find()
