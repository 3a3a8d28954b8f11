"""Where a message goes: the one resolver the node and the offline command line share.

A user names a conversation as ``#channel``, ``+group`` (or ``grp:<id hex prefix>``), or a
contact's name or node id prefix. :func:`resolve_target` turns that into a :class:`Target`: its
kind, the conversation name the store files it under and the destination id kept with it.
:func:`conversation_of` does the same for reading (``meshchat log``), where ``dm:<id>`` and a
channel one has left are also accepted. Lookups go through a :class:`Directory` (the store
satisfies it) and the groups held; nothing here does I/O of its own.

Announced peers
---------------
A name no contact has may be a neighbour's announced name (any hop away):
:func:`find_announced` picks the one announce a user means, and :func:`announced_target`
makes a direct target to its keys. Contacts always win: the node asks here only after the
contacts gave :class:`~meshchat.errors.NoSuchContact`. A name resolves only when exactly one
announced key currently claims it: when a second key announces the same name (an impostor,
or the same person on another device), the name is ambiguous and the user must give an id
prefix, so a message typed to a name never goes to a key other than the one listed under it
without the user seeing both. The face then keeps the conversation under the node id
(``dm:<id>``), so later lines go to that key whatever is announced afterwards.
"""

from __future__ import annotations

import enum
import string
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from meshchat.display import safe_line
from meshchat.engine import dm_conversation
from meshchat.errors import NoSuchContact, UsageError
from meshchat.events import PeerAnnounced
from meshchat.group.book import Group, group_conversation
from meshchat.identity import PublicIdentity, SignedPrekey
from meshchat.store._find import MIN_ID_PREFIX
from meshchat.store.records import Channel, Contact, Trust
from meshchat.store.trust import fold_name

__all__ = [
    "GROUP_MARK",
    "GROUP_PREFIX",
    "Directory",
    "Target",
    "TargetKind",
    "announced_target",
    "conversation_of",
    "dm_conversation",
    "find_announced",
    "find_group",
    "group_target",
    "is_group_target",
    "resolve_target",
]

#: how a user names a group (``+friends``) and the prefix of its conversation name
GROUP_MARK = "+"
GROUP_PREFIX = "grp:"


class TargetKind(enum.Enum):
    DIRECT = "direct"
    CHANNEL = "channel"
    GROUP = "group"


@dataclass(frozen=True, slots=True)
class Target:
    """Where a message goes: ``contact`` for a direct message, ``group`` for a group one."""

    kind: TargetKind
    conversation: str
    destination: bytes
    contact: Contact | None = None
    group: Group | None = None
    #: a direct message to a peer known only by its announce: its keys and signed prekey
    peer: PublicIdentity | None = None
    prekey: SignedPrekey | None = None


class Directory(Protocol):
    """The lookups the resolver needs (:class:`meshchat.store.Store` has them)."""

    def find_contact(self, query: str) -> Contact: ...

    def get_channel(self, name: str) -> Channel | None: ...


def is_group_target(target: str) -> bool:
    return target.startswith((GROUP_MARK, GROUP_PREFIX))


def find_group(groups: Iterable[Group], target: str) -> Group:
    """The group a user means: ``+name`` (case-insensitive) or ``grp:<id hex prefix>``.
    Raises :class:`UsageError` when none or several match."""
    held = list(groups)
    if target.startswith(GROUP_PREFIX):
        prefix = target[len(GROUP_PREFIX) :].lower()
        found = [g for g in held if g.group_id.hex().startswith(prefix)] if prefix else []
    else:
        name = target.removeprefix(GROUP_MARK).strip().casefold()
        found = [g for g in held if g.name.casefold() == name]
    if not found:
        raise UsageError(f"no group {target!r}: see `meshchat group list`")
    if len(found) > 1:
        ids = ", ".join(GROUP_PREFIX + g.group_id.hex()[:8] for g in found)
        raise UsageError(f"{len(found)} groups match {target!r} ({ids}); use grp:<id>")
    return found[0]


