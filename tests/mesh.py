"""An in-process mesh of real :class:`~meshchat.engine.Engine` objects for tests.

Theory of operation. The harness is the owner every engine expects, with no I/O at all: one
fake clock, one priority queue of events ordered by ``(time, sequence number)`` (the sequence
number keeps ties in insertion order, so a run is deterministic), and two kinds of event:

=========  ================================================================================
DELIVER    a frame reaches a neighbour: ``engine.receive(link, frame, now)`` if the link is
           still up (a frame in flight on a link taken down is lost, as on a real radio)
TICK       an engine's :meth:`~meshchat.engine.Engine.next_deadline` came: ``engine.tick(now)``
=========  ================================================================================

Every call into an engine returns outputs; the harness records all of them per node (tests
read them back with :meth:`Mesh.events`) and carries out each :class:`Transmit` by queueing one
DELIVER per named link, ``latency_ms`` later. After each call it schedules a TICK at the
engine's next deadline. Links are point-to-point and directional ids look like ``"a->b"``
(node a's link to node b); :meth:`Mesh.connect` brings up both directions with ``link_up``.

Identities and random streams come from the mesh seed and the node name, so the same seed and
the same calls give the same outputs (packet ids and nonces still come from the OS; tests
compare counts and contents, not bytes). ``jitter_ms`` adds a random delay (from the mesh seed)
to every delivery, which reorders frames.

Contacts: :meth:`Mesh.introduce` hands one node another's contact card (keys and signed
prekey), as two people exchanging cards would; with ``cards=True`` :meth:`Mesh.send_direct`
introduces the recipient to the sender first, so direct messages use the sealed suite.
:meth:`Mesh.state` collects a node's latest session blobs from its outputs (what a node's store
would hold) and :meth:`Mesh.restart` rebuilds a node's engine from them.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import random
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from meshchat.crypto.channel import ChannelKey
from meshchat.engine import Engine, Output
from meshchat.events import GroupStateUpdated, MessageReceived, PrekeysUpdated, SessionUpdated
from meshchat.identity import Identity
from meshchat.router.actions import Transmit
from meshchat.router.flood import FloodRouter, RouterConfig
from meshchat.router.policy import RelayPolicy
from meshchat.wire.packet import DEFAULT_TTL

__all__ = ["EPOCH_MS", "Mesh", "diameter", "distances", "grid", "link_id", "strip_graph"]

#: The fake clock starts at a plausible wall-clock time so packet timestamps look real.
EPOCH_MS = 1_700_000_000_000

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _Deliver:
    node: str
    link: str
    frame: bytes


@dataclass(frozen=True, slots=True)
class _Tick:
    node: str


def link_id(a: str, b: str) -> str:
    """Node ``a``'s id for its link to node ``b``."""
    return f"{a}->{b}"


