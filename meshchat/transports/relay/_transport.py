"""The relay transport: the internet as one link, carried by an MQTT broker.

Theory of operation.

*One link.* On :meth:`RelayTransport.start` the transport reports one :class:`RelayLink`
(``relay:<host>:<port>``) up, and keeps it up until :meth:`stop`, whether or not the broker is
reachable at the moment: frames the router sends it wait in a bounded :class:`Outbox` while the
broker is down, so nothing is lost to an outage (``status()`` tells the UI whether it is up).

*Sending* (``RelayLink.send``, synchronous). :func:`meshchat.gateway.route` decides where a
frame goes: a packet for a node not heard locally -> that node's mailbox topic
``<prefix>/m/<tag>``; a packet for a bridged channel -> ``<prefix>/c/<tag>``; anything else
stays in the mesh. The frame is sealed into an envelope and queued. A packet id that this
link already published or received is not published again (the node offers carried packets
to internet links directly, and the router may relay the same frame too).

*New channel ids.* A broker keeps nothing for a topic nobody subscribes to. A channel id that
is new to this gateway (a channel just joined, a group's new epoch) may not yet be known to the
other gateways, so for ``fresh_s`` after it appears here every frame sent to it is queued once
more after each of ``republish_after_s``; receivers drop what they already have by packet id.

*Receiving.* The gateway subscribes to the mailbox of this node, to the mailboxes of the local
nodes heard within ``serve_window_s`` (at most ``max_mailboxes``) and to the bridged channels
(for a group: every address of the epochs the node still holds keys for).
Each envelope is opened with the key of its topic; the frame then goes to the node through
``frame_received`` on the relay link, so the router's rate limit, dedupe and TTL apply and the
router never relays it back to the relay. The served mailboxes are saved to ``state_path`` so
that messages queued for a local node while this gateway was offline can still be opened when
it reconnects, before that node is heard again.

*Connection.* :class:`._session.MqttSession` keeps the connection (persistent session,
reconnects with backoff, MQTT 5 or 3.1.1); this module decides what it subscribes to and
publishes, and what becomes of what it reads.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from pathlib import Path

from meshchat.errors import DecryptionError, PacketError
from meshchat.gateway import (
    SEALED_TOPIC_ID,
    GatewayHost,
    RouteKind,
    channel_key,
    channel_tag,
    mailbox_key,
    mailbox_tag,
    open_batch,
    route,
)
from meshchat.identity import Identity
from meshchat.router.seen import SeenSet
from meshchat.transports.base import LinkHandler, Transport, TransportStatus
from meshchat.transports.gateway_link import GatewayLink
from meshchat.transports.relay._config import RelayConfig, client_id_for
from meshchat.transports.relay._limits import Bucket
from meshchat.transports.relay._outbox import Outbox, Publish
from meshchat.transports.relay._sealed import (
    SealedTagHost,
    own_sealed_topics,
    sealed_expiry_s,
    sealed_key,
    sealed_tag_of,
    sealed_topic,
)
from meshchat.transports.relay._session import MqttSession
from meshchat.transports.served import ServedMailboxes
from meshchat.wire.fastparse import peek_packet_id
from meshchat.wire.packet import MAX_AGE_MS, MAX_PACKET_SIZE

__all__ = ["RelayLink", "RelayTransport"]

log = logging.getLogger(__name__)

_HANDLED_CAPACITY = 65536
_HANDLED_TTL_MS = 24 * 3600 * 1000
#: frames held to publish once more (to channel ids new here); more are not repeated
_MAX_AGAIN = 512


class RelayLink(GatewayLink):
    """The internet, as reached through one MQTT broker."""

    def __init__(self, transport: RelayTransport) -> None:
        host, port, _ = transport.config.endpoint
        super().__init__(
            transport, f"relay:{host}:{port}", "relay", f"relay-peer:{transport.config.display}"
        )


class RelayTransport(Transport):
    """A gateway's attachment to an MQTT broker."""

    name = "relay"

    def __init__(
        self,
        identity: Identity,
        config: RelayConfig,
        *,
        state_path: Path | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.node_id = identity.node_id
        secret = hashlib.blake2b(
            identity.private_bytes()[0], digest_size=32, person=b"mc-relay-secret"
        ).digest()
        self.client_id = client_id_for(secret, config)
        self.state_path = state_path
        self.clock = clock
        self.outbox = Outbox(config.outbox_limit)
        self.counters: dict[str, int] = {}
        self.handler: LinkHandler | None = None
        self.link: RelayLink | None = None
        self._host: GatewayHost | None = None
        self._tag_host: SealedTagHost | None = None
        #: sealed topic -> tag, for this node's own tags
        self._own_topics: dict[str, bytes] = {}
        self._own_tags: frozenset[bytes] = frozenset()
        self._shared_topic = f"{config.topic_prefix}/c/{channel_tag(SEALED_TOPIC_ID).hex()}"
        self._shared_budget = Bucket(config.shared_rate, 2 * config.shared_rate)
        self._handled = SeenSet(_HANDLED_CAPACITY, _HANDLED_TTL_MS)
        self._bridged: set[bytes] = set()
        #: bridged channel id -> when it was first bridged here (clock seconds)
        self._bridged_since: dict[bytes, float] = {}
        #: (when, publish): frames to new channel ids, to publish once more
        self._again: list[tuple[float, Publish]] = []
        self._wanted_names = frozenset(n.lower() for n in config.bridge_channels)
        self.served = ServedMailboxes(
            self.node_id,
            local_window_s=config.local_window_s,
            serve_window_s=config.serve_window_s,
            most=config.max_mailboxes,
            state_path=state_path,
        )
        #: topic -> envelope key, for every topic wanted now
        self._topics: dict[str, bytes] = {}
        self.session = MqttSession(
            config,
            self.client_id,
            self.outbox,
            topics=lambda: self._topics,
            on_message=self._receive,
            on_refresh=self._refresh,
            count=self._count,
            clock=clock,
        )

    # -- life cycle ----------------------------------------------------------------------

    async def start(self, handler: LinkHandler) -> None:
        self.handler = handler
        self._host = handler if isinstance(handler, GatewayHost) else None
        self._tag_host = handler if isinstance(handler, SealedTagHost) else None
        await self.served.load()
        self._refresh_wanted()
        self.link = RelayLink(self)
        handler.link_up(self.link)
        self.session.start(f"meshchat-{self.link.link_id}")

    async def stop(self) -> None:
        await self.session.stop()
        await self.served.save()
        link, self.link = self.link, None
        if link is not None and self.handler is not None:
            self.handler.link_down(link)

    def status(self) -> TransportStatus:
        cfg = self.config
        mailboxes = sum(1 for t in self._topics if t.startswith(f"{cfg.topic_prefix}/m/"))
        sealed = len(self._own_topics)
        channels = len(self._topics) - mailboxes - sealed
        detail = (
            f"{cfg.display} {self.session.describe()}; gateway for {mailboxes} mailboxes, "
            f"{channels} bridged channels, {sealed} sealed topics; outbox {len(self.outbox)}"
        )
        reason = "" if self.session.up else f"{cfg.display}: {self.session.reason}"
        return TransportStatus(self.name, self.session.up, detail, reason)

    @property
    def subscribed(self) -> frozenset[str]:
        """The topics the broker has confirmed this gateway's subscriptions to."""
        return frozenset(self.session.subscribed)

    def _count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n

    async def _refresh(self) -> None:
        """Every ``refresh_s`` while connected (before the subscriptions are synced)."""
        self._republish_due()
        self._refresh_wanted()
        await self.served.save()

    # -- sending -------------------------------------------------------------------------

    def offer(self, frame: bytes) -> bool:
        """Queue ``frame`` for the internet if it should go there (see the module docstring)."""
        if self.link is None:
            return False
        now_s = self.clock()
        packet_id = peek_packet_id(frame)
        if packet_id is not None and packet_id in self._handled:
            self._count("tx.already-handled")
            return True
        target = route(frame, self.served.local, self._bridged)
        if target is None and self._take_up_bridged():
            target = route(frame, self.served.local, self._bridged)
        if target is None:
            self._count("tx.stays-local")
            return True
        expires_s = int(min(now_s + self.config.retention_s, target.expires_ms / 1000))
        if expires_s <= now_s:
            self._count("tx.expired")
            return True
        if not 0 < len(frame) <= MAX_PACKET_SIZE:
            self._count("tx.unsealable")
            return False
        prefix = self.config.topic_prefix
        if target.kind is RouteKind.SEALED:
            tag = sealed_tag_of(frame)
            if tag is None:
                self._count("tx.unsealable")
                return False
            until = min(expires_s, sealed_expiry_s(target.expires_ms - MAX_AGE_MS))
            if until > now_s:
                own = sealed_topic(prefix, tag)
                self.outbox.add(Publish(own, b"", until, target.packet_id, frame, sealed_key(tag)))
        if target.kind is not RouteKind.SEALED or self.config.shared_sealed:
            kind = "m" if target.kind is RouteKind.MAILBOX else "c"
            topic = f"{prefix}/{kind}/{target.tag.hex()}"
            item = Publish(topic, b"", expires_s, target.packet_id, frame=frame, key=target.key)
            self.outbox.add(item)
        self._handled.add(target.packet_id, int(now_s * 1000))
        if target.kind is RouteKind.CHANNEL:
            self._again_later(target.target, item, now_s)
        self._count(f"tx.{target.kind.value}")
        self.session.wake.set()
        return True

    def _take_up_bridged(self) -> bool:
        """Bring the bridged channels up to date now; True if they changed.

        The periodic refresh would do it within ``refresh_s``, but the first packets of a
        channel joined (or a group created or re-keyed) a moment ago would stay in the mesh
        until then, and channel packets are not retried. Only asked for a frame that would
        stay, and only when some channel is to be bridged at all.
        """
        host = self._host
        if host is None or not self.config.bridge_channels:
            return False
        bridged = host.bridge_ids(self._wanted_names)
        if bridged == self._bridged:
            return False
        self._set_bridged(bridged)
        return True

    def _set_bridged(self, bridged: set[bytes]) -> None:
        """Take up a new set of bridged ids, noting when each first appeared."""
        now_s = self.clock()
        self._bridged_since = {cid: self._bridged_since.get(cid, now_s) for cid in bridged}
        self._bridged = bridged

    def _again_later(self, cid: bytes, item: Publish, now_s: float) -> None:
        """A frame for a channel id new here: publish it again after ``republish_after_s``.

        The other gateways take up a new id within their refresh period of learning it (a
        group's members learn a new epoch's address from the re-key's control messages, which
        may arrive after the first message of the epoch); until then the broker drops what is
        sent to it. Receivers drop the copies they already have by packet id.
        """
        since = self._bridged_since.get(cid)
        if since is None or now_s - since >= self.config.fresh_s:
            return
        for delay in self.config.republish_after_s:
            if len(self._again) >= _MAX_AGAIN:
                self._count("tx.republish-dropped")
                return
            self._again.append((now_s + delay, item))

    def _republish_due(self) -> None:
        now_s = self.clock()
        due = [item for at, item in self._again if at <= now_s]
        if not due:
            return
        self._again = [(at, item) for at, item in self._again if at > now_s]
        for item in due:
            self.outbox.add(item)
            self._count("tx.republished")
        self.session.wake.set()

    # -- what to collect -----------------------------------------------------------------

    def _refresh_wanted(self) -> None:
        """Recompute local nodes, served mailboxes and bridged channels from the node."""
        cfg = self.config
        now_ms = int(self.clock() * 1000)
        host = self._host
        self.served.refresh(host, now_ms)
        if host is not None:
            self._set_bridged(host.bridge_ids(self._wanted_names))
        topics = {
            f"{cfg.topic_prefix}/m/{mailbox_tag(n).hex()}": mailbox_key(n)
            for n in self.served.mailboxes()
        }
        shared = (SEALED_TOPIC_ID,) if cfg.shared_sealed else ()
        for cid in (*self._bridged, *shared):
            topics[f"{cfg.topic_prefix}/c/{channel_tag(cid).hex()}"] = channel_key(cid)
        if self._tag_host is not None:
            own = own_sealed_topics(
                self._tag_host, cfg.topic_prefix, now_ms, cfg.sealed_ahead, cfg.max_sealed_topics
            )
            self._own_topics = own
            self._own_tags = frozenset(own.values())
            topics.update((topic, sealed_key(tag)) for topic, tag in own.items())
        self._topics = topics

    # -- receiving -----------------------------------------------------------------------

    def _receive(self, topic: str, payload: object) -> None:
        link, handler = self.link, self.handler
        if link is None or handler is None:
            return
        key = self._topics.get(topic)
        if key is None:
            self._count("rx.unknown-topic")
            return
        if not isinstance(payload, bytes | bytearray):
            self._count("rx.bad-envelope")
            return
        try:
            frames, expires_s = open_batch(key, bytes(payload))
        except (PacketError, DecryptionError):
            self._count("rx.bad-envelope")
            return
        now_s = self.clock()
        if expires_s <= now_s:
            self._count("rx.expired")
            return
        own_tag = self._own_topics.get(topic)
        shared = topic == self._shared_topic
        for frame in frames:
            if own_tag is not None or shared:
                tag = sealed_tag_of(frame)
                if tag is None or (own_tag is not None and tag != own_tag):
                    self._count("rx.misfiled")
                    continue
                if shared and tag not in self._own_tags and not self._island_budget(now_s):
                    continue
            packet_id = peek_packet_id(frame)
            if packet_id is not None:
                if packet_id in self._handled:
                    self._count("rx.already-handled")
                    continue
                self._handled.add(packet_id, int(now_s * 1000))
            self._count("rx.frames")
            handler.frame_received(link, frame)

    def _island_budget(self, now_s: float) -> bool:
        """True if one more frame from the shared sealed topic may go to the island now.

        What is read there is for nodes behind some gateway and may be anyone's junk, so it
        gets at most ``shared_rate`` frames a second of the relay link's budget; the rest of
        the budget stays for this node's own topics, mailboxes and channels."""
        if self._shared_budget.take(now_s) > 0:
            self._shared_budget.level += 1.0
            self._count("rx.island-over-budget")
            return False
        self._count("rx.island-sealed")
        return True
