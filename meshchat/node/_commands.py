"""The user's commands to a node: send, join, contacts and trust."""

from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING

from meshchat.causal import split_heads
from meshchat.crypto.channel import ChannelKey, derive_channel_key
from meshchat.engine import Output
from meshchat.errors import UsageError
from meshchat.files.announce import is_announcement
from meshchat.identity import ContactCard, PublicIdentity, SignedPrekey
from meshchat.node._effects import Plan
from meshchat.node._types import NodeNotice, contact_keys
from meshchat.store.records import Channel, Contact, Message, Trust
from meshchat.store.trust import CardResult
from meshchat.target import Target, TargetKind

if TYPE_CHECKING:
    from meshchat.node import Node

__all__ = ["Commands"]


class Commands:
    """Send, join, contacts and trust for one node (each runs on the node's worker)."""

    def __init__(self, node: Node) -> None:
        self.node = node

    async def send_text(self, to: str, text: str) -> Message:
        node = self.node
        now = node.clock()
        msg_id = os.urandom(16)
        expires = now + node.options.message_lifetime_ms
        target = await node.resolve(to)
        store = node.store.store
        heads = await node.store.quick(store.head_messages, target.conversation)
        parents, loose = split_heads(heads, is_announcement)  # files never hold text back
        add = functools.partial(
            node.store.store.add_outgoing,
            target.conversation,
            msg_id,
            target.destination,
            node.identity.node_id,
            node.name,
            text,
            now,
            expires,
            parents=parents,
            loose=loose,
        )
        # The engine queues it first and tries it at once; then the message, its session
        # state and its first attempt are committed together (one disk sync) before the
        # packet leaves.
        engine = node.engine
        match target:
            case Target(kind=TargetKind.DIRECT, contact=Contact() as contact):
                recipient = PublicIdentity(contact.sign_public, contact.box_public)
                outputs = engine.send_direct(
                    recipient, msg_id, text, now, expires_ms=expires, parents=parents, loose=loose
                )
            case Target(kind=TargetKind.DIRECT, peer=PublicIdentity() as peer):
                # an announced stranger: its announced prekey first, so the first message
                # is already forward secret
                met = engine.meet(peer, target.prekey, now)
                outputs = met + engine.send_direct(
                    peer, msg_id, text, now, expires_ms=expires, parents=parents, loose=loose
                )
            case Target(kind=TargetKind.GROUP):
                outputs = engine.send_group(
                    target.destination,
                    msg_id,
                    text,
                    now,
                    expires_ms=expires,
                    parents=parents,
                    loose=loose,
                )
            case _:
                outputs = engine.send_channel(
                    target.destination,
                    msg_id,
                    text,
                    now,
                    expires_ms=expires,
                    parents=parents,
                    loose=loose,
                )
        plan = Plan()
        node.effects.plan(plan, outputs)
        try:
            message = await node.effects.carry_out(
                plan, add, lambda m: node.notify(NodeNotice("message", message=m))
            )
        except BaseException:
            node.engine.cancel(msg_id)
            raise
        if message is None:
            raise UsageError("the message was not stored")
        node.catchup.sent(target.conversation, now)
        return message

    async def join(self, name: str, passphrase: str | None) -> Channel:
        node = self.node
        key = derive_channel_key(name, passphrase) if passphrase else ChannelKey.public(name)
        channel = Channel(key.name, key.channel_id, key.key, node.clock())
        await node.store.call(node.store.store.join_channel, channel)
        node.engine.join(key)
        return channel

    async def add_contact(self, contact: Contact) -> None:
        node = self.node
        await node.store.call(node.store.store.add_contact, contact)
        await node.submit(
            lambda: node.effects.run(node.engine.add_contact(*contact_keys(contact), node.clock()))
        )

    async def card(self) -> ContactCard:
        node = self.node
        card = node.engine.card(node.clock())
        await node.effects.run(node.engine.flush())
        return card

    async def add_card(self, card: ContactCard, name: str | None, replace_keys: bool) -> CardResult:
        node = self.node
        if card.identity == node.identity.public:
            raise UsageError("that is your own card")
        result: CardResult = await node.store.call(
            node.store.store.add_card,
            card,
            name=name,
            now_ms=node.clock(),
            replace_keys=replace_keys,
        )
        contact = result.contact
        for retired in result.compromised:
            await node.submit(functools.partial(self.distrust, retired.node_id))
        if contact.trust is not Trust.COMPROMISED:
            keys = (PublicIdentity(contact.sign_public, contact.box_public), card.prekey)
            await node.submit(lambda: node.effects.run(self._added(*keys, card.account)))
        node.notify(NodeNotice("peer"))
        return result

    async def add_peer(self, query: str, name: str | None, replace_keys: bool) -> CardResult:
        """Add the announced peer ``query`` names as a contact, from its signed announce."""
        node = self.node
        event = await node.announced_peer(query)
        identity = event.identity
        known = await node.store.call(node.store.store.get_contact, identity.node_id)
        if known is not None:
            raise UsageError(f"{known.name} ({identity.node_id.hex()[:8]}) is already a contact")
        label = name if name is not None else event.name
        contact = Contact(
            identity.node_id,
            identity.sign_public,
            identity.box_public,
            label,
            Trust.UNVERIFIED,
            node.clock(),
        )
        result: CardResult = await node.store.call(
            node.store.store.add_announced, contact, replace_keys=replace_keys
        )
        for retired in result.compromised:
            await node.submit(functools.partial(self.distrust, retired.node_id))
        keys = (identity, event.prekey)
        await node.submit(lambda: node.effects.run(self._added(*keys, None)))
        node.notify(NodeNotice("peer"))
        return result

    def _added(
        self,
        identity: PublicIdentity,
        prekey: SignedPrekey | None,
        account: tuple[bytes, int] | None,
    ) -> list[Output]:
        """A contact the user just added: known to the engine, sent this account's list, and
        asked for its own when its card names an account."""
        now = self.node.clock()
        engine = self.node.engine
        return [
            *engine.add_contact(identity, prekey, now),
            *engine.contact_added(identity, now, account),
        ]

    async def set_trust(self, node_id: bytes, trust: Trust) -> Contact:
        node = self.node
        contact: Contact = await node.store.call(node.store.store.set_trust, node_id, trust)
        if trust is Trust.COMPROMISED:  # trust is per account: every device of it
            store = node.store.store
            for device in await node.store.call(store.contacts_of_account, contact.account_id):
                await node.submit(functools.partial(self.distrust, device.node_id))
        node.notify(NodeNotice("peer"))
        return contact

    async def distrust(self, node_id: bytes) -> None:
        await self.node.effects.run(self.node.engine.distrust(node_id))
