"""What the node knows of its neighbourhood, and what gateways ask of it.

Internet transports (relay, DHT; see :mod:`meshchat.gateway`) ask the node which nodes its
local links reach (:meth:`Neighbourhood.local_nodes`), which channel and group addresses to
bridge (:meth:`Neighbourhood.bridge_ids`) and which sealed-packet tags to poll
(:meth:`Neighbourhood.sealed_tags`); the node hands every carried packet to its internet links
(:meth:`Neighbourhood.offer_to_internet`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from meshchat.events import PeerAnnounced
from meshchat.gateway import INTERNET_TRANSPORTS
from meshchat.node._types import ANNOUNCE_EVERY_MS, GROUP_MARK, MAX_HEARD, LinkInfo, NodeNotice

if TYPE_CHECKING:
    from meshchat.node import Node

__all__ = ["GATEWAY_CHECK_MS", "NO_INTERNET_HINT", "Neighbourhood"]

log = logging.getLogger(__name__)

#: how often the node looks whether its internet transports reach the internet
GATEWAY_CHECK_MS = 1000
NO_INTERNET_HINT = (
    "no relay or DHT bootstrap configured: meshchat config set internet.relays "
    "mqtt://HOST:1883 (or internet.dht_bootstrap HOST:PORT)"
)


class Neighbourhood:
    """Names and gateways learnt from announcements, and the nodes heard on local links."""

    def __init__(self, node: Node) -> None:
        self.node = node
        #: node id -> the name it announced; insertion order is recency order. Anyone can
        #: announce any number of made-up identities, so at most ``max_announced`` are kept
        #: (the least recently announced go first, a current neighbour's last).
        self.names: dict[bytes, str] = {}
        #: node id -> its last announce (keys, signed prekey), kept with ``names``
        self.announces: dict[bytes, PeerAnnounced] = {}
        self.max_announced = node.options.max_announced
        self._gateways: dict[bytes, int] = {}  # node id -> when it last announced so
        # node id -> when last heard on a local (non-internet) link or by announce; insertion
        # order is recency order, so the oldest entry is the first one.
        self._heard: dict[bytes, int] = {}
        self._gateway_checked = -GATEWAY_CHECK_MS

    def links(self, since: dict[str, int]) -> list[LinkInfo]:
        """The node's links as peer listings show them (``since``: when each came up)."""
        return [
            LinkInfo(
                link_id,
                link.transport,
                link.peer.node_id,
                self.names.get(link.peer.node_id, ""),
                link.describe(),
                since.get(link_id, 0),
            )
            for link_id, link in self.node.links.items()
        ]

    def announced(self, event: PeerAnnounced, now: int) -> None:
        node_id = event.identity.node_id
        names = self.names
        names.pop(node_id, None)
        names[node_id] = event.name
        self.announces[node_id] = event
        self._gateways.pop(node_id, None)
        if event.gateway:
            self._gateways[node_id] = now
        while len(names) > self.max_announced:
            self._forget_one()
        self.hear(node_id, now)

    def _forget_one(self) -> None:
        """Forget the least recently announced identity, sparing current neighbours."""
        neighbours = {link.peer.node_id for link in self.node.links.values()}
        victim = next((n for n in self.names if n not in neighbours), None)
        if victim is None:
            victim = next(iter(self.names))
        del self.names[victim]
        self.announces.pop(victim, None)
        self._gateways.pop(victim, None)

    def hear(self, node_id: bytes, now: int) -> None:
        heard = self._heard
        heard.pop(node_id, None)
        heard[node_id] = now
        if len(heard) > MAX_HEARD:
            del heard[next(iter(heard))]

    def internet(self) -> tuple[bool, str]:
        """(reached, why not): whether an internet transport is up, else the reasons its
        transports give, or how to configure one when there is none."""
        statuses = [t.status() for t in self.node.transports if t.name in INTERNET_TRANSPORTS]
        if not statuses:
            return False, NO_INTERNET_HINT
        if any(s.up for s in statuses):
            return True, ""
        return False, "; ".join(s.reason or f"{s.name} down" for s in statuses)

    def check_gateway(self, now: int) -> None:
        """Become a gateway when an internet transport comes up, stop when none is (at most
        once a second); a change is announced at once and shown to the faces."""
        if now - self._gateway_checked < GATEWAY_CHECK_MS:
            return
        self._gateway_checked = now
        reached, why = self.internet()
        node = self.node
        if reached == node.engine.gateway:
            return
        node.engine.gateway = reached
        log.info("%s", "gateway to the internet" if reached else f"not a gateway: {why}")
        node.request_announce(now)
        node.notify(NodeNotice("links"))

    def gateways(self, within_ms: int = 2 * ANNOUNCE_EVERY_MS) -> dict[bytes, str]:
        """Nodes that announced, recently, that they reach the internet (node id -> name)."""
        horizon = self.node.clock() - within_ms
        return {n: self.names.get(n, "") for n, t in self._gateways.items() if t >= horizon}

    def offer_to_internet(self, frame: bytes) -> None:
        """Hand a carried packet to every internet link, whatever the relay policy decides.

        The relay policy may stand down from relaying a packet that several neighbours relayed
        already; on an internet link that copy may be the only way out of the island. The link
        drops a frame it has handled before, so the router's own relay costs nothing extra.
        """
        for link in list(self.node.links.values()):
            if link.transport in INTERNET_TRANSPORTS:
                link.send(frame)

    def local_nodes(self, since_ms: int) -> list[bytes]:
        """Node ids heard on local links at or after ``since_ms``, plus every local neighbour.

        Most recent first. Internet transports use this to decide which packets the local
        flood reaches and which mailboxes this node collects for its island.
        """
        ids = [n for n, t in reversed(self._heard.items()) if t >= since_ms]
        for link in self.node.links.values():
            if link.transport not in INTERNET_TRANSPORTS and link.peer.node_id not in ids:
                ids.append(link.peer.node_id)
        return ids

    def channel_ids(self) -> dict[str, bytes]:
        """The joined channels (name -> channel id), and each group's current address under
        ``+name``."""
        engine = self.node.engine
        ids = {c.name: c.channel_id for c in engine.channels}
        for group in engine.groups.groups.values():
            if group.current is not None:
                ids[GROUP_MARK + group.name] = group.current.keys.address
        return ids

    def bridge_ids(self, names: frozenset[str]) -> set[bytes]:
        """The channel ids a gateway bridges for ``names`` (lower case): a channel's id, and
        every address of a group this node holds keys for, so that members who have not yet
        taken up a re-key (or whose messages are still on the way) are heard too."""
        engine = self.node.engine
        ids = {c.channel_id for c in engine.channels if c.name.lower() in names}
        for group in engine.groups.groups.values():
            if group.current is not None and (GROUP_MARK + group.name).lower() in names:
                ids.update(epoch.keys.address for epoch in group.epochs)
        return ids

    def sealed_tags(self, epoch: int) -> list[bytes]:
        """The tags sealed packets created in ``epoch`` reach this node under: a pair tag per
        peer it listens to and a prekey tag per signed prekey it holds."""
        return self.node.engine.direct.book.tags_at(epoch)
