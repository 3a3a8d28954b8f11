"""Private groups as the node runs them: the user's group commands, and loading them."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from meshchat.errors import UsageError
from meshchat.group.book import Group
from meshchat.identity import PublicIdentity
from meshchat.node._types import GROUP_STATE, NodeNotice
from meshchat.store.records import OutboxEntry, Trust
from meshchat.store.trust import fold_name
from meshchat.target import find_group

if TYPE_CHECKING:
    from meshchat.node import Node

__all__ = ["Groups"]

log = logging.getLogger(__name__)


class Groups:
    """The group commands of one node (each runs on the node's worker)."""

    def __init__(self, node: Node) -> None:
        self.node = node

    async def load(self, now: int) -> None:
        """Give the engine the stored group state."""
        node = self.node
        blobs = await node.store.call(node.store.store.states, GROUP_STATE)
        for bad in node.engine.load_groups(blobs, now):
            log.warning("unreadable group state %s set aside", bad.hex()[:8])
            reason = "the group record could not be decoded at start"
            await node.store.call(node.store.store.set_aside_state, GROUP_STATE, bad, reason, now)
        await node.effects.run(node.engine.flush())

    def resend(self, entry: OutboxEntry, now: int) -> None:
        """Queue a group message that was pending when the node stopped (if still a member)."""
        engine = self.node.engine
        group = engine.groups.groups.get(entry.destination)
        if group is not None and group.current is not None:
            engine.send_group(
                entry.destination,
                entry.msg_id,
                entry.text,
                now,
                expires_ms=entry.expires_ms,
                parents=entry.parents,
                loose=entry.loose,
                sent_ms=entry.created_ms,
            )

    def all(self) -> list[Group]:
        """Every group this node holds (also those it was removed from)."""
        groups = self.node.engine.groups.groups.values()
        return sorted(groups, key=lambda g: g.name.casefold())

    def find(self, target: str) -> Group:
        """The group a user means: ``+name`` (case-insensitive) or ``grp:<id hex prefix>``."""
        return find_group(self.node.engine.groups.groups.values(), target)

    async def _members(self, queries: list[str]) -> list[PublicIdentity]:
        node = self.node
        members = []
        for query in queries:
            contact = await node.store.call(node.store.store.find_contact, query)
            if contact.trust is Trust.COMPROMISED:
                raise UsageError(f"the keys of {contact.name} are marked compromised")
            members.append(PublicIdentity(contact.sign_public, contact.box_public))
        return members

    async def create(self, name: str, members: list[str]) -> Group:
        """A new private group of contacts (names or id prefixes), this node its admin."""
        node = self.node
        identities = await self._members(members)

        async def do() -> Group:
            if any(
                g.name.casefold() == name.strip().casefold() and g.current is not None
                for g in node.engine.groups.groups.values()
            ):
                raise UsageError(f"you are already in a group named {name!r}")
            group, outputs = node.engine.create_group(name, identities, node.clock())
            await node.effects.run(outputs)
            node.notify(NodeNotice("group"))
            return group

        return await node.submit(do)

    async def change(
        self, target: str, add: list[str], remove: list[str], admin: list[str]
    ) -> Group:
        """Add or remove members, or make members admins; the group is re-keyed."""
        node = self.node
        group = self.find(target)
        adding = await self._members(add)
        removing = [m.node_id for m in await self._members_in(group, remove)]
        promoted = {m.node_id for m in await self._members_in(group, admin)}

        async def do() -> Group:
            admins = set(group.roster.admins) | promoted if promoted else None
            outputs = node.engine.change_group(
                group.group_id, node.clock(), add=adding, remove=removing, admins=admins
            )
            await node.effects.run(outputs)
            node.notify(NodeNotice("group"))
            return group

        return await node.submit(do)

    async def _members_in(self, group: Group, queries: list[str]) -> list[PublicIdentity]:
        """Members of ``group`` named by contact name (a contact whose keys were replaced
        too: its old keys may still be in the roster), announced name or node id prefix."""
        node = self.node
        contacts = await node.contacts()
        names = {**node.announced_peers(), **{c.node_id: c.name for c in contacts}}
        found = []
        for query in queries:
            wanted = fold_name(query)
            hex_prefix = query.lower() if len(query) >= 4 else None
            matches = [
                m
                for m in group.roster.members
                if fold_name(names.get(m.node_id, "")) == wanted
                or (hex_prefix is not None and m.node_id.hex().startswith(hex_prefix))
            ]
            if not matches:
                raise UsageError(f"{query!r} is not a member of {group.name}")
            if len(matches) > 1:
                ids = ", ".join(m.short_id for m in matches)
                raise UsageError(f"{query!r} names {len(matches)} members ({ids}): use an id")
            found.append(matches[0])
        return found

    async def leave(self, target: str) -> Group:
        """Leave a group: our keys for it are erased and its admins re-key it without us."""
        node = self.node
        group = self.find(target)

        async def do() -> Group:
            await node.effects.run(node.engine.leave_group(group.group_id, node.clock()))
            node.notify(NodeNotice("group"))
            return group

        return await node.submit(do)