class Mesh:
    """N engines on one fake clock, joined by point-to-point links with a fixed latency."""

    def __init__(
        self,
        *,
        seed: int = 0,
        latency_ms: int = 5,
        start_ms: int = EPOCH_MS,
        ttl: int = DEFAULT_TTL,
        policy: Callable[[], RelayPolicy] | None = None,
        config: RouterConfig | None = None,
        jitter_ms: int = 0,
        cards: bool = False,
    ) -> None:
        self.seed = seed
        self.latency_ms = latency_ms
        self.now_ms = start_ms
        self.ttl = ttl
        self._policy = policy
        self._config = config
        self.jitter_ms = jitter_ms
        self.cards = cards
        self._jitter = random.Random(f"{seed}:jitter")
        self.engines: dict[str, Engine] = {}
        self.outputs: dict[str, list[Output]] = {}
        self._up: set[str] = set()  # link ids that are up, both directions listed
        self._queue: list[tuple[int, int, _Deliver | _Tick]] = []
        self._seq = itertools.count()
        self._tick_at: dict[str, int] = {}
        self._msg_ids = itertools.count(1)
        #: one per link named in a Transmit (a point-to-point send)
        self.transmissions = 0
        #: frames delivered to a receiver (sent on a link that was still up)
        self.deliveries = 0
        #: optional hook: return False to lose a frame (node, link, frame) before delivery
        self.filter: Callable[[str, str, bytes], bool] | None = None

    # -- building ---------------------------------------------------------------------------

    def identity_of(self, name: str) -> Identity:
        """The deterministic identity of node ``name`` under this mesh's seed."""

        def seed(part: str) -> bytes:
            return hashlib.blake2b(f"{self.seed}:{name}:{part}".encode(), digest_size=32).digest()

        return Identity.from_seeds(seed("sign"), seed("box"))

    def add(self, name: str) -> Engine:
        if name in self.engines:
            raise ValueError(f"node {name!r} exists")
        engine = self._engine(name)
        self.engines[name] = engine
        self.outputs[name] = []
        return engine

    def _engine(self, name: str) -> Engine:
        identity = self.identity_of(name)
        rng = random.Random(f"{self.seed}:{name}")
        router = FloodRouter(
            identity.node_id,
            identity.public.sign_public,
            config=self._config,
            policy=self._policy() if self._policy else None,
            rng=rng,
        )
        return Engine(identity, name, router=router, ttl=self.ttl, rng=rng)

    def introduce(self, holder: str, card_of: str) -> None:
        """``holder`` adds ``card_of``'s contact card (keys and current signed prekey)."""
        other = self.engines[card_of]
        card = other.card(self.now_ms)
        self._handle(
            holder, self.engines[holder].add_contact(card.identity, card.prekey, self.now_ms)
        )

    def state(self, name: str) -> dict[bytes, bytes]:
        """What ``name``'s store would hold: its latest blob per peer and its prekeys."""
        own = self.engines[name].identity.node_id
        blobs: dict[bytes, bytes] = {}
        for out in self.outputs[name]:
            if isinstance(out, SessionUpdated):
                blobs[out.peer_node_id] = out.blob
            elif isinstance(out, PrekeysUpdated):
                blobs[own] = out.blob
        return blobs

    def group_state(self, name: str) -> dict[bytes, bytes]:
        """What ``name``'s store would hold of its groups: the latest blob per key."""
        return {
            out.key: out.blob for out in self.outputs[name] if isinstance(out, GroupStateUpdated)
        }

    def restart(self, name: str, state: dict[bytes, bytes] | None = None) -> Engine:
        """Replace ``name``'s engine by a new one built from its stored state (the outbox is
        handed over as a node reloads it from its store; links come up again)."""
        old = self.engines[name]
        blobs = self.state(name) if state is None else state
        engine = self._engine(name)
        assert engine.load_sessions(blobs) == []
        assert engine.load_groups(self.group_state(name), self.now_ms) == []
        for channel in old.channels:
            engine.join(channel)
        self.engines[name] = engine
        for item in list(old.outbox._items.values()):
            if item.recipient is not None and not item.is_control:
                engine.send_direct(
                    item.recipient,
                    item.msg_id,
                    item.text,
                    self.now_ms,
                    expires_ms=item.expires_ms,
                    attempts=item.attempts,
                    parents=item.parents,
                    loose=item.loose,
                    sent_ms=item.sent_ms,
                    devices=[item.recipient],  # one copy per item, as the store keeps them
                )
        for peer in self.neighbours(name):
            self._handle(name, engine.link_up(link_id(name, peer), self.now_ms))
        return engine

    def add_many(self, names: Iterable[str]) -> None:
        for name in names:
            self.add(name)

    def connect(self, a: str, b: str) -> None:
        """Bring up the link between ``a`` and ``b`` (both directions)."""
        if a == b or link_id(a, b) in self._up:
            raise ValueError(f"cannot connect {a} and {b}")
        self._up.add(link_id(a, b))
        self._up.add(link_id(b, a))
        self._handle(a, self.engines[a].link_up(link_id(a, b), self.now_ms))
        self._handle(b, self.engines[b].link_up(link_id(b, a), self.now_ms))

    def disconnect(self, a: str, b: str) -> None:
        self._up.discard(link_id(a, b))
        self._up.discard(link_id(b, a))
        self._handle(a, self.engines[a].link_down(link_id(a, b), self.now_ms))
        self._handle(b, self.engines[b].link_down(link_id(b, a), self.now_ms))

    def connect_all(self, edges: Iterable[tuple[str, str]]) -> None:
        for a, b in edges:
            self.connect(a, b)

    def neighbours(self, name: str) -> list[str]:
        prefix = f"{name}->"
        return sorted(link[len(prefix) :] for link in self._up if link.startswith(prefix))

    # -- driving ----------------------------------------------------------------------------

    def new_msg_id(self) -> bytes:
        return next(self._msg_ids).to_bytes(16, "big")

    def send_direct(self, src: str, dst: str, text: str, *, expires_ms: int | None = None) -> bytes:
        """``src`` sends a direct message to ``dst`` now; returns its message id."""
        msg_id = self.new_msg_id()
        recipient = self.engines[dst].identity.public if dst in self.engines else None
        if recipient is None:
            recipient = self.identity_of(dst).public
        elif self.cards and not self.engines[src].direct.can_seal(recipient):
            self.introduce(src, dst)
        outputs = self.engines[src].send_direct(
            recipient, msg_id, text, self.now_ms, expires_ms=expires_ms
        )
        self._handle(src, outputs)
        return msg_id

    def send_channel(self, src: str, channel: ChannelKey, text: str) -> bytes:
        msg_id = self.new_msg_id()
        outputs = self.engines[src].send_channel(channel.channel_id, msg_id, text, self.now_ms)
        self._handle(src, outputs)
        return msg_id

    def create_group(self, admin: str, name: str, members: Iterable[str]) -> bytes:
        """``admin`` makes a private group of ``members``; the admin and each member hold
        each other's cards (only a contact can add someone to a group); returns the group id."""
        identities = []
        for member in members:
            if not self.engines[admin].direct.can_seal(self.engines[member].identity.public):
                self.introduce(admin, member)
            if not self.engines[member].direct.knows(self.engines[admin].identity.node_id):
                self.introduce(member, admin)
            identities.append(self.engines[member].identity.public)
        group, outputs = self.engines[admin].create_group(name, identities, self.now_ms)
        self._handle(admin, outputs)
        return group.group_id

    def send_group(self, src: str, group_id: bytes, text: str) -> bytes:
        msg_id = self.new_msg_id()
        self._handle(src, self.engines[src].send_group(group_id, msg_id, text, self.now_ms))
        return msg_id

    def announce(self, src: str) -> None:
        self._handle(src, self.engines[src].announce(self.now_ms))

    def tick(self, *names: str) -> None:
        """Tick nodes now, as a node's housekeeping does every second (expires seen ids)."""
        for name in names or tuple(self.engines):
            self._handle(name, self.engines[name].tick(self.now_ms))

    def inject(self, node: str, frame: bytes, link: str | None = None) -> list[Output]:
        """Hand ``frame`` to ``node`` now as if it came from ``link``; returns its outputs."""
        outputs = self.engines[node].receive(link, frame, self.now_ms)
        self._handle(node, outputs)
        return outputs

    def run(self, for_ms: int, *, max_events: int = 2_000_000) -> None:
        """Process every event up to ``now + for_ms``; the clock then stands at that time."""
        until = self.now_ms + for_ms
        for _ in range(max_events):
            if not (self._queue and self._queue[0][0] <= until):
                break
            at, _, event = heapq.heappop(self._queue)
            self.now_ms = at
            if isinstance(event, _Tick):
                if self._tick_at.get(event.node) == at:
                    del self._tick_at[event.node]
                self._handle(event.node, self.engines[event.node].tick(at))
            else:
                if event.link not in self._up:
                    continue  # the link went down while the frame was in flight
                if self.filter is not None and not self.filter(event.node, event.link, event.frame):
                    continue
                self.deliveries += 1
                engine = self.engines[event.node]
                self._handle(event.node, engine.receive(event.link, event.frame, at))
        else:
            raise RuntimeError(f"more than {max_events} events: a livelock?")
        self.now_ms = until

    # -- reading results --------------------------------------------------------------------

    def events(self, node: str, cls: type[T]) -> list[T]:
        return [o for o in self.outputs[node] if isinstance(o, cls)]

    def received(self, node: str) -> list[MessageReceived]:
        return self.events(node, MessageReceived)

    def received_counts(self, msg_id: bytes) -> Counter[str]:
        """How many times each node reported :class:`MessageReceived` for ``msg_id``."""
        return Counter(
            {
                name: sum(1 for r in self.received(name) if r.msg_id == msg_id)
                for name in self.engines
            }
        )

    # -- internals --------------------------------------------------------------------------

    def _handle(self, node: str, outputs: list[Output]) -> None:
        self.outputs[node].extend(outputs)
        for output in outputs:
            if isinstance(output, Transmit):
                for link in output.links:
                    self.transmissions += 1
                    peer = link.split("->", 1)[1]
                    delay = self.latency_ms
                    if self.jitter_ms:
                        delay += self._jitter.randrange(self.jitter_ms + 1)
                    self._push(
                        self.now_ms + delay,
                        _Deliver(peer, link_id(peer, node), output.frame),
                    )
        deadline = self.engines[node].next_deadline()
        if deadline is not None:
            deadline = max(deadline, self.now_ms)
            current = self._tick_at.get(node)
            if current is None or deadline < current:
                self._tick_at[node] = deadline
                self._push(deadline, _Tick(node))

    def _push(self, at: int, event: _Deliver | _Tick) -> None:
        heapq.heappush(self._queue, (at, next(self._seq), event))


