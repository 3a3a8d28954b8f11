"""Values cut to fill whole data packets: 495 bytes (two 251-byte packets) at MTU 517, not 512
(three, the last carrying 17 bytes)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from ble_world import World, link, linked
from hypothesis import given
from hypothesis import strategies as st

from meshchat.transports.ble.seam import ATT_L2CAP_HEADER, MAX_ATT_VALUE, packed_value_size


@pytest.mark.parametrize(
    ("max_value", "packet", "expected"),
    [
        (512, 251, 495),
        (244, 251, 244),
        (20, 251, 20),
        (20, 27, 20),
        (512, 27, 506),
        (200, 251, 200),
    ],
)
def test_packed_sizes(max_value: int, packet: int, expected: int) -> None:
    assert packed_value_size(max_value, packet) == expected


@given(st.integers(20, MAX_ATT_VALUE), st.integers(1, 1024))
def test_packed_size_is_never_larger_and_fills_its_packets(max_value: int, packet: int) -> None:
    size = packed_value_size(max_value, packet)
    assert 0 < size <= max_value
    if size < max_value:  # shortened: the PDU is whole packets, and no more than one is lost
        assert (size + ATT_L2CAP_HEADER) % packet == 0
        assert size >= max_value - packet


@pytest.mark.parametrize(("mtu", "value"), [(23, 20), (247, 244), (517, 495)])
async def test_links_cut_values_to_whole_acl_packets(
    ble_world: Callable[..., World], mtu: int, value: int
) -> None:
    world = ble_world(2, mtu=mtu)
    await world.start()
    await linked(world, (0, 1))
    a, b = world.nodes
    for connection in (link(a, b).session.connection, link(b, a).session.connection):
        assert connection.value_size == value
        assert connection.max_value_size == min(mtu - 3, MAX_ATT_VALUE)
