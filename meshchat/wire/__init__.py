"""The wire: packets, their strict codec, stream framing and the link handshake."""

from meshchat.wire.codec import build, check_time, decode, encode, parse, signed_bytes, verify
from meshchat.wire.packet import (
    BROADCAST,
    DEFAULT_TTL,
    MAX_PACKET_SIZE,
    MAX_PAYLOAD_SIZE,
    MAX_TTL,
    Destination,
    DestKind,
    Packet,
    PacketKind,
    Suite,
)

__all__ = [
    "BROADCAST",
    "DEFAULT_TTL",
    "MAX_PACKET_SIZE",
    "MAX_PAYLOAD_SIZE",
    "MAX_TTL",
    "DestKind",
    "Destination",
    "Packet",
    "PacketKind",
    "Suite",
    "build",
    "check_time",
    "decode",
    "encode",
    "parse",
    "signed_bytes",
    "verify",
]
