"""The bodies that move a file: a request for pieces, a piece, and "not held here".

Each is one canonical CBOR array whose first item tells which it is::

    [1, root(32), level, [index, ...]]   Request: the pieces (level, index) wanted, 1..32 of them
    [2, root(32), level, index, data]    Piece: a ciphertext chunk (level 0) or a run of hashes
    [3, root(32), level, [index, ...]]   Missing: the asked-for pieces the answerer lacks

``root`` names the transfer (the announced root hash). A piece body is at most
:data:`MAX_PIECE_BODY` bytes (1597): a 1536-byte chunk, its 16-byte tag and 45 bytes of
framing; a request or missing body at most :data:`MAX_LIST_BODY` bytes (199). Pieces carry no
proof: a receiver checks a piece against the hash pieces it already holds
(:mod:`meshchat.files.tree`). The bodies hold no secrets (the data is sealed, the hashes are of
ciphertext), so they may travel signed or sealed; they say which transfer the pieces belong to,
and their sizes are those of chunks. Decoding raises :class:`PacketError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from meshchat.errors import PacketError, PacketReason
from meshchat.files._cbor import bytes_of, dumps, load, uint_of
from meshchat.files.chunks import TAG_SIZE
from meshchat.files.manifest import HASH_SIZE, MAX_CHUNK_SIZE, MAX_CHUNKS
from meshchat.files.tree import TreeShape

__all__ = [
    "MAX_LEVEL",
    "MAX_LIST_BODY",
    "MAX_PIECE_BODY",
    "MAX_PIECE_DATA",
    "MAX_REQUEST_PIECES",
    "BodyTag",
    "Missing",
    "Piece",
    "Request",
    "decode_body",
]

#: Most pieces named in one request (or one missing answer).
MAX_REQUEST_PIECES = 32
#: The highest level a tree of MAX_CHUNKS chunks has.
MAX_LEVEL = TreeShape(MAX_CHUNKS).top
#: Largest piece data: a full chunk with its tag (a run of 48 hashes is 1536 bytes).
MAX_PIECE_DATA = MAX_CHUNK_SIZE + TAG_SIZE
MAX_PIECE_BODY = 1 + 1 + (2 + HASH_SIZE) + 1 + 5 + 3 + MAX_PIECE_DATA
MAX_LIST_BODY = 1 + 1 + (2 + HASH_SIZE) + 1 + 2 + 5 * MAX_REQUEST_PIECES


class BodyTag(IntEnum):
    REQUEST = 1
    PIECE = 2
    MISSING = 3


def _indices(value: object) -> tuple[int, ...]:
    if not isinstance(value, (list, tuple)) or not 1 <= len(value) <= MAX_REQUEST_PIECES:
        raise PacketError(PacketReason.BAD_FIELD, f"indices: not a list of 1..{MAX_REQUEST_PIECES}")
    indices = tuple(uint_of(v, MAX_CHUNKS, "index") for v in value)
    if len(set(indices)) != len(indices):
        raise PacketError(PacketReason.BAD_FIELD, "indices: one named twice")
    return indices


def _check_head(root: object, level: object) -> None:
    bytes_of(root, HASH_SIZE, "root")
    uint_of(level, MAX_LEVEL + 1, "level")


@dataclass(frozen=True, slots=True)
class Request:
    """Pieces ``(level, i)`` for each ``i`` in ``indices``, wanted from the addressee."""

    root: bytes
    level: int
    indices: tuple[int, ...]

    def __post_init__(self) -> None:
        _check_head(self.root, self.level)
        object.__setattr__(self, "indices", _indices(self.indices))

    def encode(self) -> bytes:
        return dumps([int(BodyTag.REQUEST), self.root, self.level, list(self.indices)])


@dataclass(frozen=True, slots=True)
class Missing:
    """Pieces the answerer of a request does not hold (so ask someone else)."""

    root: bytes
    level: int
    indices: tuple[int, ...]

    def __post_init__(self) -> None:
        _check_head(self.root, self.level)
        object.__setattr__(self, "indices", _indices(self.indices))

    def encode(self) -> bytes:
        return dumps([int(BodyTag.MISSING), self.root, self.level, list(self.indices)])


@dataclass(frozen=True, slots=True)
class Piece:
    """Piece ``(level, index)`` of transfer ``root``: a sealed chunk or a run of hashes."""

    root: bytes
    level: int
    index: int
    data: bytes

    def __post_init__(self) -> None:
        _check_head(self.root, self.level)
        uint_of(self.index, MAX_CHUNKS, "index")
        if not isinstance(self.data, bytes) or len(self.data) > MAX_PIECE_DATA:
            raise PacketError(PacketReason.BAD_FIELD, f"data: over {MAX_PIECE_DATA} bytes")

    def encode(self) -> bytes:
        return dumps([int(BodyTag.PIECE), self.root, self.level, self.index, self.data])


def _uint_at(data: bytes, pos: int) -> tuple[int, int] | None:
    """A canonical CBOR unsigned integer of up to 4 bytes at ``pos``: (value, next position)."""
    head = data[pos]
    if head < 24:
        return head, pos + 1
    width = {0x18: 1, 0x19: 2, 0x1A: 4}.get(head)
    if width is None:
        return None
    value = int.from_bytes(data[pos + 1 : pos + 1 + width], "big")
    if value < (24, 0x100, 0, 0x10000)[width - 1]:
        return None  # not the shortest form: the strict path says so
    return value, pos + 1 + width


def _fast_piece(data: bytes) -> Piece | None:
    """A piece in its one canonical layout, read without the general decoder; None for
    anything else (which :func:`decode_body` then reads strictly, with its errors)."""
    if len(data) < 39 or data[:4] != b"\x85\x02\x58\x20" or data[36] > MAX_LEVEL:
        return None
    index = _uint_at(data, 37)
    if index is None:
        return None
    pos = index[1]
    if pos >= len(data) or data[pos] >> 5 != 2:
        return None
    size = _uint_at(bytes([data[pos] & 0x1F]) + data[pos + 1 : pos + 3], 0)
    if size is None:
        return None
    start = pos + size[1]
    if len(data) - start != size[0] or index[0] >= MAX_CHUNKS:
        return None
    return Piece(data[4:36], data[36], index[0], data[start:])


def decode_body(data: bytes) -> Request | Piece | Missing:
    """One file body, whichever it is; :class:`PacketError` if it is none of them."""
    if isinstance(data, bytes) and len(data) <= MAX_PIECE_BODY:
        piece = _fast_piece(data)
        if piece is not None:
            return piece
    return _decode_strict(data)


def _decode_strict(data: bytes) -> Request | Piece | Missing:
    fields = load(data, (4, 5), MAX_PIECE_BODY, 6 + MAX_REQUEST_PIECES)
    tag = uint_of(fields[0], 256, "tag")
    if tag == BodyTag.PIECE and len(fields) == 5:
        _, root, level, index, blob = fields
        if not isinstance(blob, bytes):
            raise PacketError(PacketReason.BAD_FIELD, "data: not bytes")
        return Piece(
            bytes_of(root, HASH_SIZE, "root"),
            uint_of(level, MAX_LEVEL + 1, "level"),
            uint_of(index, MAX_CHUNKS, "index"),
            blob,
        )
    if tag in (BodyTag.REQUEST, BodyTag.MISSING) and len(fields) == 4:
        if len(data) > MAX_LIST_BODY:
            raise PacketError(PacketReason.OVERSIZED, f"list body over {MAX_LIST_BODY} bytes")
        _, root, level, indices = fields
        cls: type[Request] | type[Missing] = Request if tag == BodyTag.REQUEST else Missing
        return cls(
            bytes_of(root, HASH_SIZE, "root"),
            uint_of(level, MAX_LEVEL + 1, "level"),
            _indices(indices),
        )
    raise PacketError(PacketReason.BAD_FIELD, f"file body tag {tag} with {len(fields)} items")
