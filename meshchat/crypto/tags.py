"""Rotating addresses: the 16-byte destinations of sealed direct messages and their acks.

Theory of operation. A sealed packet's destination is not a node id but a **tag** that only
the sender and the recipient can compute, and that changes every hour (one *epoch*, numbered
``created_ms // EPOCH_MS``, taken from the packet's own creation time). Two kinds exist:

* **pair tags**, for a pair that knows each other's keys:
  ``pair_key = BLAKE2b-32(X25519(own box secret, peer box public), person "mc-pairkey")`` and
  ``tag = BLAKE2b-16(recipient_node_id || epoch (8 bytes BE), key pair_key, person
  "mc-pairtag")``. The recipient's node id in the input makes the two directions of one pair
  use unrelated tags.
* **prekey tags**, for the first messages of a session, when the recipient may not know the
  sender: ``tag = BLAKE2b-16(epoch (8 bytes BE), key spk_public, person "mc-pktag")``, from the
  recipient's signed prekey. Anyone holding the recipient's card or having heard its
  announcement can compute them (they are what a stranger can use).

A node answers to the tags of every epoch a packet it could still receive may carry: from the
epoch of ``now - MAX_AGE_MS`` (a carried packet travels for up to a week) to the epoch after the
current one (clocks drift). :class:`AddressBook` keeps that set current for each *source* (a
peer's pair key or one of our signed prekeys) as sources come and go and epochs pass, and maps
each tag back to its source so the engine knows which key opens the packet.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

import nacl.bindings

from meshchat.wire.packet import MAX_AGE_MS, NODE_ID_SIZE

__all__ = [
    "EPOCH_MS",
    "AddressBook",
    "Source",
    "epoch_of",
    "pair_key",
    "pair_tag",
    "prekey_tag",
]

EPOCH_MS = 3_600_000
TAG_SIZE = NODE_ID_SIZE
_BACK = MAX_AGE_MS // EPOCH_MS + 1  # epochs behind the current one still answered
_AHEAD = 1


def epoch_of(time_ms: int) -> int:
    return time_ms // EPOCH_MS


def pair_key(own_box_secret: bytes, peer_box_public: bytes) -> bytes:
    """The static secret a pair shares, from their long-term X25519 box keys."""
    shared = nacl.bindings.crypto_scalarmult(own_box_secret, peer_box_public)
    return hashlib.blake2b(shared, digest_size=32, person=b"mc-pairkey").digest()


def pair_tag(key: bytes, recipient_node_id: bytes, epoch: int) -> bytes:
    return hashlib.blake2b(
        recipient_node_id + epoch.to_bytes(8, "big"),
        digest_size=TAG_SIZE,
        key=key,
        person=b"mc-pairtag",
    ).digest()


def prekey_tag(spk_public: bytes, epoch: int) -> bytes:
    return hashlib.blake2b(
        epoch.to_bytes(8, "big"), digest_size=TAG_SIZE, key=spk_public, person=b"mc-pktag"
    ).digest()


@dataclass(frozen=True, slots=True)
class Source:
    """What a tag stands for: a peer (``kind`` "peer", ``ref`` its node id) or one of our
    signed prekeys (``kind`` "prekey", ``ref`` its public key)."""

    kind: str
    ref: bytes


class AddressBook:
    """The tags this node answers to, over the epochs a packet may still be in flight."""

    __slots__ = ("_epoch", "_node_id", "_sources", "_tags", "tags")

    def __init__(self, node_id: bytes) -> None:
        self._node_id = node_id
        #: the live set the router reads (mutated in place, never replaced)
        self.tags: set[bytes] = set()
        self._tags: dict[bytes, Source] = {}
        self._sources: dict[Source, bytes] = {}  # source -> key material
        self._epoch: int | None = None

    def __len__(self) -> int:
        return len(self._sources)

    def source_of(self, tag: bytes) -> Source | None:
        return self._tags.get(tag)

    def _tag(self, source: Source, key: bytes, epoch: int) -> bytes:
        if source.kind == "peer":
            return pair_tag(key, self._node_id, epoch)
        return prekey_tag(key, epoch)

    def _window(self) -> range:
        if self._epoch is None:
            return range(0)
        return range(max(0, self._epoch - _BACK), self._epoch + _AHEAD + 1)

    def _add_epochs(self, source: Source, key: bytes, epochs: Iterable[int]) -> None:
        for epoch in epochs:
            tag = self._tag(source, key, epoch)
            self._tags[tag] = source
            self.tags.add(tag)

    def _drop_epochs(self, source: Source, key: bytes, epochs: Iterable[int]) -> None:
        for epoch in epochs:
            tag = self._tag(source, key, epoch)
            if self._tags.get(tag) == source:
                del self._tags[tag]
                self.tags.discard(tag)

    def add(self, source: Source, key: bytes) -> None:
        """Answer to ``source``'s tags; ``key`` is the pair key or the prekey's public key."""
        if self._sources.get(source) == key:
            return
        self.remove(source)
        self._sources[source] = key
        self._add_epochs(source, key, self._window())

    def remove(self, source: Source) -> None:
        key = self._sources.pop(source, None)
        if key is not None:
            self._drop_epochs(source, key, self._window())

    def has(self, source: Source) -> bool:
        return source in self._sources

    def sources(self, kind: str) -> list[Source]:
        return [s for s in self._sources if s.kind == kind]

    def tags_at(self, epoch: int) -> list[bytes]:
        """Every tag this node answers to in ``epoch`` (inside the window or not), from the
        key material already held: no key agreement is computed again."""
        return [self._tag(source, key, epoch) for source, key in self._sources.items()]

    def advance(self, now_ms: int) -> None:
        """Move the window to the epoch of ``now_ms`` (forwards or backwards)."""
        epoch = epoch_of(now_ms)
        if epoch == self._epoch:
            return
        old = set(self._window())
        self._epoch = epoch
        new = set(self._window())
        gone, added = sorted(old - new), sorted(new - old)
        for source, key in self._sources.items():
            self._drop_epochs(source, key, gone)
            self._add_epochs(source, key, added)
