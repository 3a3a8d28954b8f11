"""bitchat fragments (type 0x20): splitting a packet too large for one BLE write, and
reassembling them within fixed bounds.

A fragment's payload is ``fragment_id(8) index(2) total(2) original_type(1) data``
(``BLEOutboundFragmentPlanner.swift``, Android ``FragmentManager.kt``); the data chunks are
consecutive slices of the *encoded* original packet, at most 469 bytes each
(``bleDefaultFragmentSize``). Fragments copy the original's sender, recipient, timestamp and
TTL and are not signed; the reassembled packet carries its own signature.

Bounds (Android's, the stricter platform): at most 256 fragments per set
(``MAX_FRAGMENTS_PER_ID``), 64 sets at once, 30 s from the first fragment to the last
(``FRAGMENT_TIMEOUT_MS`` / ``bleFragmentLifetimeSeconds``), and bytes per set and in total
capped. A set that breaks a rule (index past total, a total or type that changes, too many
bytes) is dropped whole.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from meshchat.bridges.bitchat.packet import (
    ID_SIZE,
    NETWORK,
    BitchatPacket,
    MessageType,
    encode,
)
from meshchat.errors import BridgeError, BridgeReason

__all__ = [
    "CHUNK_SIZE",
    "MAX_FRAGMENTS",
    "Fragment",
    "Reassembler",
    "parse_fragment",
    "split",
]

CHUNK_SIZE = 469
HEADER = ID_SIZE + 2 + 2 + 1
MAX_FRAGMENTS = 256
LIFETIME_MS = 30_000
MAX_SETS = 64
MAX_SET_BYTES = MAX_FRAGMENTS * 512
MAX_TOTAL_BYTES = 1 << 20


def _bad(detail: str) -> BridgeError:
    return BridgeError(NETWORK, BridgeReason.FRAGMENT, detail)


@dataclass(frozen=True, slots=True)
class Fragment:
    """The header and data of one fragment packet."""

    sender_id: bytes
    fragment_id: bytes
    index: int
    total: int
    original_type: int
    data: bytes


def split(
    packet: BitchatPacket, *, chunk: int = CHUNK_SIZE, fragment_id: bytes | None = None
) -> list[BitchatPacket]:
    """Fragment packets carrying ``packet`` (encoded unpadded), in order."""
    if not 64 <= chunk <= CHUNK_SIZE:
        raise ValueError(f"chunk size {chunk} outside 64..{CHUNK_SIZE}")
    whole = encode(packet)
    ident = os.urandom(ID_SIZE) if fragment_id is None else fragment_id
    pieces = [whole[at : at + chunk] for at in range(0, len(whole), chunk)]
    if len(pieces) > MAX_FRAGMENTS:
        raise BridgeError(NETWORK, BridgeReason.OVERSIZED, f"needs {len(pieces)} fragments")
    return [
        BitchatPacket(
            type=MessageType.FRAGMENT,
            sender_id=packet.sender_id,
            timestamp=packet.timestamp,
            payload=ident
            + index.to_bytes(2, "big")
            + len(pieces).to_bytes(2, "big")
            + bytes((packet.type,))
            + piece,
            ttl=packet.ttl,
            recipient_id=packet.recipient_id,
        )
        for index, piece in enumerate(pieces)
    ]


def parse_fragment(packet: BitchatPacket) -> Fragment:
    """The fragment header of a type-0x20 packet; FRAGMENT errors for a bad one."""
    if packet.type != MessageType.FRAGMENT:
        raise _bad(f"type {packet.type:#04x} is not a fragment")
    body = packet.payload
    if len(body) < HEADER:
        raise _bad(f"{len(body)} bytes is shorter than a fragment header")
    index = int.from_bytes(body[8:10], "big")
    total = int.from_bytes(body[10:12], "big")
    if not 0 < total <= MAX_FRAGMENTS:
        raise _bad(f"total {total} outside 1..{MAX_FRAGMENTS}")
    if index >= total:
        raise _bad(f"index {index} not below total {total}")
    return Fragment(packet.sender_id, body[:8], index, total, body[12], body[HEADER:])


@dataclass
class _Set:
    total: int
    original_type: int
    started_ms: int
    pieces: dict[int, bytes]
    size: int = 0


class Reassembler:
    """Collects fragments; :meth:`add` returns the encoded original packet when complete.

    Memory is bounded by MAX_SETS x MAX_SET_BYTES and MAX_TOTAL_BYTES overall; a new set
    beyond MAX_SETS evicts the oldest. Sets expire LIFETIME_MS after their first fragment.
    """

    def __init__(self) -> None:
        self._sets: dict[tuple[bytes, bytes], _Set] = {}
        self._bytes = 0

    @property
    def pending(self) -> int:
        return len(self._sets)

    @property
    def buffered_bytes(self) -> int:
        return self._bytes

    def _drop(self, key: tuple[bytes, bytes]) -> None:
        gone = self._sets.pop(key, None)
        if gone is not None:
            self._bytes -= gone.size

    def expire(self, now_ms: int) -> int:
        """Forget sets older than the lifetime; returns how many."""
        old = [k for k, s in self._sets.items() if now_ms - s.started_ms > LIFETIME_MS]
        for key in old:
            self._drop(key)
        return len(old)

    def add(self, packet: BitchatPacket, now_ms: int) -> bytes | None:
        """Take one fragment packet. Raises FRAGMENT errors (the set is then dropped)."""
        self.expire(now_ms)
        frag = parse_fragment(packet)
        key = (frag.sender_id, frag.fragment_id)
        current = self._sets.get(key)
        if current is None:
            if len(self._sets) >= MAX_SETS:
                oldest = min(self._sets, key=lambda k: self._sets[k].started_ms)
                self._drop(oldest)
            current = _Set(frag.total, frag.original_type, now_ms, {})
            self._sets[key] = current
        if frag.total != current.total or frag.original_type != current.original_type:
            self._drop(key)
            raise _bad("total or original type changed within a set")
        if frag.index in current.pieces:
            return None  # a relayed copy
        if current.size + len(frag.data) > MAX_SET_BYTES:
            self._drop(key)
            raise _bad(f"set larger than {MAX_SET_BYTES} bytes")
        if self._bytes + len(frag.data) > MAX_TOTAL_BYTES:
            self._drop(key)
            raise _bad(f"more than {MAX_TOTAL_BYTES} bytes buffered")
        current.pieces[frag.index] = frag.data
        current.size += len(frag.data)
        self._bytes += len(frag.data)
        if len(current.pieces) < current.total:
            return None
        self._drop(key)
        return b"".join(current.pieces[i] for i in range(current.total))
