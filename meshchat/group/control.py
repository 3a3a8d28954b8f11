"""Group control messages, and how they are cut into parts and joined again.

Control messages only travel inside pairwise sealed sessions (suite RATCHET), which
authenticate the sender and give forward secrecy; they are never flooded in clear.

===============  ==========================================================================
message          canonical CBOR
===============  ==========================================================================
GroupUpdate      ``[1, roster, epoch_secret(32) | null, [[node_id(16), spk_public(32),
                 spk_signature(64), spk_created_ms], ...]]`` — an admin's new roster; the
                 secret is null in the notice sent to a removed member; the list holds the
                 members' signed prekeys the admin knows, so members who are not each
                 other's contacts can open sessions to share their sender keys
SenderKeyShare   ``[2, group_id(16), epoch, roster_digest(16), chain_key(32), iteration,
                 signing_public(32)]`` — a member's sender chain for one roster
GroupLeave       ``[3, group_id(16)]`` — a member leaves; sent to the admins, whose nodes
                 then remove it (and so re-key the group)
NotApplied       ``[4, blob_id(16), reason]`` — the receiver did not apply the blob of that id
                 (reason 1: it could not keep its parts; 2: it refused the blob); sent back
                 to the blob's sender instead of an ack
===============  ==========================================================================

A control message larger than one packet is cut into :class:`~meshchat.wire.payloads.ControlPart`
bodies of at most ``CONTROL_CHUNK_BYTES``; each part is its own acked direct message. The
:class:`Assembler` joins them. Bounds, so that strangers' half-sent blobs cannot crowd out the
blobs of peers we know (contacts and group members):

* per sender: :data:`BLOBS_PER_SENDER` blobs in progress; a further one drops the sender's own
  oldest;
* known senders: :data:`MAX_KNOWN_BYTES` of parts in all (they are stored, and a blob is at most
  ``CONTROL_CHUNK_BYTES * MAX_CONTROL_PARTS`` bytes), kept for :data:`ASSEMBLY_HORIZON_MS`; past
  the budget the oldest blob of the known sender holding the most goes;
* strangers: :data:`MAX_STRANGER_BLOBS` blobs and :data:`MAX_STRANGER_BYTES` in all, in memory
  only (never stored, so a restart forgets them), kept for :data:`STRANGER_HORIZON_MS`; past the
  budget the oldest stranger's blob goes. A stranger's part never displaces a known sender's.

A part that cannot be kept raises :class:`PartRefused`: the receiver does not ack it. A known
sender's blob that is dropped after some of its parts were kept is listed by
:meth:`Assembler.take_dropped`, so the receiver can tell the sender (``NotApplied``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import cbor2

from meshchat.errors import IdentityError, MeshchatError, PacketError, PacketReason
from meshchat.group.roster import GROUP_ID_SIZE, MAX_MEMBERS, Roster
from meshchat.identity import SignedPrekey
from meshchat.wire.cborcheck import check_cbor
from meshchat.wire.packet import MAX_AGE_MS
from meshchat.wire.payloads import (
    CONTROL_CHUNK_BYTES,
    MAX_CONTROL_PARTS,
    MSG_ID_SIZE,
    ControlPart,
)

__all__ = [
    "ASSEMBLY_HORIZON_MS",
    "BLOBS_PER_SENDER",
    "DROPPED",
    "MAX_KNOWN_BYTES",
    "MAX_STRANGER_BLOBS",
    "MAX_STRANGER_BYTES",
    "REFUSED",
    "STRANGER_HORIZON_MS",
    "Assembler",
    "Control",
    "GroupLeave",
    "GroupUpdate",
    "NotApplied",
    "PartRefused",
    "SenderKeyShare",
    "decode_control",
    "split",
]

_UPDATE = 1
_SHARE = 2
_LEAVE = 3
_NOT_APPLIED = 4
#: NotApplied reasons: the parts could not be kept / the blob was refused
DROPPED = 1
REFUSED = 2
_MAX_BLOB = CONTROL_CHUNK_BYTES * MAX_CONTROL_PARTS
#: how long a known sender's blob in progress is kept
ASSEMBLY_HORIZON_MS = MAX_AGE_MS
#: how long a stranger's blob in progress is kept (a real one completes within seconds)
STRANGER_HORIZON_MS = 10 * 60 * 1000
BLOBS_PER_SENDER = 4
MAX_KNOWN_BYTES = 32 * 1024
MAX_STRANGER_BLOBS = 64
MAX_STRANGER_BYTES = 128 * 1024


class PartRefused(MeshchatError):
    """A control part the assembler cannot keep (it must not be acked)."""


def _bad(what: str) -> PacketError:
    return PacketError(PacketReason.BAD_FIELD, f"group control: {what}")


def _bytes(value: object, size: int, what: str) -> bytes:
    if not isinstance(value, bytes) or len(value) != size:
        raise _bad(what)
    return value


def _uint(value: object, what: str) -> int:
    if type(value) is not int or not 0 <= value < 2**53:
        raise _bad(what)
    return value


@dataclass(frozen=True, slots=True)
class GroupUpdate:
    """A new roster from one of its admins, with the epoch secret (None for a removal notice)."""

    roster: Roster
    epoch_secret: bytes | None
    prekeys: tuple[tuple[bytes, SignedPrekey], ...] = ()

    def encode(self) -> bytes:
        return cbor2.dumps(
            [
                _UPDATE,
                self.roster.encode(),
                self.epoch_secret,
                [[n, p.public, p.signature, p.created_ms] for n, p in self.prekeys],
            ],
            canonical=True,
        )


@dataclass(frozen=True, slots=True)
class SenderKeyShare:
    """A member's sender chain (as of ``iteration``) and signing key for one roster."""

    group_id: bytes
    epoch: int
    roster_digest: bytes
    chain_key: bytes
    iteration: int
    signing_public: bytes

    def encode(self) -> bytes:
        return cbor2.dumps(
            [
                _SHARE,
                self.group_id,
                self.epoch,
                self.roster_digest,
                self.chain_key,
                self.iteration,
                self.signing_public,
            ],
            canonical=True,
        )


