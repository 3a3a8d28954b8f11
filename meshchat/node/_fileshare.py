"""Who else may hold a file of a group or channel: the sources a download asks besides its sender.

Theory of operation. A member that holds a file of a group or channel serves it to whoever
asks with its root hash (:class:`~meshchat.files.serve.Seeder`): while pulling it (the pieces
held so far) and once it is complete (read from the saved file and checked against the tree
again before each chunk leaves). So a download asks, besides the sender of the announcement
(first), every other member of the group (the roster's node ids, whether linked now or reached
over the mesh) or, for a channel, whose members are not listed, the nodes linked to this one
now. Who holds nothing answers nothing (an unknown root gets no answer), who holds part says
which pieces it lacks; :class:`~meshchat.files.transfer.Download` moves a piece asked of a
silent source to one that answers after ``hedge_ms``, and drops a source after
``max_strikes`` pieces that failed their hash. Every piece is checked against the tree, so a
member or stranger can waste this node's requests, never change the file.

My own devices are sources in every conversation, a direct one included: a file I sent or
received on one device is announced to my other devices by its carbon or by history sync, and
they pull it from the device that holds it (or from its sender). A file announced by one of my
devices is taken as from a verified contact (auto-accepted up to the size limit).

At most ``Limits.max_sources`` sources (16) are asked per download, the sender first.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from meshchat.target import GROUP_PREFIX

if TYPE_CHECKING:
    from meshchat.node import Node

__all__ = ["own_devices", "sources_for"]


def _group_members(node: Node, conversation: str) -> list[bytes]:
    try:
        group_id = bytes.fromhex(conversation[len(GROUP_PREFIX) :])
    except ValueError:
        return []
    group = node.engine.groups.groups.get(group_id)
    if group is None or group.current is None:
        return []
    return [member.node_id for member in group.roster.members]


def _linked(node: Node) -> list[bytes]:
    return [link.peer.node_id for link in node.links.values()]


def own_devices(node: Node) -> list[bytes]:
    """My account's other devices (node ids)."""
    return [device.node_id for device in node.engine.accounts.own_devices()]


def sources_for(node: Node, conversation: str, first: Iterable[bytes]) -> list[bytes]:
    """The nodes a download of a file announced in ``conversation`` asks: ``first`` (the
    sender), then my other devices (which hold what I sent or received there), then the
    group's other members, or for a channel the nodes linked now. Unique, never this node, at
    most ``Limits.max_sources``."""
    more = own_devices(node)
    if conversation.startswith(GROUP_PREFIX):
        more += _group_members(node, conversation)
    elif conversation.startswith("#"):
        more += _linked(node)
    own = node.identity.node_id
    out: list[bytes] = []
    for peer in (*first, *more):
        if len(peer) == 16 and peer != own and peer not in out:
            out.append(peer)
    return out[: node.files.downloads.limits.max_sources]
