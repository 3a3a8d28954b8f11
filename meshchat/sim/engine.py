"""The discrete-event mesh simulator: meshchat's own router on every node of a virtual plane.

Theory of operation. Every node owns a real :class:`~meshchat.router.FloodRouter` (imported,
not copied) with the policy under test. The simulator is the owner the router expects: it feeds
``receive`` / ``originate`` / ``tick`` / ``link_up`` / ``link_down`` and executes the returned
actions, exactly as a :mod:`meshchat.node` would, but against virtual time and a radio model.

One heap orders all events by (time in microseconds, sequence number); the sequence number
makes ties deterministic. Events:

=========  ==============================================================================
RX         a transmission reaches its receivers; each live one still in range gets
           ``receive(link, frame, now_ms, rssi)``
TIMER      a router's :meth:`next_deadline` came: ``tick(now_ms)``
ORIGINATE  a random live node floods broadcast number ``b``
DOWN / UP  churn: a node switches off or on; its neighbours see ``link_down`` / ``link_up``
MOVE       mobility step: mobile nodes walk toward their waypoints; links are re-derived
PART       a partition line appears or disappears
HELLO      a node sends its one-hop hello (neighbour-aware policies only, see below)
=========  ==============================================================================

Radio model. Each node gives its router one link per neighbour in range (link id = the
neighbour's index as text), so the router's "do not send back to a link that already sent us a
copy" works. One ``Transmit`` action is **one transmission**: the sender's radio is busy for the
frame's airtime (transmissions from one node queue behind each other), then, after the medium's
latency (drawn once per transmission), the frame reaches **the neighbours the action names**,
each losing it independently with probability ``loss``. Neighbours not named do not hear it.
Collisions are not modelled: BLE connections and TCP retransmit at the link layer, and what
they still lose is what ``loss`` stands for.

Hellos. A policy that reads neighbour lists (:class:`~meshchat.router.policy.NeighbourAware`)
gets them the way a real node would: every ``hello_interval_ms`` (random phase), and
``hello_trigger_ms`` after one of its links changed, a node sends one transmission carrying its
short id, a sequence number and its neighbours' short ids (:func:`hello_size`). Each neighbour
hears it with probability ``1 - loss`` and records it in its router's
:class:`~meshchat.router.policy.NeighbourTable`. Hellos take airtime like any frame and are
counted in :attr:`RunResult.hellos`. Before time zero the mesh has already been running for
``hello_warmup_rounds`` hello intervals (lossy too), so the first broadcast does not meet
empty tables; those warm-up hellos are not counted. Other policies get no hellos and pay
nothing.

Randomness comes from separate streams derived from the scenario's seed (placement, channel,
routers, churn, mobility, broadcasts), so the same scenario gives the same result, and two
policies run on the same scenario see the same nodes, origins, churn and movement.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import math
import random
from dataclasses import dataclass, field
from typing import cast

from meshchat.errors import UsageError
from meshchat.identity import Identity
from meshchat.router.actions import Action, Deliver, Drop, Transmit
from meshchat.router.flood import FloodRouter, RouterConfig
from meshchat.router.policy import SHORT_ID_SIZE, NeighbourAware, NeighbourCoverage, RelayPolicy
from meshchat.sim.metrics import BroadcastResult, RunResult
from meshchat.sim.scenario import Scenario
from meshchat.sim.topology import Topology
from meshchat.wire import codec
from meshchat.wire.packet import BROADCAST, PacketKind, Suite

__all__ = ["HELLO_OVERHEAD_BYTES", "Simulator", "hello_size", "simulate"]

_RX, _TIMER, _ORIGINATE, _DOWN, _UP, _MOVE, _PART_START, _PART_END, _HELLO = range(9)
#: A hello besides its list, sent as an ordinary signed meshchat packet with TTL 1 (packet id,
#: origin key, destination, times, Ed25519 signature: 140 bytes with an empty body) whose body
#: is ``[seq, ids]``, the short ids concatenated in one byte string (3 bytes of CBOR). Signed,
#: so that nobody can suppress relays by advertising neighbours in another node's name.
HELLO_OVERHEAD_BYTES = 143


def hello_size(neighbours: int) -> int:
    """Bytes of a hello listing ``neighbours`` short ids."""
    return HELLO_OVERHEAD_BYTES + SHORT_ID_SIZE * neighbours


_NEVER = 1 << 62
#: Virtual clock at time zero: a plausible wall-clock time so packet timestamps look real.
EPOCH_MS = 1_700_000_000_000


@dataclass(slots=True)
class _Flood:
    """Bookkeeping for one broadcast while it runs."""

    origin: int
    start_us: int
    eligible: int
    reachable: int
    reached: bytearray
    transmissions: int = 0
    link_frames: int = 0
    hops: list[int] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)


class Simulator:
    """Builds the mesh for a :class:`Scenario` and runs it with one relay policy on every node."""

    def __init__(
        self,
        scenario: Scenario,
        policy: RelayPolicy,
        *,
        config: RouterConfig | None = None,
        measure_reachable: bool = True,
    ) -> None:
        self.scenario = scenario
        self.policy = policy
        self.measure_reachable = measure_reachable
        seed = scenario.seed
        self._rng_channel = random.Random(f"{seed}:channel")
        self._rng_churn = random.Random(f"{seed}:churn")
        self._rng_move = random.Random(f"{seed}:move")
        self._rng_bcast = random.Random(f"{seed}:broadcast")
        router_rng = random.Random(f"{seed}:router")
        self.topology = Topology(
            scenario.n, scenario.side_m, scenario.radio_range_m, random.Random(f"{seed}:place")
        )
        self.config = config or RouterConfig(
            verify_signatures=scenario.verify_signatures,
            link_rate=1e6,  # the sim's load is bounded by the scenario; do not rate-limit it
            link_burst=1e6,
        )
        n = scenario.n
        self.names = [str(i) for i in range(n)]
        self._index = {name: i for i, name in enumerate(self.names)}
        self._identities: dict[int, Identity] = {}
        self.routers = [
            FloodRouter(
                self._node_id(i),
                self._origin_key(i),
                config=self.config,
                policy=policy,
                rng=router_rng,
            )
            for i in range(n)
        ]
        self.alive = [True] * n
        self._free_at = [0] * n  # when each node's radio is free again (us)
        self._timer_at = [_NEVER] * n
        self._heap: list[tuple[int, int, int, int, object]] = []
        self._seq = itertools.count()
        self._floods: list[_Flood] = []
        self._flood_of: dict[bytes, _Flood] = {}
        self._airtime: dict[int, int] = {}
        self._waypoints: dict[int, tuple[float, float]] = {}
        self.events = 0
        self.hellos = 0
        self.hello_bytes = 0
        self._hello_aware = isinstance(policy, NeighbourAware)
        self._rng_hello = random.Random(f"{seed}:hello")
        self._short = [self._node_id(i)[:SHORT_ID_SIZE] for i in range(n)]
        self._hello_seq = [0] * n
        self._hello_triggered = [False] * n
        self._ran = False
        self.initial_mean_degree = round(self.topology.mean_degree(), 3)
        for i in range(n):
            for j in self.topology.neighbours[i]:
                self.routers[i].link_up(self.names[j], EPOCH_MS)
        for i, router in enumerate(self.routers):
            router.neighbours.own_id = self._short[i]
        if self._hello_aware:
            for _ in range(scenario.hello_warmup_rounds):
                for i in range(n):
                    self._hello(i, EPOCH_MS, counted=False)

    # -- identities ----------------------------------------------------------------------

    def _seed_bytes(self, i: int, what: bytes) -> bytes:
        data = f"{self.scenario.seed}:{i}:".encode() + what
        return hashlib.blake2b(data, digest_size=32).digest()

    def _node_id(self, i: int) -> bytes:
        return self._seed_bytes(i, b"node-id")[:16]

    def _origin_key(self, i: int) -> bytes:
        """Every node's signing key is derived lazily; until it originates, a stand-in is used.

        Most nodes never originate, and deriving their key pairs up front would add about half
        a second per 10,000 nodes; the router only compares its origin key with packets'
        origins, and a node's stand-in never equals another node's real key.
        """
        return self._seed_bytes(i, b"stand-in-origin")

    def identity(self, i: int) -> Identity:
        """Node ``i``'s identity (derived from the seed on first use), which signs its floods."""
        ident = self._identities.get(i)
        if ident is None:
            ident = Identity.from_seeds(self._seed_bytes(i, b"sign"), self._seed_bytes(i, b"box"))
            self._identities[i] = ident
            self.routers[i].origin_key = ident.public.sign_public
        return ident

    # -- scheduling ----------------------------------------------------------------------

    def _push(self, t_us: int, kind: int, a: int, b: object = None) -> None:
        heapq.heappush(self._heap, (t_us, next(self._seq), kind, a, b))

    def _arm(self, i: int) -> None:
        deadline = self.routers[i].next_deadline()
        if deadline is not None:
            t_us = (deadline - EPOCH_MS) * 1000
            if t_us < self._timer_at[i]:
                self._timer_at[i] = t_us
                self._push(t_us, _TIMER, i)

    def _schedule_world(self) -> None:
        sc = self.scenario
        for b in range(sc.broadcasts):
            self._push((sc.warmup_ms + b * sc.interval_ms) * 1000, _ORIGINATE, b)
        if sc.churn is not None:
            for i in range(sc.n):
                up_ms = self._rng_churn.expovariate(1.0 / sc.churn.mean_up_ms)
                self._push(int(up_ms * 1000), _DOWN, i)
        if sc.mobility is not None:
            moving = [i for i in range(sc.n) if self._rng_move.random() < sc.mobility.fraction]
            for i in moving:
                self._waypoints[i] = self._new_waypoint()
            self._push(sc.mobility.step_ms * 1000, _MOVE, 0)
        if self._hello_aware:
            for i in range(sc.n):
                phase_us = int(self._rng_hello.random() * sc.hello_interval_ms * 1000)
                self._push(phase_us, _HELLO, i, True)
        for p in sc.partitions:
            self._push(p.start_ms * 1000, _PART_START, 0, p.split * self.topology.side_m)
            self._push(p.end_ms * 1000, _PART_END, 0, p.split * self.topology.side_m)

    # -- running -------------------------------------------------------------------------

    def run(self) -> RunResult:
        """Run the scenario to its end and return what was measured (once per simulator)."""
        if self._ran:
            raise UsageError("a Simulator runs once; build a new one to run again")
        self._ran = True
        self._schedule_world()
        end_us = self.scenario.end_ms * 1000
        heap = self._heap
        heappop = heapq.heappop
        routers = self.routers
        alive = self.alive
        names = self.names
        neighbours = self.topology.neighbours
        timer_at = self._timer_at
        apply = self._apply
        arm = self._arm
        rssi_of = self._rssi if self.scenario.medium.has_rssi else None
        events = 0
        while heap:
            t_us, _, kind, a, b = heappop(heap)
            if t_us > end_us:
                break
            events += 1
            now_ms = EPOCH_MS + t_us // 1000
            if kind == _RX:
                frame, receivers = cast("tuple[bytes, list[int]]", b)
                link = names[a]
                for r in receivers:
                    if not alive[r] or a not in neighbours[r]:
                        continue
                    rssi = rssi_of(a, r) if rssi_of is not None else None
                    actions = routers[r].receive(link, frame, now_ms, rssi)
                    if len(actions) == 1 and type(actions[0]) is Drop:
                        continue
                    apply(r, actions, t_us)
                    arm(r)
            elif kind == _TIMER:
                if timer_at[a] != t_us:
                    continue
                timer_at[a] = _NEVER
                apply(a, routers[a].tick(now_ms), t_us)
                arm(a)
            elif kind == _ORIGINATE:
                self._originate(a, t_us, now_ms)
            elif kind == _DOWN:
                self._switch(a, False, t_us, now_ms)
            elif kind == _UP:
                self._switch(a, True, t_us, now_ms)
            elif kind == _MOVE:
                self._move(t_us, now_ms)
            elif kind == _PART_START:
                self._partition(float(b), True, t_us, now_ms)  # type: ignore[arg-type]
            elif kind == _PART_END:
                self._partition(float(b), False, t_us, now_ms)  # type: ignore[arg-type]
            elif kind == _HELLO:
                if b:  # periodic: the next one is due an interval later
                    self._push(t_us + self.scenario.hello_interval_ms * 1000, _HELLO, a, True)
                else:
                    self._hello_triggered[a] = False
                if alive[a]:
                    self._hello(a, now_ms, counted=True, t_us=t_us)
        self.events = events
        return self._result()

    def _apply(self, i: int, actions: list[Action], t_us: int) -> None:
        for action in actions:
            kind = type(action)
            if kind is Transmit:
                self._transmit(i, action, t_us)  # type: ignore[arg-type]
            elif kind is Deliver:
                self._deliver(i, action, t_us)  # type: ignore[arg-type]

    def _transmit(self, i: int, action: Transmit, t_us: int) -> None:
        if not self.alive[i]:
            return
        sc = self.scenario
        medium = sc.medium
        frame = action.frame
        airtime = self._airtime.get(len(frame))
        if airtime is None:
            airtime = self._airtime[len(frame)] = medium.airtime_us(len(frame))
        start = max(t_us, self._free_at[i])
        self._free_at[i] = start + airtime
        rnd = self._rng_channel.random
        arrive = start + airtime + medium.latency_min_us + int(rnd() * medium.latency_jitter_us)
        index = self._index
        loss = sc.loss
        if loss > 0:
            receivers = [index[link] for link in action.links if rnd() >= loss]
        else:
            receivers = [index[link] for link in action.links]
        flood = self._flood_of.get(action.packet_id)
        if flood is not None:
            flood.transmissions += 1
            flood.link_frames += len(action.links)
        if receivers:
            self._push(arrive, _RX, i, (frame, receivers))

    def _hello(self, i: int, now_ms: int, *, counted: bool, t_us: int = 0) -> None:
        """Node ``i`` sends its hello; each live neighbour hears it with probability 1 - loss."""
        router = self.routers[i]
        index = self._index
        short = self._short
        table = router.neighbours
        listed = frozenset(short[index[link]] for link in router.links)
        relays: frozenset[bytes] = frozenset()
        policy = self.policy
        if isinstance(policy, NeighbourCoverage) and policy.multipoint:
            k = policy.covers_needed(table.loss_estimate())
            relays = frozenset(table.ids[link] for link in table.select_relays(k))
        self._hello_seq[i] += 1
        seq = self._hello_seq[i]
        size = hello_size(len(listed))
        if counted:
            self.hellos += 1
            self.hello_bytes += size
            airtime = self.scenario.medium.airtime_us(size)
            self._free_at[i] = max(t_us, self._free_at[i]) + airtime
        loss = self.scenario.loss
        rnd = self._rng_hello.random
        name = self.names[i]
        for j in self.topology.neighbours[i]:
            if self.alive[j] and (loss == 0 or rnd() >= loss):
                self.routers[j].neighbours.heard_hello(name, short[i], listed, seq, now_ms, relays)

    def _trigger_hello(self, i: int, t_us: int) -> None:
        """A link of node ``i`` changed: tell the neighbours soon (once per trigger delay)."""
        if self._hello_aware and not self._hello_triggered[i]:
            self._hello_triggered[i] = True
            self._push(t_us + self.scenario.hello_trigger_ms * 1000, _HELLO, i, False)

    def _deliver(self, i: int, action: Deliver, t_us: int) -> None:
        flood = self._flood_of.get(action.packet.packet_id)
        if flood is None or flood.reached[i] != 0:
            return
        flood.reached[i] = 1
        flood.hops.append(action.packet.hops + 1)
        flood.latencies_ms.append((t_us - flood.start_us) / 1000.0)

    def _rssi(self, sender: int, receiver: int) -> float:
        medium = self.scenario.medium
        mean = medium.rssi_at(self.topology.distance(sender, receiver))
        if medium.rssi_noise_db > 0:
            return mean + self._rng_channel.gauss(0.0, medium.rssi_noise_db)
        return mean

    # -- world events --------------------------------------------------------------------

    def _originate(self, b: int, t_us: int, now_ms: int) -> None:
        sc = self.scenario
        live = [i for i in range(sc.n) if self.alive[i]]
        if not live:
            return
        rng = self._rng_bcast
        origin = live[rng.randrange(len(live))]
        packet = codec.build(
            self.identity(origin),
            PacketKind.MESSAGE,
            BROADCAST,
            Suite.SIGNED,
            rng.randbytes(sc.payload_size),
            now_ms,
            sc.ttl,
            packet_id=rng.randbytes(16),
        )
        reachable = (
            len(self.topology.component_of(origin, self.alive, sc.ttl)) - 1
            if self.measure_reachable
            else len(live) - 1
        )
        # reached[i]: 0 eligible and not reached yet, 1 reached, 2 not eligible (down, or origin)
        reached = bytearray(0 if up else 2 for up in self.alive)
        reached[origin] = 2
        flood = _Flood(origin, t_us, len(live) - 1, reachable, reached)
        self._floods.append(flood)
        self._flood_of[packet.packet_id] = flood
        self._apply(origin, self.routers[origin].originate(packet, now_ms), t_us)
        self._arm(origin)

    def _link(self, i: int, j: int, up: bool, t_us: int, now_ms: int) -> None:
        """The link between live nodes ``i`` and ``j`` appears or goes away, on both sides."""
        for x, y in ((i, j), (j, i)):
            router = self.routers[x]
            if up:
                self._apply(x, router.link_up(self.names[y], now_ms), t_us)
            else:
                router.link_down(self.names[y], now_ms)
            self._trigger_hello(x, t_us)

    def _switch(self, i: int, up: bool, t_us: int, now_ms: int) -> None:
        churn = self.scenario.churn
        if churn is None:
            raise UsageError("a churn event in a scenario without churn")
        self.alive[i] = up
        for j in self.topology.neighbours[i]:
            if self.alive[j]:
                self._link(i, j, up, t_us, now_ms)
        mean = churn.mean_up_ms if up else churn.mean_down_ms
        wait_us = int(self._rng_churn.expovariate(1.0 / mean) * 1000) + 1
        self._push(t_us + wait_us, _DOWN if up else _UP, i)

    def _set_neighbours(self, i: int, new: set[int], t_us: int, now_ms: int) -> None:
        neighbours = self.topology.neighbours
        old = neighbours[i]
        for j in sorted(old - new):
            old.discard(j)
            neighbours[j].discard(i)
            if self.alive[i] and self.alive[j]:
                self._link(i, j, False, t_us, now_ms)
        for j in sorted(new - old):
            old.add(j)
            neighbours[j].add(i)
            if self.alive[i] and self.alive[j]:
                self._link(i, j, True, t_us, now_ms)

    def _new_waypoint(self) -> tuple[float, float]:
        side = self.topology.side_m
        return self._rng_move.random() * side, self._rng_move.random() * side

    def _move(self, t_us: int, now_ms: int) -> None:
        mobility = self.scenario.mobility
        if mobility is None:
            raise UsageError("a mobility step in a scenario without mobility")
        topo = self.topology
        step_m = mobility.speed_mps * mobility.step_ms / 1000.0
        moved = []
        for i, (wx, wy) in self._waypoints.items():
            dx, dy = wx - topo.x[i], wy - topo.y[i]
            dist = math.hypot(dx, dy)
            if dist <= step_m:
                topo.move(i, wx, wy)
                self._waypoints[i] = self._new_waypoint()
            else:
                topo.move(i, topo.x[i] + dx * step_m / dist, topo.y[i] + dy * step_m / dist)
            moved.append(i)
        for i in moved:
            self._set_neighbours(i, topo.in_range_of(i), t_us, now_ms)
        self._push(t_us + mobility.step_ms * 1000, _MOVE, 0)

    def _partition(self, split_x: float, start: bool, t_us: int, now_ms: int) -> None:
        topo = self.topology
        if start:
            topo.splits.append(split_x)
        elif split_x in topo.splits:
            topo.splits.remove(split_x)
        for i in range(len(topo)):
            if abs(topo.x[i] - split_x) <= topo.range_m:
                self._set_neighbours(i, topo.in_range_of(i), t_us, now_ms)

    # -- results -------------------------------------------------------------------------

    def _result(self) -> RunResult:
        counters: dict[str, int] = {}
        for router in self.routers:
            for name, value in router.counters.items():
                counters[name] = counters.get(name, 0) + value
        broadcasts = tuple(
            BroadcastResult(
                origin=f.origin,
                start_ms=f.start_us // 1000,
                eligible=f.eligible,
                reachable=f.reachable,
                reached=f.reached.count(1),
                transmissions=f.transmissions,
                link_frames=f.link_frames,
                hops=tuple(f.hops),
                latencies_ms=tuple(f.latencies_ms),
            )
            for f in self._floods
        )
        return RunResult(
            policy=self.policy.name,
            n=self.scenario.n,
            mean_degree=self.initial_mean_degree,
            broadcasts=broadcasts,
            counters=tuple(sorted(counters.items())),
            events=self.events,
            hellos=self.hellos,
            hello_bytes=self.hello_bytes,
        )


def simulate(
    scenario: Scenario, policy: RelayPolicy, *, config: RouterConfig | None = None
) -> RunResult:
    """Run ``scenario`` with ``policy`` on every node; the one-call form of :class:`Simulator`."""
    return Simulator(scenario, policy, config=config).run()
