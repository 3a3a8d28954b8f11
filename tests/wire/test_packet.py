"""The Packet dataclass: construction checks and the relay transformation."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshchat.errors import PacketError, PacketReason
from meshchat.wire.packet import (
    BROADCAST,
    MAX_PAYLOAD_SIZE,
    MAX_TTL,
    Destination,
    DestKind,
    Packet,
    PacketKind,
    Suite,
)


def _packet(**changes: Any) -> Packet:
    fields: dict[str, Any] = {
        "kind": PacketKind.MESSAGE,
        "packet_id": b"\x01" * 16,
        "origin": b"\x02" * 32,
        "destination": BROADCAST,
        "created_ms": 1_700_000_000_000,
        "ttl": 5,
        "hops": 0,
        "suite": Suite.SIGNED,
        "payload": b"hi",
        "signature": b"\x03" * 64,
    }
    fields.update(changes)
    return Packet(**fields)


def test_valid_packet_constructs() -> None:
    packet = _packet()
    assert packet.version == 1
    assert packet.ttl == 5


@pytest.mark.parametrize(
    "changes",
    [
        {"version": 2},
        {"kind": 1},  # a plain int, not the enum
        {"suite": 0},
        {"destination": (0, b"")},
        {"packet_id": b"\x01" * 15},
        {"packet_id": bytearray(16)},
        {"origin": b"\x02" * 33},
        {"signature": b"\x03" * 63},
        {"payload": b"x" * (MAX_PAYLOAD_SIZE + 1)},
        {"payload": "text"},
        {"created_ms": -1},
        {"created_ms": 2**53},
        {"created_ms": True},
        {"created_ms": 1.5},
        {"hops": -1},
        {"hops": MAX_TTL + 1},
        {"hops": True},
        {"ttl": -1},
        {"ttl": False},
    ],
    ids=repr,
)
def test_bad_fields_rejected(changes: dict[str, Any]) -> None:
    with pytest.raises(PacketError) as info:
        _packet(**changes)
    assert info.value.reason is PacketReason.BAD_FIELD


def test_ttl_above_max_rejected_with_its_own_reason() -> None:
    _packet(ttl=MAX_TTL)
    with pytest.raises(PacketError) as info:
        _packet(ttl=MAX_TTL + 1)
    assert info.value.reason is PacketReason.TTL_TOO_HIGH


def test_payload_at_limit_accepted() -> None:
    assert len(_packet(payload=b"x" * MAX_PAYLOAD_SIZE).payload) == MAX_PAYLOAD_SIZE


@pytest.mark.parametrize(
    ("kind", "size", "ok"),
    [
        (DestKind.BROADCAST, 0, True),
        (DestKind.BROADCAST, 1, False),
        (DestKind.NODE, 16, True),
        (DestKind.NODE, 15, False),
        (DestKind.CHANNEL, 16, True),
        (DestKind.CHANNEL, 32, False),
    ],
)
def test_destination_sizes(kind: DestKind, size: int, ok: bool) -> None:
    if ok:
        assert Destination(kind, b"\x00" * size).kind is kind
    else:
        with pytest.raises(PacketError):
            Destination(kind, b"\x00" * size)


def test_destination_constructors() -> None:
    assert Destination.node(b"\x05" * 16) == Destination(DestKind.NODE, b"\x05" * 16)
    assert Destination.channel(b"\x06" * 16).kind is DestKind.CHANNEL
    with pytest.raises(PacketError):
        Destination.node(b"short")


def test_packet_is_frozen() -> None:
    packet = _packet()
    with pytest.raises(AttributeError):
        packet.ttl = 3  # type: ignore[misc]


def test_relayed_decrements_ttl_and_counts_a_hop() -> None:
    packet = _packet(ttl=5, hops=2)
    relayed = packet.relayed()
    assert (relayed.ttl, relayed.hops) == (4, 3)
    assert replace(relayed, ttl=5, hops=2) == packet


def test_relayed_clamps_inflated_ttl() -> None:
    # A relay that inflated the TTL cannot make the packet travel past MAX_TTL hops in all.
    packet = _packet(ttl=MAX_TTL, hops=10)
    relayed = packet.relayed()
    assert relayed.hops == 11
    assert relayed.ttl + relayed.hops <= MAX_TTL


def test_relayed_at_max_hops_stays_valid() -> None:
    relayed = _packet(ttl=3, hops=MAX_TTL).relayed()
    assert relayed.hops == MAX_TTL
    assert relayed.ttl == 0


@given(ttl=st.integers(0, MAX_TTL), hops=st.integers(0, MAX_TTL))
def test_relayed_always_bounded(ttl: int, hops: int) -> None:
    relayed = _packet(ttl=ttl, hops=hops).relayed()
    assert relayed.ttl + relayed.hops <= MAX_TTL
    assert relayed.hops == min(hops + 1, MAX_TTL)
    assert 0 <= relayed.ttl <= max(0, ttl - 1)
