"""Padding to a few size buckets, so the length of a sealed payload says little.

A sealed payload is padded to the smallest bucket that holds it: every direct message and ack
on the wire is 256, 512, 1024 or 1800 bytes long (1800 is ``MAX_PAYLOAD_SIZE``). The padding is
ISO/IEC 7816-4: one ``0x80`` byte, then zeros. It is added inside the encryption, so relays only
see the bucket.
"""

from __future__ import annotations

from meshchat.errors import DecryptionError
from meshchat.wire.packet import MAX_PAYLOAD_SIZE

__all__ = ["BUCKETS", "bucket_for", "pad", "unpad"]

BUCKETS = (256, 512, 1024, MAX_PAYLOAD_SIZE)


def bucket_for(size: int) -> int:
    """The smallest bucket of at least ``size`` bytes; :class:`ValueError` if none is."""
    for bucket in BUCKETS:
        if size <= bucket:
            return bucket
    raise ValueError(f"{size} bytes do not fit in the largest bucket ({BUCKETS[-1]})")


def pad(data: bytes, overhead: int) -> bytes:
    """``data`` padded so that ``overhead + len(result)`` is exactly a bucket size."""
    total = bucket_for(overhead + len(data) + 1)
    return data + b"\x80" + bytes(total - overhead - len(data) - 1)


def unpad(data: bytes) -> bytes:
    """Strip the padding; raises :class:`DecryptionError` if it is malformed."""
    end = len(data.rstrip(b"\x00"))
    if end == 0 or data[end - 1] != 0x80:
        raise DecryptionError("bad padding")
    return data[: end - 1]
