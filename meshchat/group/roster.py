"""A group's roster: its members and admins, signed by an admin.

Theory of operation. A group is named by a random 16-byte ``group_id``. Each change of its
membership makes a new roster with a higher ``epoch``; the roster is signed by one admin, and a
member accepts a new roster only if its signer was an admin **in the roster the member already
holds** (for a group it has not seen yet: the signer must be the peer who sent it over their
pairwise session, an admin of the roster, and the roster must list the receiver). So nobody can
add themselves, and an admin removed in epoch *n* cannot sign epoch *n+1*.

Each roster names the roster it was made from (``parent``, that roster's digest; sixteen zero
bytes for a group's first). Two admins who change a group at once make two rosters of one
epoch; members settle on one of them (:meth:`Roster.outranks`), and the parent tells an admin
whether the roster that won was made with its own change in view. If it was not and it lists
someone that admin removed, the admin removes them again (:mod:`.book`): a removal is never
undone by a change made without knowing of it.

Encoding, canonical CBOR::

    [group_id(16), epoch, name, [[sign_public(32), box_public(32)], ...],
     [admin_node_id(16), ...], parent(16), signer(32), signature(64)]

members sorted by node id, admins sorted; the signature covers the same array without the
signature, prefixed by a domain string. Decoding is bounded (:data:`MAX_MEMBERS`).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass

import cbor2
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from meshchat.errors import PacketError, PacketReason
from meshchat.identity import Identity, PublicIdentity, clean_name
from meshchat.wire.cborcheck import check_cbor

__all__ = ["GROUP_ID_SIZE", "MAX_MEMBERS", "NO_PARENT", "Roster", "new_group_id"]

GROUP_ID_SIZE = 16
#: Most members in a group. Every change re-keys: the admin sends the new roster and epoch
#: secret to each member, and each member its sender key to each other member, so the cost
#: of a change grows with the square of the size.
MAX_MEMBERS = 64
MAX_GROUP_NAME_BYTES = 64
_MAX_EPOCH = 2**32 - 1
_DOMAIN = b"meshchat-roster-v1\x00"
_KEY = 32
_NODE_ID = 16
_DIGEST = 16
#: the parent of a group's first roster
NO_PARENT = bytes(_DIGEST)


def new_group_id() -> bytes:
    return os.urandom(GROUP_ID_SIZE)


def _bad(what: str) -> PacketError:
    return PacketError(PacketReason.BAD_FIELD, f"roster: {what}")


@dataclass(frozen=True, slots=True)
class Roster:
    """Who is in a group (``members``) and who may change it (``admins``, node ids)."""

    group_id: bytes
    epoch: int
    name: str
    members: tuple[PublicIdentity, ...]
    admins: frozenset[bytes]
    parent: bytes
    signer: bytes
    signature: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.group_id, bytes) or len(self.group_id) != GROUP_ID_SIZE:
            raise _bad("group id")
        if type(self.epoch) is not int or not 0 <= self.epoch <= _MAX_EPOCH:
            raise _bad("epoch")
        if not isinstance(self.name, str) or len(self.name.encode()) > MAX_GROUP_NAME_BYTES:
            raise _bad("name")
        if not 1 <= len(self.members) <= MAX_MEMBERS:
            raise _bad("member count")
        ids = [m.node_id for m in self.members]
        if ids != sorted(set(ids)):
            raise _bad("members not sorted and unique")
        if not self.admins or not self.admins <= set(ids):
            raise _bad("admins must be members")
        if not isinstance(self.parent, bytes) or len(self.parent) != _DIGEST:
            raise _bad("parent")
        if len(self.signer) != _KEY or len(self.signature) != 64:
            raise _bad("signer")

    # -- building ------------------------------------------------------------------------

    @classmethod
    def build(
        cls,
        signer: Identity,
        group_id: bytes,
        epoch: int,
        name: str,
        members: Iterable[PublicIdentity],
        admins: Iterable[bytes],
        parent: bytes = NO_PARENT,
    ) -> Roster:
        """A roster signed by ``signer`` (which the caller checked may sign it), made from the
        roster whose digest is ``parent``."""
        unique = {m.node_id: m for m in members}
        ordered = tuple(unique[k] for k in sorted(unique))
        draft = cls(
            group_id,
            epoch,
            clean_name(name) or "group",
            ordered,
            frozenset(admins),
            parent,
            signer.public.sign_public,
            bytes(64),
        )
        signature = signer.sign(_DOMAIN + draft._body())
        return cls(
            draft.group_id,
            draft.epoch,
            draft.name,
            draft.members,
            draft.admins,
            draft.parent,
            draft.signer,
            signature,
        )

    def _fields(self) -> list[object]:
        return [
            self.group_id,
            self.epoch,
            self.name,
            [[m.sign_public, m.box_public] for m in self.members],
            sorted(self.admins),
            self.parent,
            self.signer,
        ]

    def _body(self) -> bytes:
        return cbor2.dumps(self._fields(), canonical=True)

    # -- checking ------------------------------------------------------------------------

    def signature_valid(self) -> bool:
        try:
            VerifyKey(self.signer).verify(_DOMAIN + self._body(), self.signature)
        except (BadSignatureError, ValueError):
            return False
        return True

    def member(self, node_id: bytes) -> PublicIdentity | None:
        for m in self.members:
            if m.node_id == node_id:
                return m
        return None

    def member_by_sign_key(self, sign_public: bytes) -> PublicIdentity | None:
        for m in self.members:
            if m.sign_public == sign_public:
                return m
        return None

    def is_admin_key(self, sign_public: bytes) -> bool:
        """Whether the member with this signing key is an admin."""
        m = self.member_by_sign_key(sign_public)
        return m is not None and m.node_id in self.admins

    @property
    def digest(self) -> bytes:
        """Names this exact roster (epochs can fork when two admins change it at once)."""
        return hashlib.blake2b(self.encode(), digest_size=16, person=b"mc-roster").digest()

    def outranks(self, other: Roster) -> bool:
        """Whether this roster replaces ``other``: a higher epoch, or on a fork (the same
        epoch, two admins) the lower digest, so every member ends on the same one."""
        if self.epoch != other.epoch:
            return self.epoch > other.epoch
        return self.digest < other.digest

    # -- wire ----------------------------------------------------------------------------

    def encode(self) -> bytes:
        return cbor2.dumps([*self._fields(), self.signature], canonical=True)

    @classmethod
    def decode(cls, data: bytes) -> Roster:
        """Parse a roster (its signature is checked by :meth:`signature_valid`)."""
        if len(data) > 220 + MAX_MEMBERS * 90:
            raise PacketError(PacketReason.OVERSIZED, "roster too large")
        check_cbor(data, max_items=9 + MAX_MEMBERS * 4, max_depth=3)
        try:
            fields = cbor2.loads(data)
        except Exception as exc:
            raise PacketError(PacketReason.MALFORMED, f"roster CBOR: {exc}") from None
        if not isinstance(fields, list) or len(fields) != 8:
            raise _bad("not an array of 8")
        group_id, epoch, name, members, admins, parent, signer, signature = fields
        if not isinstance(members, list) or not isinstance(admins, list):
            raise _bad("lists")
        people = []
        for entry in members:
            if (
                not isinstance(entry, list)
                or len(entry) != 2
                or not all(isinstance(k, bytes) and len(k) == _KEY for k in entry)
            ):
                raise _bad("member")
            people.append(PublicIdentity(entry[0], entry[1]))
        if not all(isinstance(a, bytes) and len(a) == _NODE_ID for a in admins):
            raise _bad("admin")
        if admins != sorted(set(admins)):
            raise _bad("admins not sorted and unique")
        if not isinstance(signer, bytes) or not isinstance(signature, bytes):
            raise _bad("signer")
        if not isinstance(parent, bytes):
            raise _bad("parent")
        if not isinstance(group_id, bytes) or not isinstance(name, str):
            raise _bad("header")
        roster = cls(
            group_id, epoch, name, tuple(people), frozenset(admins), parent, signer, signature
        )
        if roster.encode() != data:
            raise PacketError(PacketReason.NOT_CANONICAL, "roster not canonical")
        return roster
