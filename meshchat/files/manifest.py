"""The file announcement: what a sender tells the recipients about a file it offers.

It travels inside the usual sealed (forward-secret) or group-encrypted message body, so only the
recipients learn the name, the size, the key and the root hash; relays see chunk-sized
ciphertext and the root hash, which is a hash of that ciphertext under a fresh key and so names
no content. Wire form, one canonical CBOR array::

    [1, kind, name, size, media_type, chunk_size, root(32), key(32)]
    [1, kind, name, size, media_type, chunk_size, root(32), key(32), caption]

The caption is sent only when not empty (an empty one is refused, so each announcement has one
encoding). A typical photo announcement (``IMG_2041.jpg``, ``image/jpeg``, 1 MB, no caption)
is 103 bytes; the largest possible one is :data:`MAX_MANIFEST_BYTES`. Decoding raises
:class:`PacketError` (``BAD_FIELD``, ``MALFORMED``, ``OVERSIZED``, ``NOT_CANONICAL``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import IntEnum

from meshchat.errors import PacketError, PacketReason
from meshchat.files._cbor import bytes_of, dumps, load, text_of, uint_of

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "HASH_SIZE",
    "KEY_SIZE",
    "MANIFEST_VERSION",
    "MAX_CAPTION_BYTES",
    "MAX_CHUNKS",
    "MAX_CHUNK_SIZE",
    "MAX_FILE_SIZE",
    "MAX_MANIFEST_BYTES",
    "MAX_MEDIA_TYPE_BYTES",
    "MAX_NAME_BYTES",
    "MIN_CHUNK_SIZE",
    "FileKind",
    "FileManifest",
]

MANIFEST_VERSION = 1
HASH_SIZE = 32  #: BLAKE2b-256: root and tree hashes
KEY_SIZE = 32  #: XChaCha20-Poly1305 key
#: Largest chunk of plaintext. A chunk body (this + 16-byte tag + 45 bytes of body header) in
#: a signed packet (154 bytes of header and signature) on a BLE link (17 bytes of channel byte
#: and link tag) is 1768 bytes: 8 fragments at ATT MTU 247, 4 at MTU 517; and it leaves 203
#: bytes under the 1800-byte payload limit for whatever envelope carries it.
MAX_CHUNK_SIZE = 1536
DEFAULT_CHUNK_SIZE = MAX_CHUNK_SIZE
MIN_CHUNK_SIZE = 256
_CHUNK_STEP = 64
#: Largest file: 1 GiB (the receiver keeps 2.1% of it, the hash tree, in memory).
MAX_FILE_SIZE = 1 << 30
#: Most chunks in one file (with a small chunk size, a smaller file).
MAX_CHUNKS = 1 << 20
MAX_NAME_BYTES = 255
MAX_MEDIA_TYPE_BYTES = 100
MAX_CAPTION_BYTES = 500
#: The largest encoded announcement (every text at its limit, in 3-byte characters the
#: encoded lengths are the same).
MAX_MANIFEST_BYTES = 1 + 1 + 1 + (2 + 255) + 5 + (2 + 100) + 3 + 34 + 34 + (3 + 500)
_ITEMS = 10
_MEDIA_PART = r"[a-z0-9][a-z0-9!#$&^_.+-]*"
_MEDIA_TYPE = re.compile(rf"{_MEDIA_PART}/{_MEDIA_PART}")


class FileKind(IntEnum):
    """How the recipient's faces present the file."""

    FILE = 0  #: any file
    IMAGE = 1  #: a picture (media type ``image/...``)
    VOICE = 2  #: a voice note (media type ``audio/...``)


_KIND_PREFIX = {FileKind.IMAGE: "image/", FileKind.VOICE: "audio/"}


def _bad(what: str) -> PacketError:
    return PacketError(PacketReason.BAD_FIELD, what)


