"""BLE test worlds: BleTransports over bumble virtual radios on one simulated air.

Kept out of conftest.py under a unique module name, so test modules can import it wherever
pytest puts other conftest files.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from meshchat.errors import HandshakeError
from meshchat.identity import Identity
from meshchat.transports.base import Link
from meshchat.transports.ble import BleTransport
from meshchat.transports.ble.bumble_backend import BumbleBackend
from meshchat.transports.ble.session import BleLink
from meshchat.transports.ble.virtual import RangedLink, fast_options

#: fast radio timings for tests (the virtual air has no cost per advertisement)
FAST = fast_options()


class Recorder:
    """A LinkHandler that records every report and lets a test wait for a condition."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.events: list[tuple[str, Link]] = []
        self.frames: list[tuple[Link, bytes]] = []

    def link_up(self, link: Link) -> None:
        self.events.append(("up", link))

    def link_down(self, link: Link) -> None:
        self.events.append(("down", link))

    def frame_received(self, link: Link, frame: bytes) -> None:
        self.frames.append((link, frame))

    @property
    def ups(self) -> list[Link]:
        return [link for kind, link in self.events if kind == "up"]

    @property
    def downs(self) -> list[Link]:
        return [link for kind, link in self.events if kind == "down"]

    @property
    def live(self) -> list[Link]:
        downs = self.downs
        return [link for link in self.ups if link not in downs]

    def payloads(self) -> list[bytes]:
        return [frame for _, frame in self.frames]

    async def until(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        """Wait until ``predicate()`` holds; fail the test after ``timeout`` seconds."""
        async with asyncio.timeout(timeout):
            while not predicate():
                await asyncio.sleep(0.02)


@dataclass
class Node:
    """One test node: identity, backend, transport and its recorder."""

    identity: Identity
    backend: BumbleBackend
    transport: BleTransport
    recorder: Recorder

    def link_to(self, other: Node) -> Link | None:
        for link in self.recorder.live:
            if link.peer == other.identity.public:
                return link
        return None


@dataclass
class World:
    link: RangedLink
    nodes: list[Node] = field(default_factory=list)
    #: bare backends a test started itself (stopped with the world)
    extras: list[BumbleBackend] = field(default_factory=list)

    async def start(self) -> None:
        for node in self.nodes:
            await node.transport.start(node.recorder)

    async def stop(self) -> None:
        for node in self.nodes:
            await node.transport.stop()
        for backend in self.extras:
            await backend.stop()


async def linked(world: World, *pairs: tuple[int, int], timeout: float = 10.0) -> None:
    """Wait until each pair of nodes has a live link, both ways, over one connection.

    When both ends dial at once there are two connections for a moment; settling them closes
    one and replaces a link that may already be up. So this also waits until neither end has
    a session with the other that is not its link, nor one still in its handshake.
    """
    for a, b in pairs:
        na, nb = world.nodes[a], world.nodes[b]

        def settled(na: Node = na, nb: Node = nb) -> bool:
            if na.link_to(nb) is None or nb.link_to(na) is None:
                return False
            for own, other in ((na, nb), (nb, na)):
                for session in own.transport._sessions:
                    try:
                        peer = session.peer
                    except HandshakeError:
                        return False  # still in its handshake
                    if peer == other.identity.public and session.link is None:
                        return False
            return True

        await na.recorder.until(settled, timeout)


def link(a: Node, b: Node) -> BleLink:
    found = a.link_to(b)
    assert isinstance(found, BleLink)
    return found
