"""The flood router: meshchat's sans-IO packet state machine.

Theory of operation. The router is fed three kinds of events and returns a list of actions
(:mod:`meshchat.router.actions`) that its owner executes in order:

* ``receive(link, frame, now_ms)`` -- a frame arrived on a link;
* ``originate(packet, now_ms)`` -- this node sends a packet of its own;
* ``tick(now_ms)`` -- time passed (call at :meth:`next_deadline` or sooner);
* ``link_up`` / ``link_down`` -- a neighbour appeared or went away.

A received frame goes through these steps; the cheap ones come first so that a duplicate or a
flood from one neighbour costs almost nothing:

====  ============================  ========================================================
step  check                         on failure
====  ============================  ========================================================
1     link's token bucket           Drop("rate-limited")
2     parse (size, CBOR, fields)    Drop(<packet reason>)
3     packet id already seen        count the copy against a pending relay; Drop("duplicate")
4     creation time window          Drop("expired" / "from-future")
5     Ed25519 signature             Drop("bad-signature"); the id is *not* marked seen, so a
                                    forgery cannot shadow the genuine packet
====  ============================  ========================================================

"Seen" is an exact set for ``seen_ttl_ms`` (an hour) and, for the whole 7-day acceptance
window, Bloom filters by creation time that the owner keeps across restarts
(:mod:`meshchat.router.replay`). An accepted packet is marked seen, then: delivered if it is
for this node (its node id, a channel it is in, or a broadcast); relayed unless it was
addressed to this node's id or its TTL is spent. A packet to one of this node's rotating
``addresses`` (the tags of sealed direct messages) is delivered **and** relayed and carried
exactly like a packet to any other address, so that neither a relay nor a neighbour can tell
from our behaviour which tags are ours, or whether a packet for us opened. Relaying is
delegated to a :class:`RelayPolicy`: it picks a delay, may cancel the relay when enough
neighbours were heard relaying it, and picks the links (by default every link that has not
already sent us a copy). While a relay waits, a copy that carries more TTL than the one it
started from (it came a shorter way) raises the TTL the relay will carry. A neighbour-aware
policy (:class:`~meshchat.router.policy.NeighbourAware`) instead decides when its wait ends,
from the TTL of every copy heard and ``neighbours``, the two-hop table the owner fills from
hellos. A direct message for another node is also **carried**: kept (bounded, until
acknowledged or expired) and offered again to every new neighbour, which is how messages cross
partitions (store-and-forward); carried packets are bounded per origin link, per destination
and overall, and strangers' packets never evict those of contacts (router/carry.py). A carried
packet is dropped when its recipient's ack passes: a plain ack names the packet and is signed
by the recipient; a sealed (suite RATCHET) ack reveals the token whose hash the sealed message
shows in clear. A private group message (suite GROUP) has no ack: it is carried, by its sender
and by every relay, only as long as the duplicate set remembers its id (``seen_ttl_ms``), so a
member who comes back into range within that time still gets it, and a re-offered copy is
always a duplicate for a node that had it, never a new flood. What one neighbour's frames make
us send another (relays, our acks) is charged to a share of that link (router/outbound.py).

Everything random comes from the ``rng`` given at construction, and time only from the
``now_ms`` arguments, so a router is deterministic given its seed and its inputs.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass

from meshchat.errors import PacketError
from meshchat.identity import node_id_of
from meshchat.router.actions import Action, Carry, Deliver, Drop, Transmit, Uncarry
from meshchat.router.carry import INTERNET_LINK, RESTORED_LINK, CarriedEntry, CarriedSet
from meshchat.router.outbound import OutboundShares
from meshchat.router.pending import Pending
from meshchat.router.policy import (
    FirstCopy,
    ManagedFlood,
    NeighbourAware,
    NeighbourTable,
    RelayPolicy,
)
from meshchat.router.ratelimit import TokenBucket
from meshchat.router.replay import ReplayFilter
from meshchat.router.seen import SeenSet
from meshchat.wire import codec
from meshchat.wire.fastparse import peek_packet_id, read_fixed
from meshchat.wire.packet import (
    MAX_AGE_MS,
    MAX_FUTURE_SKEW_MS,
    DestKind,
    Packet,
    PacketKind,
    Suite,
)
from meshchat.wire.payloads import AckBody, ack_hash, ack_hash_of

__all__ = ["FloodRouter", "RouterConfig"]

_NEVER = 2**63


@dataclass(frozen=True, slots=True)
class RouterConfig:
    """Tunable limits of a router; the defaults suit a phone or laptop node."""

    seen_capacity: int = 65536
    seen_ttl_ms: int = 3600_000
    link_rate: float = 200.0  # frames per second per link
    link_burst: float = 400.0
    file_rate: float = 12000.0  # file frames per second per link (apart from the others)
    #: what all neighbours together / any one neighbour may make us send another link, as
    #: shares of ``link_rate`` (router/outbound.py)
    outbound_total_share: float = 0.8
    outbound_cause_share: float = 0.5
    max_pending: int = 4096  # relays waiting for their jitter
    max_carried: int = 5000  # packets kept for store-and-forward
    max_carried_per_link: int = 512  # of those, from one origin link (see router/carry.py)
    max_carried_per_destination: int = 128  # of those, for one destination
    carry_ms: int = MAX_AGE_MS  # upper bound; a packet is never carried past its expiry
    reoffer_batch: int = 64  # carried packets offered to a new neighbour at once
    verify_signatures: bool = True
    #: remember accepted packet ids for the whole acceptance window (router/replay.py), not
    #: only the ``seen_ttl_ms`` of the exact set
    replay_horizon: bool = True


def _sealed_ack_hash(packet: Packet) -> bytes | None:
    if packet.kind is PacketKind.MESSAGE and packet.suite is Suite.RATCHET:
        return ack_hash_of(packet.payload)
    return None


def _is_group(packet: Packet) -> bool:
    """A private group message: carried for a while although it is not for one node."""
    return (
        packet.kind is PacketKind.MESSAGE
        and packet.suite is Suite.GROUP
        and packet.destination.kind is DestKind.CHANNEL
    )


class FloodRouter:
    """Managed flooding with dedupe, TTL, per-link rate limits and store-and-forward."""

    def __init__(
        self,
        node_id: bytes,
        origin_key: bytes,
        *,
        config: RouterConfig | None = None,
        policy: RelayPolicy | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.node_id = node_id
        self.origin_key = origin_key
        self.config = config or RouterConfig()
        self.policy: RelayPolicy = policy or ManagedFlood()
        self.rng = rng or random.Random()
        self.channels: set[bytes] = set()
        #: 16-byte tags that also count as this node's (sealed direct messages); their
        #: owner keeps the set current and mutates it in place
        self.addresses: set[bytes] = set()
        #: two-hop knowledge for neighbour-aware policies; the owner fills it from hellos
        self.neighbours = NeighbourTable()
        self._seen = SeenSet(self.config.seen_capacity, self.config.seen_ttl_ms)
        self._replay = ReplayFilter(self.rng) if self.config.replay_horizon else None
        self._acked = SeenSet(self.config.max_carried * 2, self.config.carry_ms)
        self._links: dict[str, TokenBucket] = {}  # live links and their token buckets
        self._strays: dict[str, TokenBucket] = {}  # buckets of links not (or no longer) up
        self._file_links: dict[str, TokenBucket] = {}  # file frames of live links
        self._pending: dict[bytes, Pending] = {}
        self._outbound = OutboundShares(
            self.config.link_rate,
            self.config.link_burst,
            total_share=self.config.outbound_total_share,
            cause_share=self.config.outbound_cause_share,
        )
        self._timers: list[tuple[int, bytes]] = []
        #: node ids and signing keys of this node's contacts (the owner keeps them current):
        #: what is carried for them or from them outranks strangers' packets
        self.contacts: set[bytes] = set()
        self.contact_keys: set[bytes] = set()
        self._carried = CarriedSet(
            self.config.max_carried,
            self.config.max_carried_per_link,
            self.config.max_carried_per_destination,
            self._rank,
        )
        self._by_ack_hash: dict[bytes, bytes] = {}  # ack hash -> carried packet id
        self._next_carry_expiry = _NEVER  # earliest expiry among carried packets
        self.counters: dict[str, int] = {}

    # -- introspection -------------------------------------------------------------------

    @property
    def links(self) -> list[str]:
        return list(self._links)

    @property
    def carried_count(self) -> int:
        return len(self._carried)

    @property
    def seen_count(self) -> int:
        return len(self._seen)

    def carried_ids(self) -> set[bytes]:
        return set(self._carried)

    def has_seen(self, packet_id: bytes) -> bool:
        return packet_id in self._seen

    def file_bucket(self, link: str, now_ms: int) -> TokenBucket | None:
        """The allowance of file frames from a live link (``file_rate``, apart from text)."""
        if link not in self._links:
            return None
        bucket = self._file_links.get(link)
        if bucket is None:
            rate = self.config.file_rate
            bucket = self._file_links[link] = TokenBucket(rate, 2 * rate, now_ms)
        return bucket

    def _mark_seen(self, packet: Packet, now_ms: int) -> None:
        self._seen.add(packet.packet_id, now_ms)
        if self._replay is not None:
            self._replay.add(packet.packet_id, packet.created_ms)

    def _replayed(self, packet: Packet, now_ms: int) -> bool:
        """Seen before the exact set's horizon (or before a restart): a replay.

        A packet created so recently that it can only have been accepted while the exact set
        was complete is not looked up in the filters: the exact set's answer is final, so a
        fresh packet is never taken for a replay by a Bloom false positive.
        """
        if self._replay is None:
            return False
        since = self._seen.complete_since
        exact_from = max(now_ms if since is None else since, now_ms - self.config.seen_ttl_ms)
        if packet.created_ms - MAX_FUTURE_SKEW_MS >= exact_from:
            return False
        return self._replay.contains(packet.packet_id, packet.created_ms)

    def take_replay_updates(self, now_ms: int) -> tuple[dict[bytes, bytes], list[bytes]]:
        """The long dedupe horizon's changes since the last call, for the owner to store:
        ``(key -> blob to put, keys to delete)``."""
        if self._replay is None:
            return {}, []
        return self._replay.take_updates(now_ms)

    def load_replay_state(
        self, blobs: dict[bytes, bytes], now_ms: int
    ) -> tuple[list[bytes], list[bytes]]:
        """Restore the long dedupe horizon saved before a restart; returns the keys of
        ``(expired, unreadable)`` blobs."""
        if self._replay is None:
            return list(blobs), []
        return self._replay.load(blobs, now_ms)

    def next_deadline(self) -> int | None:
        """The earliest time at which :meth:`tick` has work, or None."""
        while self._timers and self._timers[0][1] not in self._pending:
            heapq.heappop(self._timers)
        return self._timers[0][0] if self._timers else None

    def _count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n

    # -- links ---------------------------------------------------------------------------

    def link_up(self, link: str, now_ms: int, peer: bytes | None = None) -> list[Action]:
        """A neighbour appeared: offer it the packets we carry for others (those for ``peer``,
        its node id when the link's handshake told it, first)."""
        bucket = self._strays.pop(link, None)
        if bucket is None:
            bucket = TokenBucket(self.config.link_rate, self.config.link_burst, now_ms)
        self._links[link] = bucket
        actions: list[Action] = []
        for packet_id, frame in self._carried.offer_order(now_ms, peer)[
            : self.config.reoffer_batch
        ]:
            actions.append(Transmit(frame, (link,), packet_id))
            self._count("tx")
        return actions

    def link_down(self, link: str, now_ms: int) -> list[Action]:
        self._links.pop(link, None)
        self._strays.pop(link, None)
        self._file_links.pop(link, None)
        self.neighbours.forget(link)
        self._outbound.forget(link)
        return []

    def restore_carried(self, frame: bytes, expires_ms: int, now_ms: int) -> None:
        """Reload a carried packet from the store after a restart."""
        try:
            packet = codec.parse(frame)
        except PacketError:
            return
        if expires_ms > now_ms:
            self._mark_seen(packet, now_ms)
            if not self._keep(packet, frame, expires_ms, RESTORED_LINK)[1]:
                return
            self._next_carry_expiry = min(self._next_carry_expiry, expires_ms)

    # -- sending -------------------------------------------------------------------------

    def originate(self, packet: Packet, now_ms: int, cause: str | None = None) -> list[Action]:
        """Send a packet this node created to every neighbour; ``cause``: the link whose
        frame made us send it (our ack of a message that came by it), None if our own."""
        frame = codec.encode(packet)
        self._mark_seen(packet, now_ms)
        # Our own sealed ack also ends our carrying of the message it acknowledges.
        uncarried = self._ack_seen(packet) if packet.kind is PacketKind.ACK else []
        links = self._admitted(tuple(self._links), cause, frame, now_ms)
        if not links:
            reason = "outbound-share" if self._links else "no-links"
            return [Drop(reason, None, packet.packet_id), *uncarried]
        self._count("tx")
        carried = self._carry(packet, frame, now_ms, None) if _is_group(packet) else []
        return [Transmit(frame, links, packet.packet_id), *uncarried, *carried]

    def _admitted(
        self, links: tuple[str, ...], cause: str | None, frame: bytes, now_ms: int
    ) -> tuple[str, ...]:
        """Of ``links``, those whose outbound share lets a frame caused by ``cause`` go."""
        if cause is None or frame[2] == PacketKind.FILE:  # file frames: their own allowance
            return links
        admitted = tuple(link for link in links if self._outbound.admit(link, cause, now_ms))
        self._count("drop.outbound-share", len(links) - len(admitted))
        return admitted

    # -- receiving -----------------------------------------------------------------------

    def receive(
        self, link: str | None, frame: bytes, now_ms: int, rssi: float | None = None
    ) -> list[Action]:
        """Handle one frame received on ``link`` (None: from a local or internet source)."""
        bulk = len(frame) > 2 and frame[2] == PacketKind.FILE  # its own allowance
        if link is not None:
            bucket = self.file_bucket(link, now_ms) if bulk else self._links.get(link)
            bucket = bucket or self._strays.get(link)
            if bucket is None:
                # A frame from a link that is not up (still in flight after link_down):
                # rate-limit it, but never make the link a relay target again.
                if len(self._strays) >= 1024:
                    self._strays.clear()
                bucket = self._strays[link] = TokenBucket(
                    self.config.link_rate, self.config.link_burst, now_ms
                )
            if not bucket.take(now_ms):
                self._count("drop.rate-limited")
                return [Drop("rate-limited", link)]
        peeked = peek_packet_id(frame)
        if peeked is not None and peeked in self._seen:
            self._count("drop.duplicate")
            self._copy_heard(peeked, link, rssi, frame)
            return [Drop("duplicate", link, peeked)]
        try:
            packet = codec.parse(frame)
        except PacketError as exc:
            self._count(f"drop.{exc.reason.value}")
            return [Drop(exc.reason.value, link)]
        packet_id = packet.packet_id
        if bulk is not (packet.kind is PacketKind.FILE) or packet.kind is PacketKind.TALK:
            return [Drop("bad-kind", link, packet_id)]  # live frames are never routed
        if packet_id in self._seen or self._replayed(packet, now_ms):
            self._count("drop.duplicate")
            self._copy_heard(packet_id, link, rssi, frame)
            return [Drop("duplicate", link, packet_id)]
        try:
            codec.check_time(packet, now_ms)
            if self.config.verify_signatures:
                codec.verify(packet)
        except PacketError as exc:
            self._count(f"drop.{exc.reason.value}")
            return [Drop(exc.reason.value, link, packet_id)]
        self._mark_seen(packet, now_ms)
        self._count("accepted")
        return self._accept(packet, link, now_ms, rssi)

    def _accept(
        self, packet: Packet, link: str | None, now_ms: int, rssi: float | None
    ) -> list[Action]:
        actions: list[Action] = []
        dest = packet.destination
        for_me = dest.kind is DestKind.NODE and dest.value == self.node_id
        if packet.origin == self.origin_key:
            return [Drop("own-packet", link, packet.packet_id)]
        if (
            for_me
            or (dest.kind is DestKind.NODE and dest.value in self.addresses)
            or dest.kind is DestKind.BROADCAST
            or (dest.kind is DestKind.CHANNEL and dest.value in self.channels)
        ):
            actions.append(Deliver(packet, link))
        if packet.kind is PacketKind.ACK:
            actions.extend(self._ack_seen(packet))
        if for_me:
            return actions
        if packet.ttl <= 1:
            self._count("ttl-spent")
            return actions
        relayed = packet.relayed()
        frame = codec.encode(relayed)
        sealed_hash = _sealed_ack_hash(packet)
        if packet.kind is PacketKind.FILE:
            pass  # pieces and requests are asked again, never carried
        elif (
            dest.kind is DestKind.NODE
            and packet.packet_id + dest.value not in self._acked
            and (sealed_hash is None or sealed_hash not in self._acked)
        ) or _is_group(packet):
            actions.extend(self._carry(relayed, frame, now_ms, link))
        actions.extend(self._schedule(relayed, frame, link, now_ms, rssi, packet.ttl))
        return actions

    def _ack_seen(self, packet: Packet) -> list[Action]:
        """An ack passed by: stop carrying the packet it acknowledges.

        Only an ack signed by the acknowledged packet's recipient counts (its node id is
        derived from the signing key and the box key in the ack), so a third node cannot make
        relays drop a message they carry by acking it falsely. A sealed ack counts when its
        token hashes to a carried sealed message's ack hash: only the recipient, who found the
        token inside that message, can know it.
        """
        if packet.suite is Suite.RATCHET:
            token = ack_hash_of(packet.payload)
            if token is None:
                return []
            hashed = ack_hash(token)
            self._acked.add(hashed, packet.created_ms)
            packet_id = self._by_ack_hash.get(hashed)
            if packet_id is None:
                return []
            carried = self._carried.get(packet_id)
            if carried is not None:
                self._carried.prove(carried.recipient)
            self._forget(packet_id)
            return [Uncarry(packet_id)]
        try:
            ack = AckBody.decode(packet.payload)
        except PacketError:
            return []
        acker = node_id_of(packet.origin, ack.acker_box_public)
        self._acked.add(ack.acked_packet_id + acker, packet.created_ms)
        self._carried.prove(acker)
        carried = self._carried.get(ack.acked_packet_id)
        if carried is not None and carried.recipient == acker:
            self._forget(ack.acked_packet_id)
            return [Uncarry(ack.acked_packet_id)]
        return []

    def _rank(self, entry: CarriedEntry) -> int:
        """How much a carried packet is worth keeping (see :mod:`meshchat.router.carry`)."""
        if entry.origin in self.contact_keys or entry.origin == self.origin_key:
            return 2
        dest = entry.recipient
        if (
            dest in self.contacts
            or dest in self._carried.proven
            or dest in self.addresses
            or dest in self.channels
        ):
            return 1
        return 0

    def _keep(
        self, packet: Packet, frame: bytes, expires_ms: int, link: str
    ) -> tuple[list[bytes], bool]:
        """Keep a packet if the bounds allow: ``(evicted packet ids, whether it is kept)``."""
        hashed = _sealed_ack_hash(packet)
        entry = CarriedEntry(
            frame, expires_ms, packet.destination.value, packet.origin, link, hashed
        )
        evicted, keep = self._carried.make_room(entry)
        if not keep:
            return [], False
        for victim in evicted:
            self._forget(victim)
        self._carried.add(packet.packet_id, entry)
        if hashed is not None:
            self._by_ack_hash[hashed] = packet.packet_id
        return evicted, True

    def _forget(self, packet_id: bytes) -> None:
        carried = self._carried.remove(packet_id)
        if carried is not None and carried.ack_hash is not None:
            self._by_ack_hash.pop(carried.ack_hash, None)

    def _carry(self, packet: Packet, frame: bytes, now_ms: int, link: str | None) -> list[Action]:
        horizon = self.config.carry_ms
        if _is_group(packet):
            horizon = min(horizon, self.config.seen_ttl_ms)
        # A creation time in the future is clamped to now: it cannot buy a longer stay.
        expires = min(packet.created_ms, now_ms) + horizon
        evicted, kept = self._keep(packet, frame, expires, link or INTERNET_LINK)
        actions: list[Action] = [Uncarry(victim) for victim in evicted]
        if not kept:
            self._count("carry.refused")
            return actions
        if evicted:
            self._count("carry.evicted", len(evicted))
        self._next_carry_expiry = min(self._next_carry_expiry, expires)
        actions.append(Carry(packet, frame, expires))
        return actions

    def _schedule(
        self,
        packet: Packet,
        frame: bytes,
        link: str | None,
        now_ms: int,
        rssi: float | None,
        ttl_in: int = 0,
    ) -> list[Action]:
        event = FirstCopy(packet, link, rssi, len(self._links), self.rng, self.neighbours)
        delay = self.policy.first_copy(event)
        if delay is None:
            self._count("relay.declined")
            return []
        if len(self._pending) >= self.config.max_pending:
            self._count("drop.pending-full")
            return [Drop("pending-full", link, packet.packet_id)]
        cause = INTERNET_LINK if link is None else link  # internet frames share one cause
        pending = Pending(frame, now_ms + delay, ttl_in=ttl_in, degree=event.degree, cause=cause)
        if isinstance(self.policy, NeighbourAware):
            pending.ttls = {} if link is None else {link: ttl_in}
        if link is not None:
            pending.heard_from.add(link)
        self._pending[packet.packet_id] = pending
        if delay <= 0:
            return self._fire(packet.packet_id, pending, now_ms)
        heapq.heappush(self._timers, (pending.due_ms, packet.packet_id))
        return []

    def _copy_heard(
        self, packet_id: bytes, link: str | None, rssi: float | None, frame: bytes
    ) -> None:
        pending = self._pending.get(packet_id)
        if pending is None:
            return
        fields = read_fixed(frame) if not pending.cancelled else None
        if link is not None:
            pending.heard_from.add(link)
            if pending.ttls is not None:
                # Which TTL the copy carried: a neighbour-aware policy counts a copy as
                # covering our neighbours only if it gives them as many hops as ours would.
                ttl = fields[7] if fields is not None else 0
                pending.ttls[link] = max(ttl, pending.ttls.get(link, 0))
        if (
            fields is not None
            and fields[7] > pending.ttl_in
            and pending.raise_ttl(fields[7], fields[8])
        ):
            self._count("relay.ttl-raised")
        pending.copies += 1
        pending.uncovered = self.policy.uncovered_after(pending.uncovered, rssi)
        if self.policy.copy_heard(pending.copies, rssi, pending.degree, pending.uncovered):
            pending.cancelled = True

    def _fire(self, packet_id: bytes, pending: Pending, now_ms: int) -> list[Action]:
        del self._pending[packet_id]
        if pending.cancelled:
            self._count("relay.suppressed")
            return []
        candidates = [link for link in self._links if link not in pending.heard_from]
        policy = self.policy
        if isinstance(policy, NeighbourAware):
            links = policy.relay_links(
                pending.ttls or {}, pending.ttl_in, candidates, self.neighbours, self.rng
            )
            if not links and candidates:
                self._count("relay.pruned")
        else:
            links = policy.choose_links(candidates, self.rng)
        admitted = self._admitted(tuple(links), pending.cause, pending.frame, now_ms)
        if not admitted:
            return []
        self._count("tx")
        self._count("relay.sent")
        return [Transmit(pending.frame, admitted, packet_id)]

    # -- time ----------------------------------------------------------------------------

    def tick(self, now_ms: int) -> list[Action]:
        """Fire due relays and expire old state."""
        actions: list[Action] = []
        timers = self._timers
        while timers and timers[0][0] <= now_ms:
            _, packet_id = heapq.heappop(timers)
            pending = self._pending.get(packet_id)
            if pending is not None and pending.due_ms <= now_ms:
                actions.extend(self._fire(packet_id, pending, now_ms))
        self._seen.expire(now_ms)
        if self._replay is not None:
            self._replay.expire(now_ms)
        # A busy node ticks after every frame: scan the carried packets only when one is due.
        if now_ms >= self._next_carry_expiry:
            for packet_id in [p for p, c in self._carried.items() if c.expires_ms <= now_ms]:
                self._forget(packet_id)
                actions.append(Uncarry(packet_id))
            self._next_carry_expiry = min(
                (c.expires_ms for c in self._carried.values()), default=_NEVER
            )
        return actions
