"""The meshchat advertisement: what a node puts in the air and how a scanner reads it.

A legacy advertisement holds 31 bytes of AD structures (length, type, data). Ours uses all 31::

    02 01 06                 flags: LE General Discoverable, BR/EDR not supported
    11 07 <16 bytes>         complete list of 128-bit service UUIDs: the meshchat service
    09 08 <8 ASCII chars>    shortened local name: the rotating identifier in base32

Nothing else: no node id, display name, key, or counter. The rotating identifier travels as a
local name because it is the one field every platform lets an app set (CoreBluetooth only
advertises a local name and service UUIDs; Android and BlueZ allow more but agree on these). A
scanner recognises a meshchat node by the service UUID and reads the identifier when present;
an advertisement with the UUID but no readable identifier is still a meshchat node (for
example, an iOS app in the background advertises no name), with ``adv_id`` ``None``.

:func:`parse` is bounded: it reads at most :data:`MAX_AD_BYTES` (an extended advertisement's
limit) and never raises on malformed input; it returns ``None`` for anything that is not ours.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass

from meshchat.transports.ble.rotating_id import ADV_ID_SIZE

__all__ = ["LEGACY_AD_LIMIT", "MAX_AD_BYTES", "ParsedAdvert", "build", "id_from_name", "id_to_name"]

LEGACY_AD_LIMIT = 31
MAX_AD_BYTES = 1650
_FLAGS = 0x01
_UUID128_INCOMPLETE = 0x06
_UUID128_COMPLETE = 0x07
_NAME_SHORT = 0x08
_NAME_COMPLETE = 0x09
_FLAGS_VALUE = 0x06
_NAME_LENGTH = 8  # base32 of 5 bytes, no padding


def id_to_name(adv_id: bytes) -> str:
    """The local-name form of a rotating identifier (8 lower-case base32 characters)."""
    if len(adv_id) != ADV_ID_SIZE:
        raise ValueError(f"advertisement id must be {ADV_ID_SIZE} bytes")
    return base64.b32encode(adv_id).decode("ascii").lower()


def id_from_name(name: str | bytes) -> bytes | None:
    """The rotating identifier in a local name, or ``None`` if the name is not one."""
    if isinstance(name, bytes):
        try:
            name = name.decode("ascii")
        except UnicodeDecodeError:
            return None
    if len(name) != _NAME_LENGTH:
        return None
    try:
        adv_id = base64.b32decode(name.upper(), casefold=False)
    except (binascii.Error, ValueError):
        return None
    return adv_id if len(adv_id) == ADV_ID_SIZE else None


def build(service_uuid: uuid.UUID, adv_id: bytes) -> bytes:
    """The advertising data bytes for ``service_uuid`` and identifier ``adv_id``."""
    name = id_to_name(adv_id).encode("ascii")
    data = (
        bytes([2, _FLAGS, _FLAGS_VALUE])
        + bytes([17, _UUID128_COMPLETE])
        + service_uuid.bytes[::-1]  # AD fields are little-endian
        + bytes([1 + len(name), _NAME_SHORT])
        + name
    )
    if len(data) > LEGACY_AD_LIMIT:
        raise ValueError(f"advertising data of {len(data)} bytes exceeds {LEGACY_AD_LIMIT}")
    return data


@dataclass(frozen=True, slots=True)
class ParsedAdvert:
    """A meshchat advertisement as a scanner saw it."""

    adv_id: bytes | None


def parse(data: bytes, service_uuid: uuid.UUID) -> ParsedAdvert | None:
    """Read advertising (and scan response) data; ``None`` unless it lists ``service_uuid``."""
    data = data[:MAX_AD_BYTES]
    wanted = service_uuid.bytes[::-1]
    has_service = False
    adv_id: bytes | None = None
    offset = 0
    while offset < len(data):
        length = data[offset]
        if length == 0:  # padding: the rest is unused
            break
        field = data[offset + 1 : offset + 1 + length]
        offset += 1 + length
        if len(field) < length:  # truncated structure
            break
        kind, value = field[0], field[1:]
        if kind in (_UUID128_COMPLETE, _UUID128_INCOMPLETE):
            uuids = [value[i : i + 16] for i in range(0, len(value) - 15, 16)]
            has_service = has_service or wanted in uuids
        elif kind in (_NAME_SHORT, _NAME_COMPLETE) and adv_id is None:
            adv_id = id_from_name(value)
    if not has_service:
        return None
    return ParsedAdvert(adv_id)
