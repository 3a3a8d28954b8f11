"""An in-memory transport: many nodes in one process, linked as a test or simulation wires them.

A :class:`MemoryHub` holds the wiring. ``hub.connect(a, b)`` makes a link between two
:class:`MemoryTransport` instances (both started); frames are delivered through the event
loop (never re-entrantly), in order, with an optional delay. Identities are taken as proven:
the link handshake's own tests cover proof; this transport exists to run meshes of many nodes.
``hub.disconnect(a, b)`` and ``hub.partition(...)`` take links down again.

A lossy, reordering medium for tests: ``loss`` drops each frame with that probability (the
sender is not told, as on a radio) and ``jitter_s`` adds a random delay to each frame, so frames
overtake each other; both draw from the hub's ``rng`` (seed it for a repeatable run). A test
may also set ``drop`` to a predicate of (sending link, frame) to lose chosen frames.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Callable

from meshchat.errors import TransportError
from meshchat.identity import PublicIdentity
from meshchat.transports.base import Link, LinkHandler, Transport, TransportStatus

__all__ = ["MemoryHub", "MemoryLink", "MemoryTransport"]


class MemoryLink(Link):
    """One end of an in-memory link."""

    def __init__(
        self, hub: MemoryHub, owner: MemoryTransport, peer: MemoryTransport, initiator: bool
    ) -> None:
        self.link_id = f"mem:{next(hub.ids)}"
        self.transport = "mem"
        self.peer = peer.identity
        self.initiator = initiator
        self.owner = owner
        self.remote: MemoryLink | None = None
        self.closed = False
        self._hub = hub

    def send(self, frame: bytes) -> bool:
        remote = self.remote
        if self.closed or remote is None or remote.closed:
            return False
        loop = asyncio.get_running_loop()
        hub = self._hub
        hub.frames_sent += 1
        if (hub.loss and hub.rng.random() < hub.loss) or (
            hub.drop is not None and hub.drop(self, frame)
        ):
            hub.frames_lost += 1
            return True
        delay = hub.delay_s + (hub.rng.uniform(0, hub.jitter_s) if hub.jitter_s else 0.0)
        if delay > 0:
            loop.call_later(delay, remote.deliver, frame)
        else:
            loop.call_soon(remote.deliver, frame)
        return True

    def deliver(self, frame: bytes) -> None:
        handler = self.owner.handler
        if not self.closed and handler is not None:
            handler.frame_received(self, frame)

    async def close(self) -> None:
        self._hub.unlink(self)

    def describe(self) -> str:
        return "in-memory"


class MemoryTransport(Transport):
    """A node's attachment to a :class:`MemoryHub`."""

    name = "mem"

    def __init__(self, hub: MemoryHub, identity: PublicIdentity) -> None:
        self.hub = hub
        self.identity = identity
        self.handler: LinkHandler | None = None
        self.links: dict[str, MemoryLink] = {}

    async def start(self, handler: LinkHandler) -> None:
        self.handler = handler

    async def stop(self) -> None:
        for link in list(self.links.values()):
            self.hub.unlink(link)
        self.handler = None

    def status(self) -> TransportStatus:
        return TransportStatus(self.name, self.handler is not None, f"{len(self.links)} links")


class MemoryHub:
    """The wiring between in-memory transports."""

    def __init__(
        self,
        delay_s: float = 0.0,
        *,
        loss: float = 0.0,
        jitter_s: float = 0.0,
        rng: random.Random | None = None,
    ) -> None:
        if not 0.0 <= loss < 1.0 or delay_s < 0 or jitter_s < 0:
            raise TransportError("loss must be in [0, 1) and delays not negative")
        self.ids = itertools.count(1)
        self.delay_s = delay_s
        self.loss = loss
        self.jitter_s = jitter_s
        self.rng = rng or random.Random()
        self.frames_sent = 0
        self.frames_lost = 0
        self.drop: Callable[[MemoryLink, bytes], bool] | None = None

    def transport(self, identity: PublicIdentity) -> MemoryTransport:
        return MemoryTransport(self, identity)

    def connect(self, a: MemoryTransport, b: MemoryTransport) -> tuple[MemoryLink, MemoryLink]:
        if a.handler is None or b.handler is None:
            raise TransportError("both transports must be started before linking")
        end_a = MemoryLink(self, a, b, initiator=True)
        end_b = MemoryLink(self, b, a, initiator=False)
        end_a.remote, end_b.remote = end_b, end_a
        a.links[end_a.link_id] = end_a
        b.links[end_b.link_id] = end_b
        a.handler.link_up(end_a)
        b.handler.link_up(end_b)
        return end_a, end_b

    def disconnect(self, a: MemoryTransport, b: MemoryTransport) -> None:
        for link in list(a.links.values()):
            if link.remote is not None and link.remote.owner is b:
                self.unlink(link)

    def unlink(self, link: MemoryLink) -> None:
        for end in (link, link.remote):
            if end is None or end.closed:
                continue
            end.closed = True
            end.owner.links.pop(end.link_id, None)
            if end.owner.handler is not None:
                end.owner.handler.link_down(end)
