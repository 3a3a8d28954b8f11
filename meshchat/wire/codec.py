"""Strict, bounded encoding of :class:`Packet` to CBOR and back, and signature coverage.

Wire form: one CBOR array of eleven items, in this order::

    [version, kind, packet_id, origin, [dest_kind, dest_value], created_ms,
     ttl, hops, suite, payload, signature]

The signature is Ed25519 by ``origin`` over ``SIGN_DOMAIN`` followed by the canonical CBOR array
of every field except ``ttl``, ``hops`` and the signature itself (the fields relays change).

Decoding happens in three separately callable steps so a router can drop duplicates before
paying for a signature check: :func:`parse` (size, structure and field checks),
:func:`check_time` (creation-time window) and :func:`verify` (signature). :func:`decode` runs
all three. Each raises :class:`PacketError` with a :class:`PacketReason`; none returns a
partial object.
"""

from __future__ import annotations

import os
from dataclasses import replace

import cbor2
import nacl.bindings
import nacl.exceptions

from meshchat.errors import PacketError, PacketReason
from meshchat.identity import Identity
from meshchat.wire.cborcheck import check_cbor
from meshchat.wire.fastparse import read_fixed
from meshchat.wire.packet import (
    MAX_AGE_MS,
    MAX_FUTURE_SKEW_MS,
    MAX_PACKET_SIZE,
    MAX_TTL,
    PACKET_ID_SIZE,
    PROTOCOL_VERSION,
    Destination,
    DestKind,
    Packet,
    PacketKind,
    Suite,
)

__all__ = [
    "SIGN_DOMAIN",
    "build",
    "check_time",
    "decode",
    "encode",
    "parse",
    "signed_bytes",
    "verify",
]

SIGN_DOMAIN = b"meshchat-packet-v1\x00"
_FIELDS = 11
_KINDS: dict[int, PacketKind] = {int(k): k for k in PacketKind}
_SUITES: dict[int, Suite] = {int(s): s for s in Suite}
_DEST_KINDS: dict[int, DestKind] = {int(k): k for k in DestKind}


def _header(packet: Packet) -> list[object]:
    return [
        packet.version,
        int(packet.kind),
        packet.packet_id,
        packet.origin,
        [int(packet.destination.kind), packet.destination.value],
        packet.created_ms,
    ]


def signed_bytes(packet: Packet) -> bytes:
    """The exact bytes the packet signature covers."""
    if packet.signed_cache is not None:
        return packet.signed_cache
    return SIGN_DOMAIN + cbor2.dumps(
        [*_header(packet), int(packet.suite), packet.payload], canonical=True
    )


def encode(packet: Packet) -> bytes:
    """The packet's wire bytes. Raises :class:`PacketError` if they would exceed the limit."""
    frame = cbor2.dumps(
        [
            *_header(packet),
            packet.ttl,
            packet.hops,
            int(packet.suite),
            packet.payload,
            packet.signature,
        ],
        canonical=True,
    )
    if len(frame) > MAX_PACKET_SIZE:
        raise PacketError(PacketReason.OVERSIZED, f"{len(frame)} > {MAX_PACKET_SIZE} bytes")
    return frame


def build(
    identity: Identity,
    kind: PacketKind,
    destination: Destination,
    suite: Suite,
    payload: bytes,
    now_ms: int,
    ttl: int,
    packet_id: bytes | None = None,
) -> Packet:
    """Create and sign a new packet originated by ``identity``. TTL is clamped to the maximum."""
    unsigned = Packet(
        kind=kind,
        packet_id=packet_id if packet_id is not None else os.urandom(PACKET_ID_SIZE),
        origin=identity.public.sign_public,
        destination=destination,
        created_ms=now_ms,
        ttl=max(1, min(ttl, MAX_TTL)),
        hops=0,
        suite=suite,
        payload=payload,
        signature=bytes(64),
    )
    # The payload bound keeps every packet under MAX_PACKET_SIZE; encode() checks it again.
    return replace(unsigned, signature=identity.sign(signed_bytes(unsigned)))


