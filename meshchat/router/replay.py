"""The long dedupe horizon: time-bucketed Bloom filters over packet ids, kept across restarts.

Theory of operation. A packet is accepted while its creation time lies in
``[now - MAX_AGE_MS, now + MAX_FUTURE_SKEW_MS]`` (7 days and 10 minutes), so a replay of any
packet the node accepted in that window must be recognised, also after a restart. Keeping
every id exactly would take unbounded memory, so the ids are filed by their packet's
*creation time* into buckets of ``bucket_ms`` (default 3 hours), each a Bloom filter sized
for ``capacity`` ids (default 16,384) at a false-positive rate of 1e-6 (20 hash functions,
28.8 bits per id: 58,900 bytes per bucket). A lookup reads only the bucket of the packet's
creation time, so a new packet is wrongly taken for a replay with probability at most 1e-6,
and a bucket whose packets are all too old to be accepted is simply dropped. The router asks
only about packets old enough to have been accepted before its exact one-hour set began, so
fresh traffic never meets a false positive.

Bounds. At most ``(MAX_AGE_MS + MAX_FUTURE_SKEW_MS) / bucket_ms + 2`` buckets exist (59 with
the defaults: 3.5 MB at most, allocated only for buckets that hold an id). A bucket that
reaches ``capacity`` stops taking ids, so its false-positive rate never rises above the
target (a flood of packets dated into one bucket cannot make the node drop genuine ones); ids
past capacity are remembered by the exact one-hour :class:`~meshchat.router.seen.SeenSet`
only, as before. The hash key of each bucket is random (from the router's ``rng``), so no one
can pick packet ids that collide in our filters.

Persistence. :meth:`ReplayFilter.take_updates` returns the buckets changed since the last
call, each as a blob of at most 64 KiB (the store's limit), and the buckets that expired; the
node writes them to its store, and :meth:`ReplayFilter.load` reads them back at start. Ids
added after the last save are lost by a crash (the node saves every minute and at stop).
"""

from __future__ import annotations

import hashlib
import math
import random
import struct

from meshchat.errors import UsageError
from meshchat.wire.packet import MAX_AGE_MS, MAX_FUTURE_SKEW_MS

__all__ = ["DEFAULT_BUCKET_MS", "DEFAULT_CAPACITY", "TARGET_FP_RATE", "ReplayFilter"]

DEFAULT_BUCKET_MS = 3 * 3600_000
DEFAULT_CAPACITY = 16_384
TARGET_FP_RATE = 1e-6
_HEADER = struct.Struct(">BqIIB16s")  # version, bucket, count, capacity, hashes, salt
_TWO_WORDS = struct.Struct(">QQ")
_VERSION = 1
_SALT_SIZE = 16


class _Bucket:
    __slots__ = ("bits", "capacity", "count", "hashes", "salt")

    def __init__(self, capacity: int, salt: bytes, bits: bytearray | None = None) -> None:
        self.capacity = capacity
        self.hashes = max(1, round(-math.log2(TARGET_FP_RATE)))
        self.bits = bytearray(_bytes_for(capacity)) if bits is None else bits
        self.count = 0
        self.salt = salt

    def _start(self, packet_id: bytes) -> tuple[int, int, int]:
        """Double hashing: position ``i`` is ``(h1 + i * h2) mod m``; returns (h1, h2, m)."""
        digest = hashlib.blake2b(packet_id, key=self.salt, digest_size=16).digest()
        h1, h2 = _TWO_WORDS.unpack(digest)
        m = len(self.bits) * 8
        return h1 % m, (h2 | 1) % m, m

    def add(self, packet_id: bytes) -> bool:
        if self.count >= self.capacity:
            return False
        bits = self.bits
        p, step, m = self._start(packet_id)
        for q in range(p, p + self.hashes * step, step):
            r = q % m
            bits[r >> 3] |= 1 << (r & 7)
        self.count += 1
        return True

    def __contains__(self, packet_id: bytes) -> bool:
        bits = self.bits
        p, step, m = self._start(packet_id)
        for _ in range(self.hashes):
            if not bits[p >> 3] & (1 << (p & 7)):
                return False  # most new ids stop at the first or second position
            p += step
            if p >= m:
                p -= m
        return True

    def blob(self, index: int) -> bytes:
        head = _HEADER.pack(_VERSION, index, self.count, self.capacity, self.hashes, self.salt)
        return head + bytes(self.bits)


