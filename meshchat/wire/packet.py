"""The packet: meshchat's one wire object, as a frozen dataclass checked at construction.

Field sizes and network-wide limits live here as named constants; ``docs/protocol.md`` gives the
byte-level layout. A :class:`Packet` can only exist with fields of the right types and sizes:
``__post_init__`` raises :class:`PacketError` (reason ``BAD_FIELD``) otherwise, so the codec
never hands out a partial or ill-formed object.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import IntEnum

from meshchat.errors import PacketError, PacketReason

__all__ = [
    "BROADCAST",
    "CHANNEL_ID_SIZE",
    "DEFAULT_TTL",
    "MAX_AGE_MS",
    "MAX_FUTURE_SKEW_MS",
    "MAX_PACKET_SIZE",
    "MAX_PAYLOAD_SIZE",
    "MAX_TTL",
    "PACKET_ID_SIZE",
    "PROTOCOL_VERSION",
    "DestKind",
    "Destination",
    "Packet",
    "PacketKind",
    "Suite",
]

PROTOCOL_VERSION = 1
PACKET_ID_SIZE = 16
ORIGIN_SIZE = 32  # the Ed25519 public key of the signer
NODE_ID_SIZE = 16
CHANNEL_ID_SIZE = 16
SIGNATURE_SIZE = 64

#: Largest encoded packet. Chosen so a full packet crosses a BLE link at the common
#: ATT MTU of 247 in at most 9 fragments (244-byte values minus a 4-byte fragment header).
MAX_PACKET_SIZE = 2048
#: Largest payload; the rest of MAX_PACKET_SIZE covers the header fields and signature.
MAX_PAYLOAD_SIZE = 1800
#: The network maximum for TTL: no packet travels more than this many hops.
MAX_TTL = 16
DEFAULT_TTL = 12
#: How far a creation time may lie ahead of the receiver's clock (clocks in the field drift).
MAX_FUTURE_SKEW_MS = 10 * 60 * 1000
#: How old a packet may be and still be accepted: the store-and-forward horizon.
MAX_AGE_MS = 7 * 24 * 3600 * 1000
_MAX_TIME_MS = 2**53


class PacketKind(IntEnum):
    """What a packet is for."""

    MESSAGE = 1  #: a chat message (direct or to a channel)
    ACK = 2  #: an end-to-end acknowledgement of a direct message
    ANNOUNCE = 3  #: a node announcing its box key and display name to its neighbourhood
    #: a piece of a file, or a request for pieces, to one node (``meshchat.files.wire``):
    #: relayed like any packet but never carried, and at file priority on every link
    FILE = 4
    #: a live push-to-talk frame to one neighbour (``meshchat.talk.wire``): sent straight on
    #: a LAN link, never routed, relayed or carried
    TALK = 5


class Suite(IntEnum):
    """How the payload is protected (the signature always covers it)."""

    SIGNED = 0  #: plaintext, authenticated by the packet signature (public channel, acks)
    BOX = 1  #: X25519 + XSalsa20-Poly1305 to one recipient (crypto_box)
    CHANNEL = 2  #: XSalsa20-Poly1305 under a channel key derived from a passphrase
    #: sealed sender: X3DH + Double Ratchet inside a sealed box to a rotating tag, signed by a
    #: one-packet key (``meshchat.crypto.sealed``)
    RATCHET = 3
    #: a private group: sender keys under the epoch's header key, signed by a one-packet key
    #: (``meshchat.group.sender_keys``)
    GROUP = 4


class DestKind(IntEnum):
    BROADCAST = 0
    NODE = 1
    CHANNEL = 2


@dataclass(frozen=True, slots=True)
class Destination:
    """Where a packet is going: everybody, one node id, or one channel id."""

    kind: DestKind
    value: bytes = b""

    def __post_init__(self) -> None:
        expected = _DEST_SIZES.get(self.kind, CHANNEL_ID_SIZE)
        if not isinstance(self.value, bytes) or len(self.value) != expected:
            raise PacketError(PacketReason.BAD_FIELD, f"destination {self.kind.name} size")

    @classmethod
    def node(cls, node_id: bytes) -> Destination:
        return cls(DestKind.NODE, node_id)

    @classmethod
    def channel(cls, channel_id: bytes) -> Destination:
        return cls(DestKind.CHANNEL, channel_id)


_DEST_SIZES = {DestKind.BROADCAST: 0, DestKind.NODE: NODE_ID_SIZE}
BROADCAST = Destination(DestKind.BROADCAST)


def _require(condition: bool, what: str) -> None:
    if not condition:
        raise PacketError(PacketReason.BAD_FIELD, what)


@dataclass(frozen=True, slots=True)
class Packet:
    """A signed packet. ``ttl`` and ``hops`` change in transit and are not signed."""

    kind: PacketKind
    packet_id: bytes
    origin: bytes
    destination: Destination
    created_ms: int
    ttl: int
    hops: int
    suite: Suite
    payload: bytes
    signature: bytes
    version: int = PROTOCOL_VERSION
    #: The bytes the signature covers, when the codec sliced them from a received frame
    #: (set only by :func:`meshchat.wire.codec.parse`; never compared or shown).
    signed_cache: bytes | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        # One expression for the common case (every packet is built or parsed through here);
        # only a packet that fails it pays for the checks one by one, which name the field.
        if (
            self.version == PROTOCOL_VERSION
            and isinstance(self.kind, PacketKind)
            and isinstance(self.suite, Suite)
            and isinstance(self.destination, Destination)
            and isinstance(self.packet_id, bytes)
            and len(self.packet_id) == PACKET_ID_SIZE
            and isinstance(self.origin, bytes)
            and len(self.origin) == ORIGIN_SIZE
            and isinstance(self.signature, bytes)
            and len(self.signature) == SIGNATURE_SIZE
            and isinstance(self.payload, bytes)
            and len(self.payload) <= MAX_PAYLOAD_SIZE
            and type(self.created_ms) is int
            and 0 <= self.created_ms < _MAX_TIME_MS
            and type(self.hops) is int
            and 0 <= self.hops <= MAX_TTL
            and type(self.ttl) is int
            and 0 <= self.ttl <= MAX_TTL
        ):
            return
        self._explain()

    def _explain(self) -> None:
        """Raise the error naming the first field that fails :meth:`__post_init__`."""
        _require(self.version == PROTOCOL_VERSION, "version")
        _require(isinstance(self.kind, PacketKind), "kind")
        _require(isinstance(self.suite, Suite), "suite")
        _require(isinstance(self.destination, Destination), "destination")
        _require(
            isinstance(self.packet_id, bytes) and len(self.packet_id) == PACKET_ID_SIZE,
            "packet id size",
        )
        _require(isinstance(self.origin, bytes) and len(self.origin) == ORIGIN_SIZE, "origin size")
        _require(
            isinstance(self.signature, bytes) and len(self.signature) == SIGNATURE_SIZE,
            "signature size",
        )
        _require(
            isinstance(self.payload, bytes) and len(self.payload) <= MAX_PAYLOAD_SIZE,
            "payload size",
        )
        _require(
            type(self.created_ms) is int and 0 <= self.created_ms < _MAX_TIME_MS, "creation time"
        )
        _require(type(self.hops) is int and 0 <= self.hops <= MAX_TTL, "hops")
        _require(type(self.ttl) is int and self.ttl >= 0, "ttl")
        if self.ttl > MAX_TTL:
            raise PacketError(PacketReason.TTL_TOO_HIGH, f"{self.ttl} > {MAX_TTL}")

    def relayed(self) -> Packet:
        """This packet as a relay sends it on: one hop more, one TTL less.

        The remaining TTL is clamped so that ``ttl + hops`` never exceeds :data:`MAX_TTL`,
        which bounds how far a packet travels even if a relay inflated its TTL.
        """
        hops = min(self.hops + 1, MAX_TTL)
        ttl = max(0, min(self.ttl - 1, MAX_TTL - hops))
        return replace(self, ttl=ttl, hops=hops)
