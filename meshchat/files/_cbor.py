"""The strict CBOR loading shared by the file bodies (announcement, request, chunk)."""

from __future__ import annotations

import cbor2

from meshchat.errors import PacketError, PacketReason
from meshchat.wire.cborcheck import check_cbor

__all__ = ["bytes_of", "dumps", "load", "text_of", "uint_of"]


def dumps(fields: list[object]) -> bytes:
    return cbor2.dumps(fields, canonical=True)


def load(data: bytes, counts: tuple[int, ...], limit: int, max_items: int) -> list[object]:
    """A canonical CBOR array of one of ``counts`` items, ``data`` at most ``limit`` bytes,
    at most ``max_items`` items in all and nested at most 2 deep."""
    if not isinstance(data, bytes):
        raise PacketError(PacketReason.MALFORMED, "body is not bytes")
    if len(data) > limit:
        raise PacketError(PacketReason.OVERSIZED, f"body over {limit} bytes")
    check_cbor(data, max_items=max_items, max_depth=2)
    try:
        fields = cbor2.loads(data)
    except Exception as exc:  # cbor2 raises several types; all mean the same here
        raise PacketError(PacketReason.MALFORMED, f"body CBOR: {exc}") from exc
    if not isinstance(fields, list) or len(fields) not in counts:
        shown = " or ".join(map(str, counts))
        raise PacketError(PacketReason.BAD_FIELD, f"body is not an array of {shown}")
    return fields


def bytes_of(value: object, size: int, what: str) -> bytes:
    if not isinstance(value, bytes) or len(value) != size:
        raise PacketError(PacketReason.BAD_FIELD, f"{what}: not {size} bytes")
    return value


def uint_of(value: object, below: int, what: str) -> int:
    if type(value) is not int or not 0 <= value < below:
        raise PacketError(PacketReason.BAD_FIELD, f"{what}: not an integer below {below}")
    return value


def text_of(value: object, limit: int, what: str) -> str:
    if not isinstance(value, str):
        raise PacketError(PacketReason.BAD_FIELD, f"{what}: not text")
    try:
        size = len(value.encode())
    except UnicodeEncodeError as exc:
        raise PacketError(PacketReason.BAD_FIELD, f"{what}: not valid text") from exc
    if size > limit:
        raise PacketError(PacketReason.BAD_FIELD, f"{what}: over {limit} bytes")
    return value
