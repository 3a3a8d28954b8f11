"""bitchat's binary packet (protocol versions 1 and 2): a frozen dataclass, a strict decoder and
a deterministic encoder, pure code.

Theory of operation
-------------------
Every bitchat frame is one packet, big-endian (upstream ``BinaryProtocol.swift`` in
``localPackages/BitFoundation``, and ``protocol/BinaryProtocol.kt`` on Android)::

    version(1) type(1) ttl(1) timestamp_ms(8) flags(1) payload_len(2, v2: 4)
    sender_id(8)
    recipient_id(8)                      if flags & 0x01
    route_count(1) route(8 * n)          if flags & 0x08 and version 2
    original_size(2, v2: 4)              if flags & 0x04   (counted in payload_len)
    payload(payload_len [- size field])
    signature(64)                        if flags & 0x02
    [PKCS#7 padding]

Flag 0x10 marks a sync response (not signed). A compressed payload is raw DEFLATE.
Compression is not canonical (Apple's and Java's encoders differ), yet the signature covers
the compressed bytes, so a decoded packet keeps the bytes that came off the wire
(``wire_payload``) and every re-encoding (relaying with a lower TTL, the signing preimage)
reuses them: this is Android's rule (``WirePayload`` in ``BinaryProtocol.kt``). The encoder
never compresses on its own; :func:`with_compression` decides once, when a packet is built.

The decoder is stricter than upstream's: a length that runs past the frame, trailing bytes
that are not one valid PKCS#7 pad, a payload that does not inflate to exactly its stated
size, or fields of the wrong size raise :class:`BridgeError` with a reason, never return None.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, replace
from enum import IntEnum

from meshchat.errors import BridgeError, BridgeReason

__all__ = [
    "BROADCAST_ID",
    "DEFAULT_TTL",
    "MAX_PAYLOAD",
    "BitchatPacket",
    "MessageType",
    "decode",
    "encode",
    "pad",
    "should_compress",
    "signing_bytes",
    "unpad",
    "with_compression",
]

NETWORK = "bitchat"
V1_HEADER = 14
V2_HEADER = 16
ID_SIZE = 8
SIGNATURE_SIZE = 64
DEFAULT_TTL = 7  #: TransportConfig.messageTTLDefault
BROADCAST_ID = b"\xff" * ID_SIZE  #: SpecialRecipients.BROADCAST
#: Largest (inflated) payload this bridge accepts. Public chat and announces are far smaller;
#: upstream's own ceiling is 10 MiB for file transfers, which a bridge does not carry.
MAX_PAYLOAD = 65_535
#: CompressionUtil: compress payloads of at least this many bytes ...
COMPRESSION_THRESHOLD = 100
#: ... whose distinct byte values are under 90% of min(len, 256).
COMPRESSION_MAX_DISTINCT = 0.9
#: MessagePadding.blockSizes
BLOCK_SIZES = (256, 512, 1024, 2048)

FLAG_RECIPIENT = 0x01
FLAG_SIGNATURE = 0x02
FLAG_COMPRESSED = 0x04
FLAG_ROUTE = 0x08
FLAG_RSR = 0x10
_KNOWN_FLAGS = FLAG_RECIPIENT | FLAG_SIGNATURE | FLAG_COMPRESSED | FLAG_ROUTE | FLAG_RSR


class MessageType(IntEnum):
    """Packet types (``MessageType.swift``); others are relayed but not interpreted."""

    ANNOUNCE = 0x01
    MESSAGE = 0x02
    LEAVE = 0x03
    NOISE_HANDSHAKE = 0x10
    NOISE_ENCRYPTED = 0x11
    FRAGMENT = 0x20
    REQUEST_SYNC = 0x21
    FILE_TRANSFER = 0x22


def _bad(reason: BridgeReason, detail: str) -> BridgeError:
    return BridgeError(NETWORK, reason, detail)


@dataclass(frozen=True, slots=True)
class BitchatPacket:
    """One bitchat packet. ``payload`` is always the inflated payload; ``wire_payload`` is the
    compressed form it travels in (None when it travels uncompressed)."""

    type: int
    sender_id: bytes
    timestamp: int
    payload: bytes
    ttl: int = DEFAULT_TTL
    recipient_id: bytes | None = None
    signature: bytes | None = None
    version: int = 1
    route: tuple[bytes, ...] = ()
    is_rsr: bool = False
    wire_payload: bytes | None = None

    def __post_init__(self) -> None:
        if self.version not in (1, 2):
            raise _bad(BridgeReason.UNKNOWN_VERSION, f"version {self.version}")
        for name, value in (("type", self.type), ("ttl", self.ttl)):
            if not 0 <= value <= 0xFF:
                raise _bad(BridgeReason.BAD_FIELD, f"{name} {value}")
        if not 0 <= self.timestamp < 2**64:
            raise _bad(BridgeReason.BAD_FIELD, "timestamp")
        if len(self.sender_id) != ID_SIZE:
            raise _bad(BridgeReason.BAD_FIELD, "sender id must be 8 bytes")
        if self.recipient_id is not None and len(self.recipient_id) != ID_SIZE:
            raise _bad(BridgeReason.BAD_FIELD, "recipient id must be 8 bytes")
        if self.signature is not None and len(self.signature) != SIGNATURE_SIZE:
            raise _bad(BridgeReason.BAD_FIELD, "signature must be 64 bytes")
        if self.route and self.version < 2:
            raise _bad(BridgeReason.BAD_FIELD, "a route needs version 2")
        if len(self.route) > 0xFF or any(len(hop) != ID_SIZE for hop in self.route):
            raise _bad(BridgeReason.BAD_FIELD, "route hops are 8 bytes, at most 255")
        if len(self.payload) > MAX_PAYLOAD:
            raise _bad(BridgeReason.OVERSIZED, f"payload of {len(self.payload)} bytes")
        body = len(self.payload) if self.wire_payload is None else len(self.wire_payload) + 2
        if self.version == 1 and body > 0xFFFF:
            raise _bad(BridgeReason.OVERSIZED, "payload too long for version 1")

    @property
    def is_broadcast(self) -> bool:
        """No recipient, or the all-ones broadcast id (``BLEPacketFreshnessPolicy``)."""
        return self.recipient_id is None or self.recipient_id == BROADCAST_ID


def should_compress(data: bytes) -> bool:
    """Upstream's rule: at least 100 bytes, and under 90% distinct byte values."""
    if len(data) < COMPRESSION_THRESHOLD:
        return False
    return len(set(data)) / min(len(data), 256) < COMPRESSION_MAX_DISTINCT


