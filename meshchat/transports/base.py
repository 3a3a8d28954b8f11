"""The one small interface every medium implements.

A :class:`Transport` discovers, accepts and dials peers. Each connection becomes a :class:`Link`
only after the link handshake (:mod:`meshchat.wire.handshake`) has proven the peer's identity;
then the transport reports it to its :class:`LinkHandler` (the node) with :meth:`link_up`, hands
every received frame to :meth:`frame_received`, and reports :meth:`link_down` exactly once when
it ends. A transport knows nothing of routing or payload crypto.

``Link.send`` is synchronous and never blocks: it queues the frame for the link's writer and
returns False when the link's bounded queue is full or the link is closed (the frame is dropped;
the router's retries and store-and-forward cover the loss). This keeps one slow neighbour from
stalling the node.

Links are not all worth the same to a node that has room for a bounded number: a handler that
also implements :class:`LinkJudge` tells the transport which peers to keep above strangers
(contacts), and the node calls :meth:`Link.credit` when a frame from a link proved useful (a
new, valid packet), so that transports keep such links over idle ones
(:mod:`meshchat.transports.slots`).
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from meshchat.identity import PublicIdentity

__all__ = ["Link", "LinkHandler", "LinkJudge", "Transport", "TransportStatus"]


class Link(ABC):
    """A connected link to one proven peer."""

    #: unique among the node's links, e.g. ``"lan:3"``
    link_id: str
    #: the medium: ``"mem"``, ``"lan"``, ``"ble"``, ``"relay"``, ``"dht"``
    transport: str
    #: the peer's identity, proven by the link handshake
    peer: PublicIdentity
    #: True when this side dialled the connection (used to break simultaneous-connect ties)
    initiator: bool

    @abstractmethod
    def send(self, frame: bytes) -> bool:
        """Queue ``frame`` for sending; False if it was dropped (queue full or link closed)."""

    def send_bulk(self, frame: bytes) -> bool:
        """Queue ``frame`` at file priority: it leaves after every frame queued with
        :meth:`send` (text, acks, control). Links without two queues send it as any frame."""
        return self.send(frame)

    @abstractmethod
    async def close(self) -> None:
        """Close the link; the transport then reports ``link_down`` once."""

    def hold_reading(self, until: asyncio.Future[None]) -> None:
        """Read nothing more from the peer until ``until`` is done (or the link closes).

        The node asks this when its queue for this link is full, so a peer that writes
        faster than the node takes its frames is slowed down (for a stream, by TCP's own flow
        control) instead of being read and dropped. A link that cannot hold its reading
        ignores this (the default): the node then drops what does not fit.
        """
        return None

    def describe(self) -> str:
        """A short human description of the far end (address, signal), for peer listings."""
        return ""

    def credit(self) -> None:  # noqa: B027 - optional, most links need no bookkeeping
        """A frame from this link proved useful (a new, valid packet). Transports that must
        choose which links to keep remember it; the default ignores it."""


class LinkHandler(Protocol):
    """What a transport reports to (implemented by the node)."""

    def link_up(self, link: Link) -> None: ...

    def link_down(self, link: Link) -> None: ...

    def frame_received(self, link: Link, frame: bytes) -> None: ...


@runtime_checkable
class LinkJudge(Protocol):
    """Optionally implemented by a :class:`LinkHandler`: which peers' links to keep first."""

    def prefers(self, peer: PublicIdentity) -> bool:
        """True for a peer whose link outranks any stranger's (a contact)."""
        ...


@dataclass(frozen=True, slots=True)
class TransportStatus:
    """Health of a transport for the UI, ``meshchat peers`` and ``meshchat status``."""

    name: str
    up: bool
    detail: str = ""
    #: why it is down, in a few words a person can act on ("" when up or not known)
    reason: str = ""
    #: a short stable name for the state when "up"/"down" says too little (BLE: "no adapter",
    #: "adapter off", ...; see meshchat.transports.ble.probe); "" for up or down
    state: str = ""


class Transport(ABC):
    """A medium: discovers peers and produces links."""

    name: str

    @abstractmethod
    async def start(self, handler: LinkHandler) -> None:
        """Begin advertising, listening and dialling; report links to ``handler``."""

    @abstractmethod
    async def stop(self) -> None:
        """Stop discovery and close every link (each reported down)."""

    def status(self) -> TransportStatus:
        return TransportStatus(self.name, up=True)