def group_target(groups: Iterable[Group], target: str) -> Target:
    """Where a message to the group ``target`` goes (see :func:`resolve_target`)."""
    group = find_group(groups, target)
    if group.current is None:
        raise UsageError(f"you are no longer a member of {group.name}")
    conversation = group_conversation(group.group_id)
    return Target(TargetKind.GROUP, conversation, group.group_id, group=group)


def resolve_target(target: str, directory: Directory, groups: Iterable[Group]) -> Target:
    """Where a message to ``target`` goes. Raises :class:`UsageError` for an unknown or
    ambiguous name, a channel not joined, a group left, or a contact whose keys are marked
    compromised (nothing is sent to them). The directory is not asked for a group."""
    if is_group_target(target):
        return group_target(groups, target)
    if target.startswith("#"):
        channel = directory.get_channel(target.lower())
        if channel is None:
            raise UsageError(f"not in channel {target}: join it first")
        return Target(TargetKind.CHANNEL, channel.name, channel.channel_id)
    contact = directory.find_contact(target)
    if contact.trust is Trust.COMPROMISED:
        raise UsageError(
            f"the keys of {contact.name} ({contact.node_id.hex()[:8]}) are marked "
            "compromised: nothing is sent to them"
        )
    # One conversation per person: keyed by the contact's account, whichever device is named.
    conversation = dm_conversation(contact.account_id)
    return Target(TargetKind.DIRECT, conversation, contact.node_id, contact=contact)


def conversation_of(target: str, directory: Directory, groups: Iterable[Group]) -> str:
    """The conversation name to read for ``#channel``, ``dm:<id>``, ``+group`` or a contact."""
    if target.startswith("#") or target.startswith("dm:"):
        return target.lower()
    if is_group_target(target):
        return group_conversation(find_group(groups, target).group_id)
    return dm_conversation(directory.find_contact(target).account_id)


def _stranger(event: PeerAnnounced) -> str:
    """An announced peer as a list shows it: ``~name (a1b2c3d4)``."""
    return f"~{safe_line(event.name) or '?'} ({event.identity.node_id.hex()[:8]})"


def find_announced(peers: Iterable[PeerAnnounced], query: str) -> PeerAnnounced:
    """The one announced peer a user means: its announced name (case-insensitive, exact) or,
    failing that, a node id prefix of at least ``MIN_ID_PREFIX`` hex digits.

    Raises :class:`NoSuchContact` when none matches and :class:`UsageError` listing the
    candidates (with id prefixes to type instead) when several do.
    """
    wanted = query.strip()
    held = list(peers)
    hexlike = len(wanted) >= MIN_ID_PREFIX and all(c in string.hexdigits for c in wanted)
    by_id = [p for p in held if hexlike and p.identity.node_id.hex().startswith(wanted.lower())]
    if len(by_id) == 1 and len(wanted) == 2 * len(by_id[0].identity.node_id):
        return by_id[0]  # a whole node id names its key, whatever names were announced
    # A name that looks like an id prefix (anyone may announce "a1b2c3d4") never beats the
    # id it looks like: both are candidates.
    folded = fold_name(wanted)
    found = [p for p in held if folded and fold_name(p.name) == folded]
    found += [p for p in by_id if p not in found]
    what = f"announced {wanted!r}" + (" or have a node id starting with it" if by_id else "")
    if not found:
        raise NoSuchContact(
            f"no contact is named {wanted!r}, and no neighbour announced that name or id "
            "(see /who or meshchat peers)"
        )
    if len(found) > 1:
        listed = ", ".join(_stranger(p) for p in found)
        first = found[0].identity.node_id.hex()[: None if hexlike else 8]
        raise UsageError(
            f"{len(found)} peers {what}: {listed}; none is your contact. Name the one you mean "
            f"by its id (e.g. {first})"
        )
    return found[0]


def announced_target(event: PeerAnnounced) -> Target:
    """A direct message to a peer known by its announce (its keys and signed prekey)."""
    node_id = event.identity.node_id
    return Target(
        TargetKind.DIRECT,
        dm_conversation(node_id),
        node_id,
        peer=event.identity,
        prekey=event.prekey,
    )