@dataclass(frozen=True, slots=True)
class GroupLeave:
    """The sender leaves the group: its admins take it off the roster."""

    group_id: bytes

    def encode(self) -> bytes:
        return cbor2.dumps([_LEAVE, self.group_id], canonical=True)


@dataclass(frozen=True, slots=True)
class NotApplied:
    """The sender of this did not apply our blob ``blob_id`` (:data:`DROPPED`, :data:`REFUSED`)."""

    blob_id: bytes
    reason: int

    def encode(self) -> bytes:
        return cbor2.dumps([_NOT_APPLIED, self.blob_id, self.reason], canonical=True)


Control = GroupUpdate | SenderKeyShare | GroupLeave | NotApplied


def decode_control(data: bytes) -> Control:
    """Parse a joined control blob; raises :class:`PacketError`."""
    if len(data) > _MAX_BLOB:
        raise PacketError(PacketReason.OVERSIZED, "group control too large")
    check_cbor(data, max_items=16 + MAX_MEMBERS * 6, max_depth=3)
    try:
        fields = cbor2.loads(data)
    except Exception as exc:
        raise PacketError(PacketReason.MALFORMED, f"group control CBOR: {exc}") from None
    if not isinstance(fields, list) or not fields:
        raise _bad("not an array")
    kind = fields[0]
    if kind == _UPDATE and len(fields) == 4:
        _, roster_bytes, secret, prekey_list = fields
        if not isinstance(roster_bytes, bytes):
            raise _bad("roster")
        roster = Roster.decode(roster_bytes)
        if secret is not None:
            secret = _bytes(secret, 32, "epoch secret")
        if not isinstance(prekey_list, list) or len(prekey_list) > MAX_MEMBERS:
            raise _bad("prekeys")
        prekeys = []
        for entry in prekey_list:
            if not isinstance(entry, list) or len(entry) != 4:
                raise _bad("prekey entry")
            node_id = _bytes(entry[0], 16, "prekey node id")
            try:
                prekey = SignedPrekey(
                    _bytes(entry[1], 32, "prekey"),
                    _bytes(entry[2], 64, "prekey signature"),
                    _uint(entry[3], "prekey time"),
                )
            except IdentityError:
                raise _bad("prekey") from None
            prekeys.append((node_id, prekey))
        return GroupUpdate(roster, secret, tuple(prekeys))
    if kind == _SHARE and len(fields) == 7:
        _, group_id, epoch, digest, chain_key, iteration, signing_public = fields
        return SenderKeyShare(
            _bytes(group_id, GROUP_ID_SIZE, "group id"),
            _uint(epoch, "epoch"),
            _bytes(digest, 16, "roster digest"),
            _bytes(chain_key, 32, "chain key"),
            _uint(iteration, "iteration"),
            _bytes(signing_public, 32, "signing key"),
        )
    if kind == _LEAVE and len(fields) == 2:
        return GroupLeave(_bytes(fields[1], GROUP_ID_SIZE, "group id"))
    if kind == _NOT_APPLIED and len(fields) == 3:
        reason = _uint(fields[2], "reason")
        if reason not in (DROPPED, REFUSED):
            raise _bad("reason")
        return NotApplied(_bytes(fields[1], MSG_ID_SIZE, "blob id"), reason)
    raise _bad("unknown kind")


