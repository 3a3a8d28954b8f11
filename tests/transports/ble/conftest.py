"""BLE test worlds: BleTransports over bumble virtual radios on one simulated air."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field

import pytest

from meshchat.identity import Identity
from meshchat.transports.base import Link
from meshchat.transports.ble import AdvertiseSettings, BleOptions, BleTransport, ScanSettings
from meshchat.transports.ble.bumble_backend import BumbleBackend
from meshchat.transports.ble.virtual import RangedLink, make_virtual_backends

#: fast radio timings for tests (the virtual air has no cost per advertisement)
FAST = BleOptions(
    scan=ScanSettings(interval_ms=20, window_ms=20),
    advertise=AdvertiseSettings(interval_ms=20),
    connect_timeout=2.0,
    dial_grace=0.3,
    backoff_initial=0.2,
    backoff_max=1.0,
    candidate_ttl=2.0,
    tick=0.05,
)


class Recorder:
    """A LinkHandler that records every report and lets a test wait for a condition."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.events: list[tuple[str, Link]] = []
        self.frames: list[tuple[Link, bytes]] = []
        self._changed = asyncio.Event()

    def link_up(self, link: Link) -> None:
        self.events.append(("up", link))
        self._changed.set()

    def link_down(self, link: Link) -> None:
        self.events.append(("down", link))
        self._changed.set()

    def frame_received(self, link: Link, frame: bytes) -> None:
        self.frames.append((link, frame))
        self._changed.set()

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
                self._changed.clear()
                try:
                    await asyncio.wait_for(self._changed.wait(), 0.05)
                except TimeoutError:
                    pass


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


@pytest.fixture
async def ble_world() -> AsyncIterator[Callable[..., World]]:
    """Build worlds of N BLE nodes; every transport is stopped at teardown."""
    worlds: list[World] = []

    def build(
        count: int,
        *,
        mtu: int | Sequence[int] = 517,
        rate_limit: float | None = None,
        options: BleOptions = FAST,
        max_links: int | Sequence[int] = 7,
        rssi_floor: int = -90,
        apart: Sequence[tuple[int, int]] = (),
    ) -> World:
        air = RangedLink()
        backends = make_virtual_backends(count, link=air, mtu=mtu, rate_limit=rate_limit)
        world = World(air)
        caps = [max_links] * count if isinstance(max_links, int) else list(max_links)
        for index, backend in enumerate(backends):
            identity = Identity.generate()
            transport = BleTransport(
                identity, backend, max_links=caps[index], rssi_floor=rssi_floor, options=options
            )
            world.nodes.append(Node(identity, backend, transport, Recorder(chr(65 + index))))
        for a, b in apart:
            air.set_in_range(backends[a], backends[b], False)
        worlds.append(world)
        return world

    yield build
    for world in worlds:
        await world.stop()
