"""``/group``: the grammar of the private-group commands (pure, as :mod:`.commands`).

    /group [list]              GroupList()            (alias /g)
    /group show <+group>       GroupShow(group)       (also /group <+group>)
    /group create <name> <contact>...    GroupCreate(name, members)
    /group add <+group> <contact>...     GroupChange("add", group, members)
    /group remove <+group> <member>...   GroupChange("remove", group, members)
    /group admin <+group> <member>...    GroupChange("admin", group, members)
    /group leave <+group>      GroupLeave(group)

A group is written ``+name`` or ``grp:<id hex prefix>``; a group's name is one word, so
``/group create`` takes it with or without the ``+``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from meshchat.errors import UsageError
from meshchat.group.roster import GROUP_ID_SIZE, MAX_GROUP_NAME_BYTES, MAX_MEMBERS

__all__ = [
    "GroupAction",
    "GroupChange",
    "GroupCommand",
    "GroupCreate",
    "GroupLeave",
    "GroupList",
    "GroupShow",
    "group_target",
    "is_group_word",
    "parse_group",
]


@dataclass(frozen=True, slots=True)
class GroupList:
    """List the groups this node is in (and those it was removed from)."""


@dataclass(frozen=True, slots=True)
class GroupShow:
    """Show one group's members and admins; ``group`` is ``+name`` or ``grp:<id prefix>``."""

    group: str


@dataclass(frozen=True, slots=True)
class GroupCreate:
    """Make a private group ``name`` (without the ``+``) of these contacts; we are its admin."""

    name: str
    members: tuple[str, ...]


#: what :class:`GroupChange` does to the members it names
GroupAction = Literal["add", "remove", "admin"]


@dataclass(frozen=True, slots=True)
class GroupChange:
    """Add contacts to ``group``, remove members from it, or make members admins.

    Only an admin may; every change re-keys the group.
    """

    action: GroupAction
    group: str
    members: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class GroupLeave:
    """Leave ``group``: our keys for it are erased and its admins re-key it without us."""

    group: str


GroupCommand = GroupList | GroupShow | GroupCreate | GroupChange | GroupLeave


_GROUP_USAGE = {
    "list": "/group [list]",
    "show": "/group show <+group>",
    "create": "/group create <name> <contact>...",
    "add": "/group add <+group> <contact>...",
    "remove": "/group remove <+group> <member>...",
    "admin": "/group admin <+group> <member>...",
    "leave": "/group leave <+group>",
}
_GROUP_PREFIX = "grp:"


def is_group_word(word: str) -> bool:
    return word.startswith("+") or word.lower().startswith(_GROUP_PREFIX)


def group_target(word: str, usage: str) -> str:
    """``+name`` as typed (the node matches names without case) or ``grp:<hex>`` lowered."""
    if word.startswith("+"):
        if len(word) == 1:
            raise UsageError(f"usage: {usage} (a group is +name or grp:<id>)")
        if len(word[1:].encode()) > MAX_GROUP_NAME_BYTES:
            raise UsageError(f"a group name is at most {MAX_GROUP_NAME_BYTES} bytes")
        return word
    if not word.lower().startswith(_GROUP_PREFIX):
        raise UsageError(f"usage: {usage} (a group is +name or grp:<id>, not {word!r})")
    prefix = word[len(_GROUP_PREFIX) :].lower()
    if not prefix or len(prefix) > 2 * GROUP_ID_SIZE:
        raise UsageError(f"usage: {usage} (grp: takes 1 to {2 * GROUP_ID_SIZE} hex digits)")
    if any(ch not in "0123456789abcdef" for ch in prefix):
        raise UsageError(f"{word!r}: a group id is hex digits (see /group list)")
    return _GROUP_PREFIX + prefix


def _group_name(word: str) -> str:
    """The name of a new group: one word, the ``+`` optional, no control characters."""
    name = word.removeprefix("+")
    if not name:
        raise UsageError(f"usage: {_GROUP_USAGE['create']}")
    if name.startswith(("#", "+")) or name.lower().startswith(_GROUP_PREFIX):
        raise UsageError(f"bad group name {word!r}: it cannot start with #, + or grp:")
    if len(name.encode()) > MAX_GROUP_NAME_BYTES:
        raise UsageError(f"a group name is at most {MAX_GROUP_NAME_BYTES} bytes")
    if not name.isprintable():
        raise UsageError("a group name cannot hold control characters")
    return name


def _group_members(words: list[str], action: str) -> tuple[str, ...]:
    """The contacts or members an action names: at least one, each once, none a group."""
    if not words:
        raise UsageError(f"usage: {_GROUP_USAGE[action]}")
    for word in words:
        if word.startswith(("+", "#")) or word.lower().startswith(_GROUP_PREFIX):
            raise UsageError(
                f"{word!r} is not a person: /group {action} takes contact names or node ids"
            )
    members = tuple(dict.fromkeys(words))
    if len(members) > MAX_MEMBERS:
        raise UsageError(f"a group holds at most {MAX_MEMBERS} members")
    return members


def parse_group(rest: str) -> GroupCommand:
    words = rest.split()
    if not words or words[0].lower() == "list":
        if len(words) > 1:
            raise UsageError("/group list takes no arguments")
        return GroupList()
    if is_group_word(words[0]):  # /group +crew: show it
        if len(words) > 1:
            raise UsageError(f"usage: {_GROUP_USAGE['show']}")
        return GroupShow(group_target(words[0], _GROUP_USAGE["show"]))
    action, args = words[0].lower(), words[1:]
    if action not in _GROUP_USAGE:
        actions = ", ".join(_GROUP_USAGE)
        raise UsageError(f"unknown /group action {words[0]!r}: one of {actions}")
    usage = _GROUP_USAGE[action]
    if not args:
        raise UsageError(f"usage: {usage}")
    if action in ("show", "leave"):
        if len(args) > 1:
            raise UsageError(f"usage: {usage}")
        target = group_target(args[0], usage)
        return GroupShow(target) if action == "show" else GroupLeave(target)
    if action == "create":
        return GroupCreate(_group_name(args[0]), _group_members(args[1:], action))
    if not is_group_word(args[0]):
        raise UsageError(
            f"usage: {usage}: name the group first, as +name or grp:<id> (not {args[0]!r})"
        )
    group = group_target(args[0], usage)
    verb: GroupAction = "add" if action == "add" else "remove" if action == "remove" else "admin"
    return GroupChange(verb, group, _group_members(args[1:], action))