def split(blob: bytes) -> list[tuple[bytes, int, int, bytes]]:
    """Cut a control blob into ``(blob_id, index, count, chunk)`` parts."""
    if not 0 < len(blob) <= _MAX_BLOB:
        raise PacketError(PacketReason.OVERSIZED, "group control too large")
    blob_id = os.urandom(MSG_ID_SIZE)
    chunks = [blob[i : i + CONTROL_CHUNK_BYTES] for i in range(0, len(blob), CONTROL_CHUNK_BYTES)]
    return [(blob_id, i, len(chunks), c) for i, c in enumerate(chunks)]


@dataclass(slots=True)
class _Partial:
    count: int
    first_ms: int
    #: the sender's (sign, box) keys when it is a known peer; None for a stranger
    known: tuple[bytes, bytes] | None
    chunks: dict[int, bytes] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return sum(len(c) for c in self.chunks.values())


_Key = tuple[bytes, bytes]  # (sender node id, blob id)


class Assembler:
    """Joins the parts of control blobs, per sender; bounded (see the module docstring)."""

    def __init__(self) -> None:
        self._partial: dict[_Key, _Partial] = {}
        self._dropped: list[tuple[bytes, bytes, bytes]] = []

    def add(
        self,
        sender: bytes,
        part: ControlPart,
        now_ms: int,
        known: tuple[bytes, bytes] | None = None,
    ) -> bytes | None:
        """Keep ``part`` from ``sender`` (``known``: its (sign, box) keys if it is a known
        peer); returns the whole blob once its last part arrived. Raises
        :class:`PartRefused` when the part cannot be kept."""
        self.expire(now_ms)
        if part.count == 1:
            return part.chunk
        key = (sender, part.blob_id)
        partial = self._partial.get(key)
        if partial is None:
            mine = sorted((k for k in self._partial if k[0] == sender), key=self._age)
            for old in mine[: max(0, len(mine) - BLOBS_PER_SENDER + 1)]:
                self._drop(old)
            if known is None:
                strangers = sorted(self._keys(stranger=True), key=self._age)
                for old in strangers[: max(0, len(strangers) - MAX_STRANGER_BLOBS + 1)]:
                    self._drop(old)
            partial = self._partial[key] = _Partial(part.count, now_ms, known)
        elif partial.count != part.count or (partial.known is None) != (known is None):
            raise PartRefused("a part that does not match its blob")
        if part.index not in partial.chunks:
            try:
                self._make_room(key, len(part.chunk))
            except PartRefused:
                if not partial.chunks:
                    del self._partial[key]
                raise
            partial.chunks[part.index] = part.chunk
        if len(partial.chunks) < partial.count:
            return None
        del self._partial[key]
        return b"".join(partial.chunks[i] for i in range(partial.count))

    def _age(self, key: _Key) -> int:
        return self._partial[key].first_ms

    def _keys(self, *, stranger: bool) -> list[_Key]:
        return [k for k, p in self._partial.items() if (p.known is None) is stranger]

    def _make_room(self, key: _Key, need: int) -> None:
        stranger = self._partial[key].known is None
        budget = MAX_STRANGER_BYTES if stranger else MAX_KNOWN_BYTES
        while True:
            keys = self._keys(stranger=stranger)
            if sum(self._partial[k].size for k in keys) + need <= budget:
                return
            others = [k for k in keys if k != key]
            if not others:
                raise PartRefused("no room for this control part")
            if stranger:
                self._drop(min(others, key=self._age))
                continue
            # The known sender holding the most bytes gives up its oldest blob (not the one
            # this part belongs to: then the next heaviest does).
            held: dict[bytes, int] = {}
            for k in keys:
                held[k[0]] = held.get(k[0], 0) + self._partial[k].size
            for sender in sorted(held, key=lambda s: -held[s]):
                mine = [k for k in others if k[0] == sender]
                if mine:
                    self._drop(min(mine, key=self._age))
                    break

    def _drop(self, key: _Key) -> None:
        partial = self._partial.pop(key)
        if partial.known is not None and partial.chunks:
            sign, box = partial.known
            self._dropped.append((sign, box, key[1]))

    def take_dropped(self) -> list[tuple[bytes, bytes, bytes]]:
        """Known senders' blobs dropped after some of their parts were kept (and acked), as
        ``(sign key, box key, blob id)``, since the last call."""
        dropped, self._dropped = self._dropped, []
        return dropped

    def expire(self, now_ms: int) -> None:
        for key, p in list(self._partial.items()):
            horizon = ASSEMBLY_HORIZON_MS if p.known is not None else STRANGER_HORIZON_MS
            if now_ms - p.first_ms > horizon:
                self._drop(key)

    # -- state ---------------------------------------------------------------------------

    def dump(self) -> list[object]:
        """Known senders' blobs in progress (strangers' are never stored)."""
        return [
            [
                sender,
                blob_id,
                p.count,
                p.first_ms,
                [[i, c] for i, c in sorted(p.chunks.items())],
                list(p.known),
            ]
            for (sender, blob_id), p in self._partial.items()
            if p.known is not None
        ]

    @classmethod
    def load(cls, items: object) -> Assembler:
        """Rebuild from :meth:`dump`; entries of the older layout (without the sender's keys)
        are skipped. Raises :class:`PacketError` for a malformed entry."""
        assembler = cls()
        if not isinstance(items, list):
            return assembler
        for item in items:
            if not isinstance(item, list) or len(item) not in (5, 6):
                raise _bad("stored control part")
            if len(item) == 5:
                continue  # older layout: whether its sender is known is not recorded
            sender, blob_id, count, first_ms, chunks, keys = item
            if not (
                isinstance(sender, bytes)
                and isinstance(blob_id, bytes)
                and type(count) is int
                and type(first_ms) is int
                and isinstance(chunks, list)
                and isinstance(keys, list)
                and len(keys) == 2
                and all(isinstance(k, bytes) for k in keys)
            ):
                raise _bad("stored control part")
            partial = _Partial(count, first_ms, (keys[0], keys[1]))
            for index, chunk in chunks:
                if type(index) is not int or not isinstance(chunk, bytes):
                    raise _bad("stored control part")
                partial.chunks[index] = chunk
            assembler._partial[(sender, blob_id)] = partial
        return assembler
