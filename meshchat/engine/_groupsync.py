"""The engine's group-membership glue: my groups followed by my other devices (blobs 26-28).

:class:`GroupSyncGlue` belongs to one :class:`~meshchat.engine.Engine`. A group's members are
devices, each with its own sender chain (:mod:`meshchat.group`); sender keys never leave the
device that made them. So a device of my account that is not on a group's roster joins it as
a member device of its own, by the group's ordinary re-key (see
:mod:`meshchat.account.groupsync` for the two blobs):

* **tell** (:meth:`share`, at each history sync with one of my devices): for every group this
  device is a member of, a :class:`GroupHeld` with the group's latest roster;
* **ask** (:meth:`_on_held`, own devices only): a roster, signed by one of its admins, that
  lists the sending device of mine and not this one: this device sends :class:`GroupJoin` to
  every admin of it (once a minute per group and admin). The admins become known peers, so
  the request waits for their prekeys like any control part;
* **add** (:meth:`_on_join`, from anyone): an admin adds the asking device by a re-key when
  the list it holds for the account of a member names that device; anything else is refused
  (``DeviceListError(NOT_IN_GROUP)``, logged);
* **grow** (:meth:`grow`, from :meth:`AccountGlue.apply`): an admin that takes a list adding
  devices to an account with a device in one of its groups adds them at once (the group's
  new epoch reaches them; the members' new sender chains follow as they adopt it).

* **leave** (:meth:`left`, :meth:`_on_left`, own devices only): a device that leaves a group
  tells my other devices at once (:class:`GroupLeft`, retried until acked), and they leave it
  too. A device that left a group, or was removed from it, never asks back because another
  device of mine is still in it; an admin refuses to re-add a device it removed.

Revocation is the reverse, and already the account glue's: an admin that takes a list
revoking a member device re-keys the group without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from meshchat.account.book import ListChange
from meshchat.account.groupsync import (
    KIND_GROUP_HELD,
    KIND_GROUP_JOIN,
    KIND_GROUP_LEFT,
    GroupHeld,
    GroupJoin,
    GroupLeft,
)
from meshchat.errors import (
    DeviceListError,
    DeviceListReason,
    PacketError,
    PacketReason,
    UsageError,
)
from meshchat.events import MessageRejected
from meshchat.group.roster import MAX_MEMBERS
from meshchat.identity import PublicIdentity

if TYPE_CHECKING:
    from meshchat.engine import Engine, Output
    from meshchat.group._state import Group

__all__ = ["GroupSyncGlue"]


class GroupSyncGlue:
    """Group memberships between the devices of one account (see the module docstring)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._asked: dict[bytes, int] = {}
        self._added: dict[bytes, int] = {}
        glue = engine.account_glue
        glue.register(KIND_GROUP_HELD, self._on_held, own_devices_only=True)
        glue.register(KIND_GROUP_JOIN, self._on_join, own_devices_only=False)
        glue.register(KIND_GROUP_LEFT, self._on_left, own_devices_only=True)

    # -- telling my devices ----------------------------------------------------------------

    def member_groups(self) -> list[Group]:
        """The groups this device is a member of now."""
        me = self.engine.identity.node_id
        return [
            g
            for g in self.engine.groups.groups.values()
            if not g.removed and g.roster.member(me) is not None
        ]

    def share(self, device: PublicIdentity, now_ms: int) -> list[Output]:
        """Tell my ``device`` which groups this device is in (each group's latest roster)."""
        if not self.engine.accounts.is_own_device(device.node_id):
            return []
        out: list[Output] = []
        for group in self.member_groups():
            if group.roster.member(device.node_id) is not None:
                continue  # it is a member already: the group itself keeps it up to date
            blob = GroupHeld(group.roster).encode()
            out.extend(self.engine.account_glue.send(device, blob, now_ms))
        return out

    def _on_held(self, sender: PublicIdentity, blob: bytes, now_ms: int) -> list[Output]:
        """My device is in a group: ask its admins to add this device too."""
        roster = GroupHeld.decode(blob).roster
        if not roster.signature_valid() or not roster.is_admin_key(roster.signer):
            raise PacketError(
                PacketReason.BAD_FIELD, "group membership: roster not signed by an admin"
            )
        if roster.member(sender.node_id) is None:
            raise DeviceListError(
                DeviceListReason.NOT_IN_GROUP, "a group roster that does not list its sender"
            )
        engine = self.engine
        me = engine.identity.node_id
        held = engine.groups.groups.get(roster.group_id)
        if roster.member(me) is not None:
            return []  # the update that adds me is on its way (or here)
        if held is not None and (held.removed or held.roster.member(me) is not None):
            # a member already, or this device left the group or was removed from it: only
            # an admin brings it back, never another device's word
            return []
        out: list[Output] = []
        for admin_id in sorted(roster.admins):
            admin = roster.member(admin_id)
            if admin is None or admin_id == me:
                continue
            if not _due(self._asked, roster.group_id + admin_id, now_ms):
                continue
            if not engine.direct.knows(admin_id):
                engine.direct.add_peer(admin)  # a group admin of my account: a peer from now on
            out.extend(engine.account_glue.send(admin, GroupJoin(roster.group_id).encode(), now_ms))
        return out

    def left(self, group_id: bytes, now_ms: int) -> list[Output]:
        """This device left a group (the person did): my other devices leave it too."""
        blob = GroupLeft(group_id).encode()
        out: list[Output] = []
        for device in self.engine.accounts.own_devices():
            out.extend(self.engine.account_glue.send(device, blob, now_ms))
        return out

    def _on_left(self, sender: PublicIdentity, blob: bytes, now_ms: int) -> list[Output]:
        """My device left a group: leave it here too (not told on: it told every device)."""
        group_id = GroupLeft.decode(blob).group_id
        group = self.engine.groups.groups.get(group_id)
        if group is None or group.current is None:
            return []
        try:
            return self.engine._group_glue.leave(group_id, now_ms)
        except UsageError as exc:  # this device is the group's only admin: it stays
            return [MessageRejected(f"leaving with my other device: {exc}", bytes(16), None)]

    # -- as an admin ----------------------------------------------------------------------

    def _on_join(self, sender: PublicIdentity, blob: bytes, now_ms: int) -> list[Output]:
        """A device asks to join a group I administer because its account is in it."""
        group_id = GroupJoin.decode(blob).group_id
        group = self.engine.groups.groups.get(group_id)
        if group is None or group.removed or not self._administered(group):
            raise DeviceListError(
                DeviceListReason.NOT_IN_GROUP, "asked to join a group this device does not run"
            )
        if group.roster.member(sender.node_id) is not None:
            return []
        if sender.node_id in group.removals:
            raise DeviceListError(
                DeviceListReason.NOT_IN_GROUP, f"{sender.short_id} was removed from the group"
            )
        if not self._account_in(group, sender):
            raise DeviceListError(
                DeviceListReason.NOT_IN_GROUP,
                f"{sender.short_id} is on no held list of an account in the group",
            )
        if not _due(self._added, group_id + sender.node_id, now_ms):
            return []
        return self._add(group, [sender], now_ms)

    def grow(self, change: ListChange, now_ms: int) -> list[Output]:
        """An account's list added devices: every group I administer that holds a device of
        that account gets them too."""
        added = [d for d in change.added if d.node_id != self.engine.identity.node_id]
        if not added:
            return []
        listed = set(change.new.node_ids)
        out: list[Output] = []
        for group in list(self.engine.groups.groups.values()):
            if group.removed or group.current is None or not self._administered(group):
                continue
            members = {m.node_id for m in group.roster.members}
            if not members & (listed - {d.node_id for d in added}):
                continue
            new = [d for d in added if d.node_id not in members | set(group.removals)]
            if new:
                out.extend(self._add(group, new, now_ms))
        return out

    def _administered(self, group: Group) -> bool:
        return group.roster.is_admin_key(self.engine.identity.public.sign_public)

    def _account_in(self, group: Group, device: PublicIdentity) -> bool:
        """Whether a list held here names ``device`` on an account that has another device
        on the group's roster."""
        book = self.engine.accounts
        account = book.account_of(device.node_id)
        if device not in book.devices_of(account):
            return False
        listed = {d.node_id for d in book.devices_of(account)}
        return any(m.node_id in listed for m in group.roster.members if m != device)

    def _add(self, group: Group, devices: list[PublicIdentity], now_ms: int) -> list[Output]:
        if len(group.roster.members) + len(devices) > MAX_MEMBERS:
            reason = f"group {group.name!r} is full: a device of a member account left out"
            return [MessageRejected(reason, bytes(16), None)]
        try:
            return self.engine._group_glue.add_devices(group.group_id, devices, now_ms)
        except (UsageError, PacketError) as exc:
            return [MessageRejected(f"adding a member's device: {exc}", bytes(16), None)]


#: at most one join request per (group, admin), and one re-key per (group, device), this often
_EVERY_MS = 60_000
_MAX_REMEMBERED = 1024


def _due(last: dict[bytes, int], key: bytes, now_ms: int) -> bool:
    before = last.get(key)
    if before is not None and now_ms - before < _EVERY_MS:
        return False
    last[key] = now_ms
    while len(last) > _MAX_REMEMBERED:
        del last[next(iter(last))]
    return True
