"""Blocked people: their messages are dropped before they reach the store.

A block is kept by the sender's identity key (the key that signs its channel packets and is
authenticated inside its sealed direct messages; see
:attr:`meshchat.events.MessageReceived.sender_key`), so a blocked person who announces another
name stays blocked. The list is one sealed setting of the store (``blocked``: JSON, key hex ->
the name shown when it was blocked). Blocking is local and silent: their packets are still
relayed for others, their direct messages still acked (so they do not learn of the block from
retries), and nothing of theirs is stored or shown. Someone who makes a new identity is not
blocked by this (identities are free).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from meshchat.errors import NoSuchContact, StoreError, UsageError
from meshchat.target import find_announced

if TYPE_CHECKING:
    from meshchat.node import Node

__all__ = ["BLOCKED_SETTING", "Blocklist"]

#: the store setting that holds the list
BLOCKED_SETTING = "blocked"


class Blocklist:
    """The identity keys whose messages one node drops (and the names they were blocked as)."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.keys: dict[bytes, str] = {}

    def blocks(self, sign_key: bytes) -> bool:
        return sign_key in self.keys

    async def load(self) -> None:
        node = self.node
        raw = await node.store.call(node.store.store.get_setting, BLOCKED_SETTING)
        if not raw:
            return
        try:
            data = json.loads(raw)
            self.keys = {bytes.fromhex(str(k)): str(v) for k, v in dict(data).items()}
        except (ValueError, TypeError) as exc:
            raise StoreError(f"the stored block list is unreadable: {exc}") from exc

    async def _save(self) -> None:
        node = self.node
        value = json.dumps({k.hex(): v for k, v in self.keys.items()}, sort_keys=True)
        await node.store.call(node.store.store.set_setting, BLOCKED_SETTING, value)

    async def _who(self, query: str) -> tuple[bytes, str]:
        """The identity key and name ``query`` means: a contact first, else an announced peer."""
        node = self.node
        try:
            contact = await node.find_contact(query)
        except NoSuchContact:
            event = find_announced(node.neighbourhood.announces.values(), query)
            return event.identity.sign_public, f"~{event.name}"
        return contact.sign_public, contact.name

    async def block(self, query: str) -> tuple[bytes, str]:
        """Block the contact or announced peer ``query`` names; its key and name."""
        key, name = await self._who(query)
        if key == self.node.identity.public.sign_public:
            raise UsageError("you cannot block yourself")
        self.keys[key] = name
        await self._save()
        return key, name

    async def unblock(self, query: str) -> tuple[bytes, str]:
        """Unblock whoever ``query`` names: a name as blocked (or a key hex prefix of at least
        4 digits), else a contact or announced peer."""
        wanted = query.strip().removeprefix("~").casefold()
        found = [
            k
            for k, name in self.keys.items()
            if name.removeprefix("~").casefold() == wanted
            or (len(wanted) >= 4 and k.hex().startswith(wanted))
        ]
        if not found:
            key, _ = await self._who(query)
            found = [key] if key in self.keys else []
        if not found:
            raise UsageError(f"{query!r} is not blocked (see /block)")
        if len(found) > 1:
            ids = ", ".join(k.hex()[:8] for k in found)
            raise UsageError(f"{len(found)} blocked keys match {query!r} ({ids}): give the key")
        key = found[0]
        name = self.keys.pop(key)
        await self._save()
        return key, name
