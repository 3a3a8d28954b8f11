"""Loading a node's stored state into its engine when it starts."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from meshchat.crypto.channel import PUBLIC_CHANNEL, ChannelKey
from meshchat.engine._fanout import devices_for
from meshchat.identity import PublicIdentity
from meshchat.node import _replay as replay
from meshchat.node._types import (
    GROUP_PREFIX,
    PREKEY_STATE,
    SESSION_STATE,
    channel_key,
    contact_keys,
)
from meshchat.store.records import Channel, Delivery, MessageState, Trust

if TYPE_CHECKING:
    from meshchat.node import Node

__all__ = ["load"]

log = logging.getLogger(__name__)


async def load(node: Node) -> None:
    """Channels, carried packets, sessions, groups and the outbox, in that order."""
    store = node.store.store
    now = node.clock()
    channels = await node.store.call(store.list_channels)
    if not any(c.name == PUBLIC_CHANNEL for c in channels):
        public = ChannelKey.public()
        await node.store.call(
            store.join_channel, Channel(public.name, public.channel_id, None, now)
        )
        channels = await node.store.call(store.list_channels)
    for channel in channels:
        node.engine.join(channel_key(channel))
    await replay.load(node, now)  # before anything is marked seen
    for carried in await node.store.call(store.carried, now):
        node.engine.router.restore_carried(carried.frame, carried.expires_ms, now)
    await _load_devices(node)
    await _load_sessions(node, now)
    await node.group_commands.load(now)
    await _load_outbox(node, now)
    node.catchup.check_all()


async def _load_devices(node: Node) -> None:
    """The stored device lists; this account's other devices are known as own devices."""
    blobs = await node.store.call(node.store.store.device_lists)
    for bad in node.engine.accounts.load(blobs):
        log.warning("unreadable device list %s left out", bad.hex()[:8])
    for device in node.engine.accounts.own_devices():
        node.engine.add_own_device(device)


async def _load_sessions(node: Node, now: int) -> None:
    """Give the engine its stored session state, then every usable contact."""
    store = node.store.store
    blobs = await node.store.call(store.states, SESSION_STATE)
    prekeys = await node.store.call(store.get_state, PREKEY_STATE, b"")
    if prekeys is not None:
        blobs[node.identity.node_id] = prekeys
    for bad in node.engine.load_sessions(blobs):
        # Set aside with the reason, never overwritten by the state written from now on.
        kind, key = (PREKEY_STATE, b"") if bad == node.identity.node_id else (SESSION_STATE, bad)
        log.warning("unreadable %s state %s set aside", kind, bad.hex()[:8])
        reason = f"the {kind} record could not be decoded at start"
        await node.store.call(store.set_aside_state, kind, key, reason, now)
    for contact in await node.store.call(store.list_contacts):
        if contact.trust is Trust.COMPROMISED:
            node.engine.distrust(contact.node_id)
            continue
        await node.effects.run(node.engine.add_contact(*contact_keys(contact), now))


async def _end_outbox_row(node: Node, msg_id: bytes, ended: list[Delivery]) -> None:
    """No device is owed a copy any more (each acked or expired, or was revoked since): the
    outbox row ends, the message keeps its state (failed if no device ever acked)."""
    store = node.store.store
    now = node.clock()
    if ended:
        last = ended[0]
        await node.store.call(store.set_delivery, msg_id, last.device, last.state, now, last=True)
    if not any(d.state is MessageState.DELIVERED for d in ended):
        await node.store.call(store.set_state, msg_id, MessageState.FAILED, now)


async def _load_outbox(node: Node, now: int) -> None:
    store = node.store.store
    engine = node.engine
    entries = await node.store.call(store.pending_outbox, now)
    direct = [e.msg_id for e in entries if e.conversation.startswith("dm:")]
    deliveries = await node.store.call(store.deliveries, direct)
    for entry in entries:
        if entry.conversation.startswith(GROUP_PREFIX):
            node.group_commands.resend(entry, now)
            continue
        if entry.conversation.startswith("#"):
            if entry.destination in {c.channel_id for c in engine.channels}:
                engine.send_channel(
                    entry.destination,
                    entry.msg_id,
                    entry.text,
                    now,
                    expires_ms=entry.expires_ms,
                    parents=entry.parents,
                    loose=entry.loose,
                    sent_ms=entry.created_ms,
                )
            continue
        contact = await node.store.call(store.get_contact, entry.destination)
        if contact is None:
            log.warning("outbox entry for unknown node %s kept", entry.destination.hex())
            continue
        if contact.trust is Trust.COMPROMISED:
            # Queued before the key change: never send it to keys now known to be unsafe.
            await node.store.call(store.set_state, entry.msg_id, MessageState.FAILED, node.clock())
            continue
        recipient = PublicIdentity(contact.sign_public, contact.box_public)
        # Devices whose copy ended (acked, expired) get none again; a device without a
        # row was not tried yet (an outbox row from before fan-out has no rows at all).
        held = deliveries.get(entry.msg_id, ())
        done = {d.device for d in held if not d.pending}
        every = devices_for(engine.directory, recipient, node.identity.node_id)
        owed = [d for d in every if d.node_id not in done]
        if not owed:
            await _end_outbox_row(node, entry.msg_id, [d for d in held if not d.pending])
            continue
        engine.send_direct(
            recipient,
            entry.msg_id,
            entry.text,
            now,
            expires_ms=entry.expires_ms,
            attempts=entry.attempts,
            parents=entry.parents,
            loose=entry.loose,
            sent_ms=entry.created_ms,
            devices=owed,
        )
    # Nothing is linked yet: the engine parked every item until a neighbour appears.
