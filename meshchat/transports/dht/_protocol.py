"""The Kademlia protocol with guards: what a stranger's datagrams can make a meshchat node do.

The ``kademlia`` package (over ``rpcudp``) trusts its peers: an undecodable datagram or a request
with arguments of the wrong type raises inside a task, an answer is used as it came (a node list
that is not a list of ``(id, ip, port)`` crashes the lookup that asked, a value of any type and
size stops it), every request from a node id never seen enters the routing table and makes this
node send that id every stored record it is closer to, and nothing limits how often one address
may ask. :class:`GuardedProtocol` subclasses its protocol and keeps the library's behaviour for
well-formed traffic within these limits (:class:`GuardLimits`):

- a request longer than ``max_datagram`` bytes is dropped unread, and so is an answer longer
  than ``max_answer`` or to no question of ours that is still open (before it is decoded);
- requests are rate-limited per source address (token bucket of ``source_rate`` per second,
  burst ``source_burst``; at most ``max_sources`` sources tracked, least recent forgotten) and
  in all (``total_rate``/``total_burst``, which requests from the sources of the routing
  table's contacts do not use up); an excess request is dropped unanswered;
- a request is answered only if its method is one of Kademlia's five and its arguments have
  their types and sizes (node ids and keys 20 bytes, values at most ``MAX_RECORD`` bytes);
- an answer is used only if it has the shape its request expects: the asked node's own id for
  ``ping``, at most ``ksize`` well-formed contacts (20-byte id, IP address literal, port) for
  ``find_node``, and those or ``{"value": bytes}`` of at most ``MAX_RECORD`` bytes for
  ``find_value``; a malformed answer counts as no answer (the peer leaves the routing table);
- ``STORE`` goes to :meth:`RecordStorage.put` charged to the sender's source;
- a node that sends us a request enters the routing table only after it answered a ping of
  ours with the same id (at most ``verifying`` such pings at a time), so requests from fresh
  ids, or from an address that never answers, add no dead contacts;
- the routing table holds at most ``per_ip`` contacts of one source (IPv4 address or IPv6 /64:
  an eclipse from one address gets that many places), and one per address and port;
- an address that did not answer, or answered garbage, is shunned for ``shun_s``: lookups do
  not ask it again when other nodes still name it (a swarm that a crowd of nodes joined and
  left pays each dead contact's timeout once, not on every lookup);
- records are handed over to a new contact (Kademlia's replication on join) only when it
  answered a request of ours, at most ``handoff`` records each, of at most ``8 * handoff``
  examined: a request from a fresh node id costs no scan of the storage and sends nothing.

Everything refused is counted in :attr:`GuardedProtocol.counters`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import umsgpack  # type: ignore[import-untyped]
from kademlia.node import Node
from kademlia.protocol import KademliaProtocol

from meshchat.transports.dht._records import MAX_RECORD
from meshchat.transports.dht._storage import RecordStorage, source_of

__all__ = ["GuardLimits", "GuardedProtocol", "valid_contacts"]

log = logging.getLogger(__name__)

_ID = 20
_HEADER = 1 + _ID  # request/response byte and message id


@dataclass(frozen=True, slots=True)
class GuardLimits:
    """What one source, and all of them, may ask of a node."""

    max_datagram: int = 8192
    max_answer: int = 16384
    source_rate: float = 100.0
    source_burst: float = 400.0
    total_rate: float = 2000.0
    total_burst: float = 4000.0
    max_sources: int = 4096
    per_ip: int = 2
    handoff: int = 32
    #: seconds to wait for an answer (the library waits 5: every dead contact on a lookup's
    #: path costs a round that long)
    rpc_timeout: float = 2.0
    verifying: int = 64
    #: an address that did not answer (or answered garbage) is not asked again for this long,
    #: whoever names it in a node list (at most ``max_sources`` such addresses remembered)
    shun_s: float = 120.0


class _Bucket:
    __slots__ = ("level", "stamp")

    def __init__(self, level: float, stamp: float) -> None:
        self.level = level
        self.stamp = stamp

    def take(self, rate: float, burst: float, now: float) -> bool:
        self.level = min(burst, self.level + (now - self.stamp) * rate)
        self.stamp = now
        if self.level < 1:
            return False
        self.level -= 1
        return True


def _is_id(value: object) -> bool:
    return isinstance(value, bytes) and len(value) == _ID


def _contact(item: object) -> tuple[bytes, str, int] | None:
    if not isinstance(item, list | tuple) or len(item) != 3:
        return None
    node_id, ip, port = item
    if not _is_id(node_id) or not isinstance(ip, str) or type(port) is not int:
        return None
    if not 0 < port < 65536 or len(ip) > 45:
        return None
    try:
        ipaddress.ip_address(ip)
    except ValueError:
        return None
    return node_id, ip, port


def valid_contacts(value: object, ksize: int) -> list[tuple[bytes, str, int]] | None:
    """The contacts of a ``find_node`` answer, or None if it is not at most ``ksize`` of them."""
    if not isinstance(value, list | tuple) or len(value) > ksize:
        return None
    contacts = [_contact(item) for item in value]
    if any(c is None for c in contacts):
        return None
    return [c for c in contacts if c is not None]


def _valid_value(value: object) -> bool:
    if not isinstance(value, dict) or set(value) != {"value"}:
        return False
    record = value["value"]
    return isinstance(record, bytes) and len(record) <= MAX_RECORD


# method -> checks of its arguments (after the sender's node id, always a 20-byte id)
def _storable(value: object) -> bool:
    if isinstance(value, bytes | str):
        return len(value) <= MAX_RECORD
    return isinstance(value, int | float)


_REQUESTS: dict[str, tuple[Callable[[object], bool], ...] | None] = {
    "ping": (),
    "stun": None,
    "store": (_is_id, _storable),
    "find_node": (_is_id,),
    "find_value": (_is_id,),
}


class GuardedProtocol(KademliaProtocol):  # type: ignore[misc]
    """Kademlia's protocol behind the limits of :class:`GuardLimits` (see the module doc)."""

    def __init__(
        self, source_node: Node, storage: RecordStorage, ksize: int, limits: GuardLimits
    ) -> None:
        super().__init__(source_node, storage, ksize)
        self._wait_timeout = limits.rpc_timeout
        self.limits = limits
        self.counters: dict[str, int] = {}
        self._sources: OrderedDict[str, _Bucket] = OrderedDict()
        self._total = _Bucket(limits.total_burst, time.monotonic())
        self._tasks: set[asyncio.Future[Any]] = set()
        self._verifying: set[tuple[str, int]] = set()
        self._shunned: OrderedDict[tuple[str, int], float] = OrderedDict()
        self._contacts: frozenset[str] = frozenset()
        self._contacts_at = -2.0

    def _count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1

    # -- incoming ------------------------------------------------------------------------

    def datagram_received(self, data: bytes, addr: Any) -> None:
        limits, kind = self.limits, data[:1]
        if len(data) <= _HEADER:
            self._count("dropped.size")
        elif kind == b"\x01":  # an answer: only to a question of ours, still open
            if data[1:_HEADER] not in self._outstanding:
                self._count("dropped.unasked")
            elif len(data) > limits.max_answer:
                self._count("dropped.size")
            else:
                self._spawn(self._solve_datagram(data, addr))
        elif kind != b"\x00":
            self._count("dropped.kind")
        elif len(data) > limits.max_datagram:
            self._count("dropped.size")
        elif not self._admit(addr[0]):
            self._count("dropped.rate")
        else:
            self._spawn(self._solve_datagram(data, addr))

    def _spawn(self, job: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(job)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _admit(self, ip: str) -> bool:
        limits, now = self.limits, time.monotonic()
        source = source_of(ip)
        bucket = self._sources.get(source)
        if bucket is None:
            bucket = self._sources[source] = _Bucket(limits.source_burst, now)
            while len(self._sources) > limits.max_sources:
                self._sources.popitem(last=False)
        else:
            self._sources.move_to_end(source)
        if not bucket.take(limits.source_rate, limits.source_burst, now):
            return False
        # a flood from many addresses may use up the total, but not against our own contacts
        return source in self._contact_sources(now) or self._total.take(
            limits.total_rate, limits.total_burst, now
        )

    def _contact_sources(self, now: float) -> frozenset[str]:
        """The sources of the routing table's contacts (recomputed at most once a second)."""
        if now - self._contacts_at > 1.0:
            self._contacts_at = now
            self._contacts = frozenset(
                source_of(n.ip) for b in self.router.buckets for n in b.nodes.values()
            )
        return self._contacts

    async def _solve_datagram(self, datagram: bytes, address: Any) -> None:
        try:
            data = umsgpack.unpackb(datagram[_HEADER:])
        except Exception:  # umsgpack raises many types for garbage
            self._count("dropped.undecodable")
            return
        msg_id = datagram[1:_HEADER]
        if datagram[:1] == b"\x01":
            self._accept_response(msg_id, data, address)
        elif datagram[:1] == b"\x00":
            await self._accept_request(msg_id, data, address)
        else:
            self._count("dropped.kind")

    def _accept_response(self, msg_id: bytes, data: Any, address: Any) -> None:
        outstanding = self._outstanding.get(msg_id)
        if outstanding is None or outstanding[0].done():
            self._count("dropped.unasked")
            return
        super()._accept_response(msg_id, data, address)

    async def _accept_request(self, msg_id: bytes, data: Any, address: Any) -> None:
        if not isinstance(data, list) or len(data) != 2 or not isinstance(data[1], list):
            self._count("dropped.malformed")
            return
        name, args = data
        checks = _REQUESTS.get(name) if isinstance(name, str) else None
        if name != "stun" and (
            checks is None
            or len(args) != len(checks) + 1
            or not _is_id(args[0])
            or not all(check(arg) for check, arg in zip(checks, args[1:], strict=True))
        ):
            self._count("dropped.malformed")
            return
        if name == "stun" and args:
            self._count("dropped.malformed")
            return
        self._count(f"rpc.{name}")
        try:
            await super()._accept_request(msg_id, data, address)
        except Exception:  # a bug here must not take the node down, nor spam the log
            log.debug("DHT request %s from %s failed", name, address, exc_info=True)
            self._count("failed.request")

    def rpc_store(self, sender: Any, nodeid: bytes, key: bytes, value: Any) -> bool:
        self.welcome_if_new(Node(nodeid, sender[0], sender[1]))
        if isinstance(self.storage, RecordStorage):
            self.storage.put(key, value, source_of(sender[0]))
        else:
            self.storage[key] = value
        return True

    # -- the routing table ---------------------------------------------------------------

    def welcome_if_new(self, node: Node, handoff: bool = False) -> None:
        """A node that sent us a request: it enters the routing table only once it answers a
        ping of ours with the same id (a flood from fresh ids, or from an address that does
        not answer, adds nothing), at most ``limits.verifying`` such pings at a time."""
        if not self._admissible(node):
            return
        home = (node.ip, node.port)
        if home in self._verifying or len(self._verifying) >= self.limits.verifying:
            self._count("refused.verifying")
            return
        self._verifying.add(home)
        self._spawn(self._verify(node, home))

    async def _verify(self, node: Node, home: tuple[str, int]) -> None:
        try:
            await self.call_ping(node)  # its answer adds it (handle_call_response)
        finally:
            self._verifying.discard(home)

    def _admissible(self, node: Node) -> bool:
        """Whether ``node`` may enter the routing table: new, not us, no other id at its
        address and port, fewer than ``limits.per_ip`` contacts at its IP address."""
        if not self.router.is_new_node(node) or node.id == self.source_node.id:
            return False
        same_ip, source = 0, source_of(node.ip)
        for bucket in self.router.buckets:
            for known in (*bucket.nodes.values(), *bucket.replacement_nodes.values()):
                if known.same_home_as(node):
                    self._count("refused.same-address")
                    return False
                same_ip += source_of(known.ip) == source
        if same_ip >= self.limits.per_ip:
            self._count("refused.per-ip")
            return False
        return True

    def _add_contact(self, node: Node) -> None:
        """A node that answered us: into the routing table (within the limits), and handed
        the records it should hold, at most ``limits.handoff``."""
        if self._admissible(node):
            self._hand_over(node)
            self.router.add_contact(node)

    def _hand_over(self, node: Node) -> None:
        sent = 0
        for examined, (key, value) in enumerate(self.storage):
            if sent >= self.limits.handoff or examined >= 8 * self.limits.handoff:
                break
            keynode = Node(key)
            neighbors = self.router.find_neighbors(keynode)
            if neighbors:
                last = neighbors[-1].distance_to(keynode)
                first = neighbors[0].distance_to(keynode)
                new_close = node.distance_to(keynode) < last
                this_closest = self.source_node.distance_to(keynode) < first
                if not (new_close and this_closest):
                    continue
            self._spawn(self.call_store(node, key, value))
            sent += 1

    def handle_call_response(self, result: Any, node: Node) -> Any:
        if not result[0]:
            self.router.remove_contact(node)
            self._shun(node)
            return result
        self._shunned.pop((node.ip, node.port), None)
        self._add_contact(node)
        return result

    def _shun(self, node: Node) -> None:
        self._shunned[(node.ip, node.port)] = time.monotonic() + self.limits.shun_s
        self._shunned.move_to_end((node.ip, node.port))
        while len(self._shunned) > self.limits.max_sources:
            self._shunned.popitem(last=False)

    def shunned(self, node: Node) -> bool:
        """Whether ``node``'s address failed us lately (lookups skip it)."""
        until = self._shunned.get((node.ip, node.port))
        if until is None:
            return False
        if until < time.monotonic():
            del self._shunned[(node.ip, node.port)]
            return False
        return True

    # -- outgoing: answers are checked before anyone uses them ---------------------------

    def _failed(self, node: Node, what: str) -> tuple[bool, None]:
        self._count(f"dropped.answer.{what}")
        self.router.remove_contact(node)
        self._shun(node)
        return False, None

    async def call_ping(self, node_to_ask: Node) -> Any:
        result = await self.ping((node_to_ask.ip, node_to_ask.port), self.source_node.id)
        if result[0] and result[1] != node_to_ask.id:
            return self._failed(node_to_ask, "ping")
        return self.handle_call_response(result, node_to_ask)

    async def call_store(self, node_to_ask: Node, key: bytes, value: Any) -> Any:
        address = (node_to_ask.ip, node_to_ask.port)
        try:
            result = await self.store(address, self.source_node.id, key, value)
        except Exception:  # rpcudp refuses requests over 8 KB
            self._count("failed.store")
            return False, None
        return self.handle_call_response(result, node_to_ask)

    async def call_find_node(self, node_to_ask: Node, node_to_find: Node) -> Any:
        address = (node_to_ask.ip, node_to_ask.port)
        result = await self.find_node(address, self.source_node.id, node_to_find.id)
        if result[0]:
            contacts = valid_contacts(result[1], self.router.ksize)
            if contacts is None:
                return self._failed(node_to_ask, "find_node")
            result = (True, contacts)
        return self.handle_call_response(result, node_to_ask)

    async def call_find_value(self, node_to_ask: Node, node_to_find: Node) -> Any:
        address = (node_to_ask.ip, node_to_ask.port)
        result = await self.find_value(address, self.source_node.id, node_to_find.id)
        if result[0] and not _valid_value(result[1]):
            contacts = valid_contacts(result[1], self.router.ksize)
            if contacts is None:
                return self._failed(node_to_ask, "find_value")
            result = (True, contacts)
        return self.handle_call_response(result, node_to_ask)

    def _timeout(self, msg_id: bytes) -> None:
        outstanding = self._outstanding.pop(msg_id, None)
        if outstanding is not None and not outstanding[0].done():
            outstanding[0].set_result((False, None))

    def connection_lost(self, exc: Exception | None) -> None:
        for future, timeout in self._outstanding.values():
            timeout.cancel()
            with contextlib.suppress(asyncio.InvalidStateError):
                future.set_result((False, None))
        self._outstanding.clear()