def parse(frame: bytes) -> Packet:
    """Check size, structure and fields of ``frame``; no signature or time checks."""
    if not isinstance(frame, bytes | bytearray | memoryview):
        raise PacketError(PacketReason.MALFORMED, "frame is not bytes")
    if len(frame) > MAX_PACKET_SIZE:
        raise PacketError(PacketReason.OVERSIZED, f"{len(frame)} > {MAX_PACKET_SIZE} bytes")
    frame = bytes(frame)
    fixed = read_fixed(frame)
    if fixed is not None:
        (version, kind, packet_id, origin, dest_kind, dest_value, created, ttl, hops, suite,
         payload, sig, ttl_at, suite_at, sig_at) = fixed  # fmt: skip
        # Canonical encoding makes the signed fields' bytes in the frame identical to their
        # encoding in the signed array: slice them instead of encoding them again.
        signed = SIGN_DOMAIN + b"\x88" + frame[1:ttl_at] + frame[suite_at:sig_at]
        return _packet(version, kind, packet_id, origin, [dest_kind, dest_value], created,
                       ttl, hops, suite, payload, sig, signed)  # fmt: skip
    offsets = check_cbor(frame, max_items=_FIELDS + 4, max_depth=2)
    try:
        fields = cbor2.loads(frame)
    except Exception as exc:  # cbor2 raises several types; all mean the same here
        raise PacketError(PacketReason.MALFORMED, f"CBOR: {exc}") from None
    if not isinstance(fields, list) or len(fields) != _FIELDS:
        raise PacketError(PacketReason.MALFORMED, "packet is not an array of 11 items")
    signed = (
        SIGN_DOMAIN + b"\x88" + frame[offsets[0] : offsets[6]] + frame[offsets[8] : offsets[10]]
    )
    version, kind, packet_id, origin, dest, created, ttl, hops, suite, payload, sig = fields
    return _packet(
        version, kind, packet_id, origin, dest, created, ttl, hops, suite, payload, sig, signed
    )


def _packet(
    version: object,
    kind: object,
    packet_id: object,
    origin: object,
    dest: object,
    created: object,
    ttl: object,
    hops: object,
    suite: object,
    payload: object,
    sig: object,
    signed: bytes,
) -> Packet:
    """Check decoded field values and build the packet (both parse paths end here)."""
    if version != PROTOCOL_VERSION or type(version) is not int:
        raise PacketError(PacketReason.UNKNOWN_VERSION, repr(version)[:20])
    # Members by value from plain dicts (an enum call costs several times a lookup); the
    # ``type(...) is int`` checks keep True and 1.0, which hash like 1, out.
    packet_kind = _KINDS.get(kind) if type(kind) is int else None
    if packet_kind is None:
        raise PacketError(PacketReason.UNKNOWN_KIND, repr(kind)[:20])
    packet_suite = _SUITES.get(suite) if type(suite) is int else None
    if packet_suite is None:
        raise PacketError(PacketReason.UNKNOWN_SUITE, repr(suite)[:20])
    dest_kind = (
        _DEST_KINDS.get(dest[0])
        if isinstance(dest, list) and len(dest) == 2 and type(dest[0]) is int
        else None
    )
    if dest_kind is None:
        raise PacketError(PacketReason.BAD_FIELD, "destination")
    return Packet(
        kind=packet_kind,
        packet_id=packet_id,  # type: ignore[arg-type]  # checked by Packet
        origin=origin,  # type: ignore[arg-type]
        destination=Destination(dest_kind, dest[1]),  # type: ignore[index]
        created_ms=created,  # type: ignore[arg-type]
        ttl=ttl,  # type: ignore[arg-type]
        hops=hops,  # type: ignore[arg-type]
        suite=packet_suite,
        payload=payload,  # type: ignore[arg-type]
        signature=sig,  # type: ignore[arg-type]
        version=version,
        signed_cache=signed,
    )


def check_time(packet: Packet, now_ms: int) -> None:
    """Reject a packet created too far in the future or longer ago than the horizon."""
    if packet.created_ms > now_ms + MAX_FUTURE_SKEW_MS:
        raise PacketError(PacketReason.FROM_FUTURE, f"{packet.created_ms - now_ms} ms ahead")
    if packet.created_ms < now_ms - MAX_AGE_MS:
        raise PacketError(PacketReason.EXPIRED, f"{now_ms - packet.created_ms} ms old")


def verify(packet: Packet) -> None:
    """Raise :class:`PacketError` (``BAD_SIGNATURE``) unless the origin signed this packet."""
    try:
        nacl.bindings.crypto_sign_open(packet.signature + signed_bytes(packet), packet.origin)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.CryptoError, ValueError):
        raise PacketError(PacketReason.BAD_SIGNATURE) from None


def decode(frame: bytes, now_ms: int) -> Packet:
    """Parse, time-check and verify one frame; the only way untrusted bytes become a packet."""
    packet = parse(frame)
    check_time(packet, now_ms)
    verify(packet)
    return packet