def _deflate(data: bytes) -> bytes:
    # Raw DEFLATE at level 5: Apple's COMPRESSION_ZLIB is zlib at level 5, so this gives iOS
    # (which re-compresses to verify) the best chance of reproducing our bytes.
    compressor = zlib.compressobj(5, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush()


def with_compression(packet: BitchatPacket) -> BitchatPacket:
    """The packet as upstream would send it: compressed when :func:`should_compress` says so
    and the result is smaller (``CompressionUtil.compress``), else uncompressed."""
    if packet.wire_payload is not None or not should_compress(packet.payload):
        return packet
    compressed = _deflate(packet.payload)
    if len(compressed) >= len(packet.payload):
        return packet
    return replace(packet, wire_payload=compressed)


def _inflate(data: bytes, size: int) -> bytes:
    """Inflate ``data`` to exactly ``size`` bytes, never producing more (Android's
    ``inflateExact``). Raw DEFLATE first; zlib-wrapped is accepted as older senders used it."""
    for wbits in (-15, 15):
        inflater = zlib.decompressobj(wbits)
        try:
            out = inflater.decompress(data, size + 1)
        except zlib.error:
            continue
        if len(out) == size and inflater.eof and not inflater.unused_data:
            return out
    raise _bad(BridgeReason.BAD_COMPRESSION, f"does not inflate to {size} bytes")


def pad(data: bytes) -> bytes:
    """``MessagePadding``: pad to the smallest block holding ``len + 16``, PKCS#7-style; no pad
    when it would exceed 255 bytes or the data is past the largest block."""
    target = next((block for block in BLOCK_SIZES if len(data) + 16 <= block), len(data))
    needed = target - len(data)
    if needed <= 0 or needed > 0xFF:
        return data
    return data + bytes([needed]) * needed


def unpad(data: bytes) -> bytes:
    """Strip one valid PKCS#7 pad, or return ``data`` unchanged."""
    if not data:
        return data
    count = data[-1]
    if count == 0 or count > len(data) or data[-count:] != bytes([count]) * count:
        return data
    return data[:-count]


def encode(packet: BitchatPacket, *, padding: bool = False) -> bytes:
    """The wire bytes. ``padding`` applies :func:`pad` (upstream pads only Noise frames over
    BLE, but always pads the signing preimage)."""
    size_field = 4 if packet.version == 2 else 2
    body = packet.payload if packet.wire_payload is None else packet.wire_payload
    body_len = len(body) + (size_field if packet.wire_payload is not None else 0)
    flags = 0
    if packet.recipient_id is not None:
        flags |= FLAG_RECIPIENT
    if packet.signature is not None:
        flags |= FLAG_SIGNATURE
    if packet.wire_payload is not None:
        flags |= FLAG_COMPRESSED
    if packet.route:
        flags |= FLAG_ROUTE
    if packet.is_rsr:
        flags |= FLAG_RSR
    out = bytearray((packet.version, packet.type, packet.ttl))
    out += packet.timestamp.to_bytes(8, "big")
    out.append(flags)
    out += body_len.to_bytes(size_field, "big")
    out += packet.sender_id
    if packet.recipient_id is not None:
        out += packet.recipient_id
    if packet.route:
        out.append(len(packet.route))
        for hop in packet.route:
            out += hop
    if packet.wire_payload is not None:
        out += len(packet.payload).to_bytes(size_field, "big")
    out += body
    if packet.signature is not None:
        out += packet.signature
    return pad(bytes(out)) if padding else bytes(out)


def signing_bytes(packet: BitchatPacket) -> bytes:
    """What the Ed25519 signature covers (``toBinaryDataForSigning``): the packet re-encoded
    with ttl 0, no signature, the sync flag clear, the payload in its wire form, padded."""
    unsigned = replace(packet, ttl=0, signature=None, is_rsr=False)
    return encode(unsigned, padding=True)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def take(self, count: int, what: str) -> bytes:
        if self.at + count > len(self.data):
            raise _bad(BridgeReason.TRUNCATED, f"{what} runs past the frame")
        chunk = self.data[self.at : self.at + count]
        self.at += count
        return chunk

    def number(self, count: int, what: str) -> int:
        return int.from_bytes(self.take(count, what), "big")


def decode(data: bytes, *, max_payload: int = MAX_PAYLOAD) -> BitchatPacket:
    """Parse one frame. Raises :class:`BridgeError` (TRUNCATED, OVERSIZED, UNKNOWN_VERSION,
    BAD_FIELD, TRAILING, BAD_COMPRESSION) on anything that is not exactly one packet,
    optionally followed by one PKCS#7 pad."""
    if len(data) < V1_HEADER + ID_SIZE:
        raise _bad(BridgeReason.TRUNCATED, f"{len(data)} bytes is shorter than any packet")
    reader = _Reader(data)
    version = reader.number(1, "version")
    if version not in (1, 2):
        raise _bad(BridgeReason.UNKNOWN_VERSION, f"version {version}")
    size_field = 4 if version == 2 else 2
    kind = reader.number(1, "type")
    ttl = reader.number(1, "ttl")
    timestamp = reader.number(8, "timestamp")
    flags = reader.number(1, "flags")
    if flags & ~_KNOWN_FLAGS:
        raise _bad(BridgeReason.BAD_FIELD, f"unknown flags {flags:#04x}")
    if flags & FLAG_ROUTE and version < 2:
        raise _bad(BridgeReason.BAD_FIELD, "route flag on a version 1 packet")
    body_len = reader.number(size_field, "payload length")
    if body_len > max_payload + size_field:
        raise _bad(BridgeReason.OVERSIZED, f"payload length {body_len}")
    sender = reader.take(ID_SIZE, "sender id")
    recipient = reader.take(ID_SIZE, "recipient id") if flags & FLAG_RECIPIENT else None
    route: tuple[bytes, ...] = ()
    if flags & FLAG_ROUTE:
        hops = reader.number(1, "route count")
        route = tuple(reader.take(ID_SIZE, "route hop") for _ in range(hops))
    wire_payload: bytes | None = None
    if flags & FLAG_COMPRESSED:
        if body_len <= size_field:
            raise _bad(BridgeReason.BAD_COMPRESSION, "no compressed bytes")
        original = reader.number(size_field, "original size")
        if original == 0 or original > max_payload:
            raise _bad(BridgeReason.OVERSIZED, f"original size {original}")
        wire_payload = reader.take(body_len - size_field, "compressed payload")
        payload = _inflate(wire_payload, original)
    else:
        payload = reader.take(body_len, "payload")
    signature = reader.take(SIGNATURE_SIZE, "signature") if flags & FLAG_SIGNATURE else None
    rest = data[reader.at :]
    if rest and unpad(rest) != b"":
        raise _bad(BridgeReason.TRAILING, f"{len(rest)} bytes after the packet")
    return BitchatPacket(
        type=kind,
        sender_id=sender,
        timestamp=timestamp,
        payload=payload,
        ttl=ttl,
        recipient_id=recipient,
        signature=signature,
        version=version,
        route=route,
        is_rsr=bool(flags & FLAG_RSR),
        wire_payload=wire_payload,
    )
