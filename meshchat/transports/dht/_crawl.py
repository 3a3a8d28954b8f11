"""Kademlia lookups that an eclipse from a few addresses, or a lying node, cannot end early.

The ``kademlia`` package's lookups trust what they are told. ``ValueSpiderCrawl`` stops at the
first value any node returns (a forged or mis-filed record ends the lookup, and the real one,
one hop further, is never asked for), and both crawls keep the ``ksize`` nodes nearest the key
whoever they are, so nodes whose ids an attacker placed next to a key make up the whole result
(an *eclipse*: a ``set`` stores only at them, a ``get`` asks only them).

- :class:`DiverseNodeHeap` keeps at most ``per_ip`` nodes of one source (an IPv4 address or
  an IPv6 /64) among the candidates, so nodes from one address take at most that many of the
  ``ksize`` places.
- :class:`DiverseNodeCrawl` is ``NodeSpiderCrawl`` over that heap (for ``set``, bootstrap and
  refresh).
- :class:`CheckedValueCrawl` asks the nearest nodes for a value, passes every value it gets to
  a ``check`` (for meshchat: does it open as a record for exactly this key, holding a packet
  not yet handed over), ignores those that fail and goes on asking; it ends after the round in
  which a value passed (at most ``max_values`` of them) or when every one of the nearest nodes
  was asked. The nearest node that had none is given the first (Kademlia's caching), as the
  library does.

Answers have been checked for shape by :class:`~._protocol.GuardedProtocol` before they get here.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Any

from kademlia.crawling import NodeSpiderCrawl, RPCFindResponse, SpiderCrawl
from kademlia.node import Node, NodeHeap

from meshchat.transports.dht._storage import source_of

__all__ = ["CheckedValueCrawl", "DiverseNodeCrawl", "DiverseNodeHeap"]


class DiverseNodeHeap(NodeHeap):  # type: ignore[misc]
    """A :class:`NodeHeap` holding at most ``per_ip`` nodes of any one source, and none
    that ``skip`` says failed us lately."""

    def __init__(
        self, node: Node, maxsize: int, per_ip: int, skip: Callable[[Node], bool] | None = None
    ) -> None:
        super().__init__(node, maxsize)
        self.per_ip = per_ip
        self.skip = skip
        self.refused = 0

    def push(self, nodes: Any) -> None:
        if not isinstance(nodes, list):
            nodes = [nodes]
        for node in nodes:
            if node in self or (self.skip is not None and self.skip(node)):
                continue
            source = source_of(node.ip)
            same = sum(1 for _, other in self.heap if source_of(other.ip) == source)
            if node.ip is not None and same >= self.per_ip:
                self.refused += 1
                continue
            heapq.heappush(self.heap, (self.node.distance_to(node), node))


class DiverseNodeCrawl(NodeSpiderCrawl):  # type: ignore[misc]
    """``NodeSpiderCrawl`` over a :class:`DiverseNodeHeap`."""

    def __init__(
        self, protocol: Any, node: Node, peers: list[Node], ksize: int, alpha: int, per_ip: int
    ) -> None:
        super().__init__(protocol, node, [], ksize, alpha)
        self.nearest = DiverseNodeHeap(node, ksize, per_ip, getattr(protocol, "shunned", None))
        self.nearest.push(peers)


class CheckedValueCrawl(SpiderCrawl):  # type: ignore[misc]
    """Ask the nearest nodes for a key's value; keep what passes ``check`` (see module doc)."""

    def __init__(
        self,
        protocol: Any,
        node: Node,
        peers: list[Node],
        ksize: int,
        alpha: int,
        per_ip: int,
        check: Callable[[object], bool],
        max_values: int = 4,
    ) -> None:
        super().__init__(protocol, node, [], ksize, alpha)
        self.nearest = DiverseNodeHeap(node, ksize, per_ip, getattr(protocol, "shunned", None))
        self.nearest.push(peers)
        self.nearest_without_value = NodeHeap(node, 1)
        self.check = check
        self.max_values = max_values
        self.values: list[bytes] = []
        self.rejected = 0

    async def find(self) -> list[bytes]:
        result: list[bytes] = await self._find(self.protocol.call_find_value)
        return result

    async def _nodes_found(self, responses: dict[bytes, Any]) -> list[bytes]:
        toremove = []
        for peerid, raw in responses.items():
            response = RPCFindResponse(raw)
            if not response.happened():
                toremove.append(peerid)
            elif response.has_value():
                value = response.get_value()
                if value in self.values:
                    continue
                if not self.check(value):
                    self.rejected += 1
                elif len(self.values) < self.max_values:
                    self.values.append(value)
            else:
                peer = self.nearest.get_node(peerid)
                if peer is not None:
                    self.nearest_without_value.push(peer)
                self.nearest.push(response.get_node_list())
        self.nearest.remove(toremove)
        if self.values or self.nearest.have_contacted_all():
            if self.values:
                peer = self.nearest_without_value.popleft()
                if peer is not None:
                    await self.protocol.call_store(peer, self.node.id, self.values[0])
            return self.values
        return await self.find()
