"""The one link an internet transport (relay, DHT) presents to the node.

There is no single peer behind the internet, so the link's peer is a stand-in identity derived
from a label (stable per relay or DHT port, so the node sees the same "neighbour" across
restarts). Everything else is forwarded to the transport that owns the link.
"""

from __future__ import annotations

import hashlib
from typing import Protocol

from meshchat.identity import PublicIdentity
from meshchat.transports.base import Link, TransportStatus

__all__ = ["GatewayLink", "LinkOwner"]


class LinkOwner(Protocol):
    def offer(self, frame: bytes) -> bool: ...

    async def stop(self) -> None: ...

    def status(self) -> TransportStatus: ...


class GatewayLink(Link):
    """A link that hands frames to an internet transport."""

    def __init__(self, owner: LinkOwner, link_id: str, transport: str, peer_label: str) -> None:
        self.link_id = link_id
        self.transport = transport
        digest = hashlib.blake2b(peer_label.encode(), digest_size=64, person=b"mc-net-peer")
        raw = digest.digest()
        self.peer = PublicIdentity(raw[:32], raw[32:])
        self.initiator = True
        self._owner = owner

    def send(self, frame: bytes) -> bool:
        return self._owner.offer(frame)

    async def close(self) -> None:
        await self._owner.stop()

    def describe(self) -> str:
        return self._owner.status().detail
