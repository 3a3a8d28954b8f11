"""What the router asks its owner to do. The owner executes actions in the order given."""

from __future__ import annotations

from dataclasses import dataclass

from meshchat.wire.packet import Packet

__all__ = ["Action", "Carry", "Deliver", "Drop", "Transmit", "Uncarry"]


@dataclass(frozen=True, slots=True)
class Transmit:
    """Send ``frame`` on each of ``links``."""

    frame: bytes
    links: tuple[str, ...]
    packet_id: bytes


@dataclass(frozen=True, slots=True)
class Deliver:
    """A verified packet addressed to this node (or a channel it is in) for the application."""

    packet: Packet
    link: str | None


@dataclass(frozen=True, slots=True)
class Drop:
    """A frame was not accepted or not relayed; ``reason`` is a stable short name."""

    reason: str
    link: str | None
    packet_id: bytes | None = None


@dataclass(frozen=True, slots=True)
class Carry:
    """Keep this packet for store-and-forward (persist it before it is relayed)."""

    packet: Packet
    frame: bytes
    expires_ms: int


@dataclass(frozen=True, slots=True)
class Uncarry:
    """Stop carrying a packet: its delivery was acknowledged, or it expired."""

    packet_id: bytes


Action = Transmit | Deliver | Drop | Carry | Uncarry