@dataclass(frozen=True, slots=True)
class FileManifest:
    """A file offered by its sender, checked at construction.

    ``name`` is the sender's name for the file, any text up to :data:`MAX_NAME_BYTES`: it is
    made safe only when saved (:func:`meshchat.files.names.safe_name`) and when shown.
    ``media_type`` is a lowercase ``type/subtype`` (``image/...`` for an image, ``audio/...``
    for a voice note). ``root`` is the root of the BLAKE2b tree over the ciphertext chunks and
    ``key`` the fresh XChaCha20-Poly1305 key they are sealed under (:mod:`meshchat.files.chunks`).
    """

    kind: FileKind
    name: str
    size: int
    media_type: str
    chunk_size: int
    root: bytes
    key: bytes
    caption: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.kind, FileKind):
            raise _bad("kind")
        text_of(self.name, MAX_NAME_BYTES, "name")
        if not self.name:
            raise _bad("name: empty")
        if type(self.size) is not int or not 0 <= self.size <= MAX_FILE_SIZE:
            raise _bad(f"size: not within 0..{MAX_FILE_SIZE}")
        text_of(self.media_type, MAX_MEDIA_TYPE_BYTES, "media type")
        if not _MEDIA_TYPE.fullmatch(self.media_type):
            raise _bad("media type: not a lowercase type/subtype")
        prefix = _KIND_PREFIX.get(self.kind)
        if prefix is not None and not self.media_type.startswith(prefix):
            raise _bad(f"media type: a {self.kind.name.lower()} needs {prefix}...")
        if (
            type(self.chunk_size) is not int
            or not MIN_CHUNK_SIZE <= self.chunk_size <= MAX_CHUNK_SIZE
            or self.chunk_size % _CHUNK_STEP
        ):
            raise _bad("chunk size")
        if self.chunk_count > MAX_CHUNKS:
            raise _bad(f"over {MAX_CHUNKS} chunks")
        bytes_of(self.root, HASH_SIZE, "root")
        bytes_of(self.key, KEY_SIZE, "key")
        text_of(self.caption, MAX_CAPTION_BYTES, "caption")

    @property
    def chunk_count(self) -> int:
        """The number of chunks (an empty file has one empty chunk)."""
        return max(1, -(-self.size // self.chunk_size))

    def chunk_length(self, index: int) -> int:
        """The plaintext length of chunk ``index``."""
        if not 0 <= index < self.chunk_count:
            raise IndexError(index)
        return min(self.chunk_size, self.size - index * self.chunk_size)

    def encode(self) -> bytes:
        fields: list[object] = [
            MANIFEST_VERSION,
            int(self.kind),
            self.name,
            self.size,
            self.media_type,
            self.chunk_size,
            self.root,
            self.key,
        ]
        if self.caption:
            fields.append(self.caption)
        return dumps(fields)

    @classmethod
    def decode(cls, data: bytes) -> FileManifest:
        fields = load(data, (8, 9), MAX_MANIFEST_BYTES, _ITEMS)
        version, kind, name, size, media_type, chunk_size, root, key = fields[:8]
        if type(version) is not int or version != MANIFEST_VERSION:
            raise PacketError(PacketReason.UNKNOWN_VERSION, "file announcement version")
        kind_value = uint_of(kind, 256, "kind")
        if kind_value not in FileKind._value2member_map_:
            raise _bad("kind: unknown")
        caption = ""
        if len(fields) == 9:
            caption = text_of(fields[8], MAX_CAPTION_BYTES, "caption")
            if not caption:
                raise _bad("caption: an empty caption is never sent")
        return cls(
            kind=FileKind(kind_value),
            name=text_of(name, MAX_NAME_BYTES, "name"),
            size=uint_of(size, MAX_FILE_SIZE + 1, "size"),
            media_type=text_of(media_type, MAX_MEDIA_TYPE_BYTES, "media type"),
            chunk_size=uint_of(chunk_size, MAX_CHUNK_SIZE + 1, "chunk size"),
            root=bytes_of(root, HASH_SIZE, "root"),
            key=bytes_of(key, KEY_SIZE, "key"),
            caption=caption,
        )
