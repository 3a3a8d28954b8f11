"""What a passive observer of the air learns from a meshchat node's advertisements."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from ble_world import FAST, Node, Recorder, World

from meshchat.identity import Identity
from meshchat.transports.ble import BleTransport, GattProfile, advert
from meshchat.transports.ble.seam import SERVICE_UUID
from meshchat.transports.ble.virtual import make_virtual_backends

PERIOD = 900.0


def constant_part(data: bytes) -> bytes:
    """The bytes every meshchat advertisement shares: flags, service UUID, name header."""
    return data[: len(data) - 8]


async def test_advertisements_of_two_periods_share_no_identifying_bytes(
    ble_world: Callable[..., World],
) -> None:
    world = ble_world(0)
    clock = [10 * PERIOD + 1.0]
    identity = Identity.generate()
    (backend,) = make_virtual_backends(1, link=world.link)
    transport = BleTransport(
        identity, backend, rotation_seconds=PERIOD, options=FAST, wall_clock=lambda: clock[0]
    )
    world.nodes.append(Node(identity, backend, transport, Recorder("X")))
    (other_backend,) = make_virtual_backends(1, link=world.link)
    other = BleTransport(Identity.generate(), other_backend, options=FAST)
    world.nodes.append(Node(other.identity, other_backend, other, Recorder("Y")))
    (observer,) = make_virtual_backends(1, link=world.link)
    world.extras.append(observer)
    await observer.start(GattProfile(), lambda connection: None)
    heard: list[tuple[str, bytes]] = []

    def record(advertisement: Any) -> None:
        data = bytes(advertisement.data_bytes)[: advert.LEGACY_AD_LIMIT]
        if advert.parse(data, SERVICE_UUID) is not None:
            heard.append((str(advertisement.address), data))

    observer.device.on("advertisement", record)
    await observer.device.start_scanning(active=False, scan_interval=20, scan_window=20)
    await transport.start(Recorder("X"))
    await other.start(Recorder("Y"))

    async def capture(node: BleTransport) -> tuple[str, bytes]:
        heard.clear()
        name = advert.id_to_name(node.adv_id).encode()
        async with asyncio.timeout(5):
            while not any(data.endswith(name) for _, data in heard):
                await asyncio.sleep(0.02)
        return next((a, d) for a, d in heard if d.endswith(name))

    first_address, first = await capture(transport)
    _, someone_else = await capture(other)
    clock[0] += PERIOD  # the next rotation period begins
    await transport.rotate()
    second_address, second = await capture(transport)

    # What the two periods have in common is exactly what every meshchat node sends.
    assert constant_part(first) == constant_part(second) == constant_part(someone_else)
    assert first[-8:] != second[-8:]
    first_id = advert.id_from_name(first[-8:])
    second_id = advert.id_from_name(second[-8:])
    assert first_id is not None and second_id is not None and first_id != second_id
    # The address rotated too, and is a resolvable private address (top bits 01).
    assert first_address != second_address
    for address in (first_address, second_address):
        assert int(address[:2], 16) >> 6 == 0b01
    # Nothing derived from the identity is in the air.
    public = identity.public
    for data in (first, second):
        for part in (public.node_id, public.sign_public, public.box_public):
            for start in range(len(part) - 3):
                assert part[start : start + 4] not in data
    # Old-period advertisements stopped: only the new one is heard now.
    heard.clear()
    await asyncio.sleep(0.3)
    own = {a for a, d in heard if not d.endswith(someone_else[-8:])}
    assert own == {second_address}
