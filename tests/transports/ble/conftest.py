"""The ``ble_world`` fixture: worlds of BLE nodes, all stopped at teardown."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence

import pytest
from ble_world import FAST, Node, Recorder, World

from meshchat.identity import Identity
from meshchat.transports.ble import BleOptions, BleTransport
from meshchat.transports.ble.virtual import RangedLink, make_virtual_backends


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