class ReplayFilter:
    """Packet ids by creation-time bucket, for the whole acceptance window."""

    __slots__ = ("_buckets", "_capacity", "_dirty", "_dropped", "_rng", "bucket_ms")

    def __init__(
        self,
        rng: random.Random,
        *,
        bucket_ms: int = DEFAULT_BUCKET_MS,
        capacity: int = DEFAULT_CAPACITY,
    ) -> None:
        if bucket_ms < 1 or capacity < 1:
            raise UsageError("bucket_ms and capacity must be positive")
        self.bucket_ms = bucket_ms
        self._capacity = capacity
        self._rng = rng
        self._buckets: dict[int, _Bucket] = {}
        self._dirty: set[int] = set()
        self._dropped: set[int] = set()

    def _index(self, created_ms: int) -> int:
        return created_ms // self.bucket_ms

    def add(self, packet_id: bytes, created_ms: int) -> None:
        index = self._index(created_ms)
        bucket = self._buckets.get(index)
        if bucket is None:
            salt = self._rng.getrandbits(8 * _SALT_SIZE).to_bytes(_SALT_SIZE, "big")
            bucket = self._buckets[index] = _Bucket(self._capacity, salt)
            self._dropped.discard(index)
        if bucket.add(packet_id):  # the router adds only ids it had not seen
            self._dirty.add(index)

    def contains(self, packet_id: bytes, created_ms: int) -> bool:
        bucket = self._buckets.get(self._index(created_ms))
        return bucket is not None and packet_id in bucket

    def expire(self, now_ms: int) -> None:
        """Drop the buckets whose packets are all too old to be accepted."""
        oldest = self._index(now_ms - MAX_AGE_MS)
        for index in [i for i in self._buckets if i < oldest]:
            del self._buckets[index]
            self._dirty.discard(index)
            self._dropped.add(index)

    def take_updates(self, now_ms: int) -> tuple[dict[bytes, bytes], list[bytes]]:
        """``(changed buckets: key -> blob, keys of expired buckets)`` since the last call."""
        self.expire(now_ms)
        puts = {_key(i): self._buckets[i].blob(i) for i in sorted(self._dirty)}
        drops = [_key(i) for i in sorted(self._dropped)]
        self._dirty.clear()
        self._dropped.clear()
        return puts, drops

    def load(self, blobs: dict[bytes, bytes], now_ms: int) -> tuple[list[bytes], list[bytes]]:
        """Restore saved buckets; returns the keys of ``(expired, unreadable)`` blobs.

        Call it at start, before ids are added: a saved bucket replaces one begun meanwhile.
        """
        oldest = self._index(now_ms - MAX_AGE_MS)
        newest = self._index(now_ms + MAX_FUTURE_SKEW_MS)
        expired: list[bytes] = []
        unreadable: list[bytes] = []
        for key, blob in blobs.items():
            bucket = _parse(blob)
            if bucket is None or key != _key(bucket[0]):
                unreadable.append(key)
            elif not oldest <= bucket[0] <= newest:
                expired.append(key)
            else:  # call before adding: a saved bucket replaces one begun since the start
                self._buckets[bucket[0]] = bucket[1]
                self._dirty.discard(bucket[0])
        return expired, unreadable

    def memory_bytes(self) -> int:
        return sum(len(b.bits) for b in self._buckets.values())

    def max_memory_bytes(self) -> int:
        """The most :meth:`memory_bytes` can reach: every bucket of the window allocated."""
        buckets = (MAX_AGE_MS + MAX_FUTURE_SKEW_MS) // self.bucket_ms + 2
        return buckets * _bytes_for(self._capacity)

    def false_positive_rate(self) -> float:
        """The highest false-positive rate among the buckets at their current fill."""
        worst = 0.0
        for b in self._buckets.values():
            m = len(b.bits) * 8
            worst = max(worst, (1.0 - math.exp(-b.hashes * b.count / m)) ** b.hashes)
        return worst


def _bytes_for(capacity: int) -> int:
    """Bytes of a filter for ``capacity`` ids at :data:`TARGET_FP_RATE`."""
    return math.ceil(capacity * -math.log(TARGET_FP_RATE) / math.log(2) ** 2 / 8)


def _key(index: int) -> bytes:
    return index.to_bytes(8, "big", signed=True)


def _parse(blob: bytes) -> tuple[int, _Bucket] | None:
    if len(blob) < _HEADER.size:
        return None
    version, index, count, capacity, hashes, salt = _HEADER.unpack_from(blob)
    if version != _VERSION or not 0 < capacity <= 1 << 20:
        return None
    bucket = _Bucket(capacity, salt, bytearray(blob[_HEADER.size :]))
    if hashes != bucket.hashes or len(bucket.bits) != _bytes_for(capacity):
        return None
    bucket.count = min(count, capacity)
    return index, bucket
