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
===============  ==========================================================================

A control message larger than one packet is cut into :class:`~meshchat.wire.payloads.ControlPart`
bodies of at most ``CONTROL_CHUNK_BYTES``; each part is its own acked direct message. The
:class:`Assembler` joins them; it holds at most a few blobs per sender and drops incomplete
ones after :data:`ASSEMBLY_HORIZON_MS`, so a peer cannot make it hold much.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import cbor2

from meshchat.errors import IdentityError, PacketError, PacketReason
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
    "Assembler",
    "Control",
    "GroupLeave",
    "GroupUpdate",
    "SenderKeyShare",
    "decode_control",
    "split",
]

_UPDATE = 1
_SHARE = 2
_LEAVE = 3
_MAX_BLOB = CONTROL_CHUNK_BYTES * MAX_CONTROL_PARTS
ASSEMBLY_HORIZON_MS = MAX_AGE_MS
_BLOBS_PER_SENDER = 4
_MAX_SENDERS = 256


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


Control = GroupUpdate | SenderKeyShare | GroupLeave


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
    chunks: dict[int, bytes] = field(default_factory=dict)


class Assembler:
    """Joins the parts of control blobs, per sender; bounded in blobs and in time."""

    def __init__(self) -> None:
        self._partial: dict[tuple[bytes, bytes], _Partial] = {}

    def add(self, sender: bytes, part: ControlPart, now_ms: int) -> bytes | None:
        """Keep ``part``; returns the whole blob once its last part arrived."""
        self.expire(now_ms)
        if part.count == 1:
            return part.chunk
        key = (sender, part.blob_id)
        partial = self._partial.get(key)
        if partial is None:
            mine = [k for k in self._partial if k[0] == sender]
            if len(mine) >= _BLOBS_PER_SENDER:
                oldest = min(mine, key=lambda k: self._partial[k].first_ms)
                del self._partial[oldest]
            if len({k[0] for k in self._partial} | {sender}) > _MAX_SENDERS:
                return None
            partial = self._partial[key] = _Partial(part.count, now_ms)
        if partial.count != part.count:
            return None
        partial.chunks[part.index] = part.chunk
        if len(partial.chunks) < partial.count:
            return None
        del self._partial[key]
        return b"".join(partial.chunks[i] for i in range(partial.count))

    def expire(self, now_ms: int) -> None:
        for key in [
            k for k, p in self._partial.items() if now_ms - p.first_ms > ASSEMBLY_HORIZON_MS
        ]:
            del self._partial[key]

    # -- state ---------------------------------------------------------------------------

    def dump(self) -> list[object]:
        return [
            [sender, blob_id, p.count, p.first_ms, [[i, c] for i, c in sorted(p.chunks.items())]]
            for (sender, blob_id), p in self._partial.items()
        ]

    @classmethod
    def load(cls, items: object) -> Assembler:
        assembler = cls()
        if not isinstance(items, list):
            return assembler
        for sender, blob_id, count, first_ms, chunks in items:
            partial = _Partial(count, first_ms)
            for index, chunk in chunks:
                partial.chunks[index] = chunk
            assembler._partial[(sender, blob_id)] = partial
        return assembler
