"""Private groups as the chat screen shows them: snapshots, change lines and reports.

Theory of operation. The node tells the screen only *that* some group changed (a ``group``
notice, no details), so the controller keeps the last :class:`GroupState` it saw of every
group and, on each notice, compares it with a fresh one. :func:`group_changes` turns the
difference into lines for the user:

* a group that appears while this node is a member: we were added (or created it);
* a member who is no longer one: we were removed (or left, when the roster still lists
  us), and nothing sent to the group from now on can be read here (the node has erased
  the group's keys);
* a member who still is one, with another roster: members added or removed, admins made.

Each line names who signed the new roster (an admin), as a contact name when there is one.
Lines about our own changes and about joining or leaving are *loud*: they also go to the
conversation on screen, not only to the group's own. A notice that changed nothing visible
(a second notice for the same change, a re-key) yields no line, so the comparison may run
as often as notices come.

Everything here is pure: no urwid, no node; names come from a callable.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from meshchat.display import safe_line
from meshchat.group.book import Group, group_conversation

__all__ = [
    "GroupNote",
    "GroupState",
    "Namer",
    "group_changes",
    "group_label",
    "group_text",
    "groups_text",
    "snapshot",
]

#: a member's node id -> how to show them (a contact name, ``~announced`` or a short id)
Namer = Callable[[bytes], str]


def group_label(name: str) -> str:
    """How a group is written everywhere in the UI: ``+name``, on one line."""
    return "+" + (safe_line(name) or "?")


@dataclass(frozen=True, slots=True)
class GroupState:
    """What the screen knows of one group at one moment (a copy: the node's object changes)."""

    group_id: bytes
    name: str
    epoch: int
    members: tuple[bytes, ...]  # node ids, in roster order
    admins: frozenset[bytes]
    #: node id of the admin who signed the roster, when the roster lists them
    signer: bytes | None
    #: this node is in the group (False: it was removed and holds no keys)
    member: bool
    #: as the admin of the latest roster: members who did not apply it
    not_applied: frozenset[bytes] = frozenset()

    @property
    def conversation(self) -> str:
        return group_conversation(self.group_id)

    @property
    def label(self) -> str:
        return group_label(self.name)


def snapshot(group: Group) -> GroupState:
    roster = group.roster
    signer = roster.member_by_sign_key(roster.signer)
    return GroupState(
        group.group_id,
        group.name,
        roster.epoch,
        tuple(m.node_id for m in roster.members),
        roster.admins,
        signer.node_id if signer is not None else None,
        group.current is not None,
        frozenset(n for n, what in group.delivery.items() if what == "not applied"),
    )


@dataclass(frozen=True, slots=True)
class GroupNote:
    """A line for the group's conversation; ``loud`` ones also go to the open one."""

    conversation: str
    text: str
    loud: bool = False


def _names(ids: Iterable[bytes], me: bytes, namer: Namer) -> str:
    """Members by name, ``you`` first and the others in alphabetical order."""
    names = [_who(i, me, namer) for i in ids]
    return ", ".join(sorted(names, key=lambda n: (n != "you", n.casefold(), n)))


def _who(node_id: bytes | None, me: bytes, namer: Namer) -> str:
    if node_id is None:
        return "an admin"
    return "you" if node_id == me else safe_line(namer(node_id)) or node_id.hex()[:8]


def group_changes(
    before: Mapping[bytes, GroupState],
    after: Iterable[GroupState],
    me: bytes,
    namer: Namer,
) -> list[GroupNote]:
    """The lines that tell the user how ``after`` differs from ``before`` (module docstring)."""
    notes: list[GroupNote] = []
    for now in after:
        old = before.get(now.group_id)
        key, label = now.conversation, now.label
        by = _who(now.signer, me, namer)
        mine = now.signer == me
        others = [m for m in now.members if m != me]
        if old is None or (not old.member and now.member):
            if not now.member:
                continue  # a group we are already out of: nothing to tell
            again = " again" if old is not None else ""
            if mine:
                text = f"you created {label} with {_names(others, me, namer) or 'nobody else'}"
            else:
                members = _names(now.members, me, namer)
                text = f"you were added{again} to {label} by {by} (members: {members})"
            notes.append(GroupNote(key, text, loud=True))
            continue
        if old.member and not now.member:
            # Still on the roster but out: we left it ourselves.
            how = f"left {label}" if me in now.members else f"were removed from {label} by {by}"
            text = f"you {how}: nothing sent to it from now on can be read by you"
            notes.append(GroupNote(key, text, loud=True))
            continue
        if not now.member:
            continue  # out before and still out
        added = [m for m in now.members if m not in old.members]
        removed = [m for m in old.members if m not in now.members]
        promoted = [m for m in now.members if m in now.admins and m not in old.admins]
        if added:
            text = f"{by} added {_names(added, me, namer)} to {label}"
            notes.append(GroupNote(key, text, loud=mine))
        if removed:
            text = (
                f"{by} removed {_names(removed, me, namer)} from {label}: they cannot read "
                f"what is sent from now on"
            )
            notes.append(GroupNote(key, text, loud=mine))
        if promoted:
            role = "an admin" if len(promoted) == 1 else "admins"
            text = f"{by} made {_names(promoted, me, namer)} {role} of {label}"
            notes.append(GroupNote(key, text, loud=mine))
        failed = [m for m in now.not_applied if m not in old.not_applied]
        if failed:
            text = (
                f"{_names(failed, me, namer)} did not apply your change to {label}: they may "
                f"not read it (/group add {label} <member> sends it again)"
            )
            notes.append(GroupNote(key, text, loud=True))
    return notes


def _summary(state: GroupState, me: bytes) -> str:
    line = f"{state.label}  grp:{state.group_id.hex()[:8]}  "
    if not state.member:
        return line + "(you were removed)"
    count = len(state.members)
    line += f"{count} member{'' if count == 1 else 's'}"
    return line + (", you are an admin" if me in state.admins else "")


def groups_text(states: Sequence[GroupState], me: bytes) -> str:
    """The ``/group list`` report."""
    if not states:
        return "no groups yet: /group create <name> <contact>..."
    lines = [f"groups ({len(states)}):"]
    lines += ["  " + _summary(s, me) for s in states]
    lines.append("/group show +name for the members; /msg +name to talk")
    return "\n".join(lines)


def group_text(state: GroupState, me: bytes, namer: Namer) -> str:
    """The ``/group show`` report: every member, admins marked."""
    lines = [_summary(state, me), f"  id {state.group_id.hex()}, epoch {state.epoch}"]
    for node_id in state.members:
        admin = " (admin)" if node_id in state.admins else ""
        failed = "  [not applied]" if node_id in state.not_applied else ""
        lines.append(f"  {node_id.hex()[:8]}  {_who(node_id, me, namer)}{admin}{failed}")
    if not state.member:
        lines.append(
            f"you were removed from {state.label}: nothing sent to it from now on can be "
            f"read by you"
        )
    elif me in state.admins:
        lines.append(f"as an admin: /group add|remove|admin {state.label} <contact>...")
    return "\n".join(lines)
