"""Group memberships between the devices of one account (control blobs 26 to 28).

A private group's members are *devices* (:mod:`meshchat.group`): each member device has its
own sender chain, and an epoch secret reaches exactly the devices its roster lists. A device
of my account that is not on a group's roster therefore cannot read it, and no device hands
another its sender keys (two devices advancing one chain would reuse message keys, and a
revoked device would keep a chain the others still use). Instead the account's other device
joins the group as a member device of its own, through the group's ordinary re-key:

=============  ===================================================================================
message        canonical CBOR
=============  ===================================================================================
GroupHeld      ``[26, roster]``: own device -> own device, at each sync: "I am a member of this
               group; here is its latest roster (signed by an admin)"
GroupJoin      ``[27, group_id(16)]``: device -> each admin of a group its account is in: "add
               me: the device list of my account names me, and a device of it is a member"
GroupLeft      ``[28, group_id(16)]``: own device -> own device, at once: "I left this group
               (the person did): leave it too"
=============  ===================================================================================

An admin adds the asking device only when a device of the same account is on the roster and
the list the admin holds for that account names the asker (a list signed by the account's
devices, :mod:`.devicelist`): the account decides which devices are its, the admin decides
which accounts are in the group. The admin also adds the new devices of a member account as
soon as it takes a list that adds them (``engine._groupsync``).
"""

from __future__ import annotations

from dataclasses import dataclass

import cbor2

from meshchat.errors import PacketError, PacketReason
from meshchat.group.roster import GROUP_ID_SIZE, MAX_MEMBERS, Roster
from meshchat.wire.cborcheck import check_cbor

__all__ = [
    "KIND_GROUP_HELD",
    "KIND_GROUP_JOIN",
    "KIND_GROUP_LEFT",
    "MAX_GROUP_HELD_BYTES",
    "GroupHeld",
    "GroupJoin",
    "GroupLeft",
]

KIND_GROUP_HELD = 26
KIND_GROUP_JOIN = 27
KIND_GROUP_LEFT = 28
#: A roster (bounded by :meth:`Roster.decode`) and a few bytes of framing.
MAX_GROUP_HELD_BYTES = 240 + MAX_MEMBERS * 90


def _bad(what: str) -> PacketError:
    return PacketError(PacketReason.BAD_FIELD, f"group membership: {what}")


def _fields(data: bytes, kind: int, limit: int) -> list[object]:
    if not isinstance(data, bytes):
        raise _bad("not bytes")
    if len(data) > limit:
        raise PacketError(PacketReason.OVERSIZED, f"group membership blob of {len(data)} bytes")
    check_cbor(data, max_items=4, max_depth=1)
    try:
        fields = cbor2.loads(data)
    except Exception as exc:
        raise PacketError(PacketReason.MALFORMED, "group membership CBOR") from exc
    if not isinstance(fields, list) or len(fields) != 2 or fields[0] != kind:
        raise _bad(f"not a [{kind}, x] array")
    if cbor2.dumps(fields, canonical=True) != data:
        raise PacketError(PacketReason.NOT_CANONICAL, "group membership not canonical")
    return fields


@dataclass(frozen=True, slots=True)
class GroupHeld:
    """One of my devices is a member of the group whose latest roster this is."""

    roster: Roster

    def __post_init__(self) -> None:
        if not isinstance(self.roster, Roster):
            raise _bad("roster")

    def encode(self) -> bytes:
        return cbor2.dumps([KIND_GROUP_HELD, self.roster.encode()], canonical=True)

    @classmethod
    def decode(cls, data: bytes) -> GroupHeld:
        """Parse (the roster's signature is checked by whoever takes it); raises
        :class:`PacketError`."""
        fields = _fields(data, KIND_GROUP_HELD, MAX_GROUP_HELD_BYTES)
        roster = fields[1]
        if not isinstance(roster, bytes):
            raise _bad("roster")
        return cls(Roster.decode(roster))


def _group_id(data: bytes, kind: int) -> bytes:
    group_id = _fields(data, kind, 32)[1]
    if not isinstance(group_id, bytes) or len(group_id) != GROUP_ID_SIZE:
        raise _bad("group id")
    return group_id


@dataclass(frozen=True, slots=True)
class GroupJoin:
    """Asks an admin of the group to add the sending device (its account is in it)."""

    group_id: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.group_id, bytes) or len(self.group_id) != GROUP_ID_SIZE:
            raise _bad("group id")

    def encode(self) -> bytes:
        return cbor2.dumps([KIND_GROUP_JOIN, self.group_id], canonical=True)

    @classmethod
    def decode(cls, data: bytes) -> GroupJoin:
        """Parse; raises :class:`PacketError`."""
        return cls(_group_id(data, KIND_GROUP_JOIN))


@dataclass(frozen=True, slots=True)
class GroupLeft:
    """Tells my other devices that I left the group (so they leave it too)."""

    group_id: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.group_id, bytes) or len(self.group_id) != GROUP_ID_SIZE:
            raise _bad("group id")

    def encode(self) -> bytes:
        return cbor2.dumps([KIND_GROUP_LEFT, self.group_id], canonical=True)

    @classmethod
    def decode(cls, data: bytes) -> GroupLeft:
        """Parse; raises :class:`PacketError`."""
        return cls(_group_id(data, KIND_GROUP_LEFT))