def grid(rows: int, cols: int) -> tuple[list[str], list[tuple[str, str]]]:
    """Node names and edges of a ``rows`` x ``cols`` grid (4-neighbour)."""
    names = [f"n{r}_{c}" for r in range(rows) for c in range(cols)]
    edges = [(f"n{r}_{c}", f"n{r}_{c + 1}") for r in range(rows) for c in range(cols - 1)]
    edges += [(f"n{r}_{c}", f"n{r + 1}_{c}") for r in range(rows - 1) for c in range(cols)]
    return names, edges


def strip_graph(
    n: int, seed: int, *, length: float = 6.0, radius: float = 1.0
) -> tuple[list[str], list[tuple[str, str]]]:
    """A connected random geometric graph on a long strip (``length`` x 1), seeded.

    Points are placed uniformly; two nodes are linked when closer than ``radius``. Placement
    is redrawn (from the same seeded stream) until the graph is connected.
    """
    rng = random.Random(seed)
    names = [f"g{i:02d}" for i in range(n)]
    for _ in range(1000):
        points = sorted((rng.uniform(0, length), rng.uniform(0, 1)) for _ in range(n))
        edges = [
            (names[i], names[j])
            for i in range(n)
            for j in range(i + 1, n)
            if (points[i][0] - points[j][0]) ** 2 + (points[i][1] - points[j][1]) ** 2 < radius**2
        ]
        if len(distances(names, edges, names[0])) == n:
            return names, edges
    raise RuntimeError("no connected placement found")


def distances(names: list[str], edges: list[tuple[str, str]], start: str) -> dict[str, int]:
    """Hop distances from ``start`` to every node it can reach (breadth-first search)."""
    adjacent: dict[str, list[str]] = {name: [] for name in names}
    for a, b in edges:
        adjacent[a].append(b)
        adjacent[b].append(a)
    dist = {start: 0}
    frontier = [start]
    while frontier:
        nxt = []
        for node in frontier:
            for peer in adjacent[node]:
                if peer not in dist:
                    dist[peer] = dist[node] + 1
                    nxt.append(peer)
        frontier = nxt
    return dist


def diameter(names: list[str], edges: list[tuple[str, str]]) -> int:
    return max(max(distances(names, edges, name).values()) for name in names)
