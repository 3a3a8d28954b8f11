"""Records checked field by field before the store writes them (see ``_values.py``)."""

from __future__ import annotations

from collections.abc import Sequence

from meshchat.causal import MAX_PARENTS
from meshchat.errors import StoreError, StoreReason
from meshchat.store import _values as v
from meshchat.store.records import CarriedPacket, Channel, Contact, Message, MessageState, Trust

__all__ = ["carried", "channel", "contact", "message", "parents"]


def contact(c: Contact) -> Contact:
    return Contact(
        node_id=v.blob(c.node_id, "node_id"),
        sign_public=v.blob(c.sign_public, "sign_public"),
        box_public=v.blob(c.box_public, "box_public"),
        name=v.text(c.name, "name"),
        trust=v.member(Trust, c.trust, "trust"),
        added_ms=v.integer(c.added_ms, "added_ms"),
        card=v.text(c.card, "card"),
        account_id=v.blob(c.account_id, "account_id"),
    )


def channel(c: Channel) -> Channel:
    return Channel(
        v.text(c.name, "channel name"),
        v.blob(c.channel_id, "channel_id"),
        None if c.key is None else v.blob(c.key, "channel key"),
        v.integer(c.joined_ms, "joined_ms"),
    )


def carried(p: CarriedPacket) -> CarriedPacket:
    return CarriedPacket(
        v.blob(p.packet_id, "packet_id"),
        v.blob(p.frame, "frame"),
        v.blob(p.destination, "destination"),
        v.integer(p.expires_ms, "expires_ms"),
    )


def message(
    conversation: str,
    msg_id: bytes,
    sender: bytes,
    sender_name: str,
    text: str,
    created_ms: int,
    *,
    state: MessageState,
    updated_ms: int,
    parents: tuple[bytes, ...] = (),
    loose: tuple[bytes, ...] = (),
) -> Message:
    """A new message (``row_id`` 0 until stored), outgoing unless its state is RECEIVED."""
    return Message(
        row_id=0,
        conversation=v.text(conversation, "conversation"),
        msg_id=v.blob(msg_id, "msg_id"),
        outgoing=state is not MessageState.RECEIVED,
        sender=v.blob(sender, "sender"),
        sender_name=v.text(sender_name, "sender_name"),
        text=v.text(text, "text"),
        created_ms=v.integer(created_ms, "created_ms"),
        state=state,
        updated_ms=v.integer(
            updated_ms, "updated_ms" if state is not MessageState.RECEIVED else "received_ms"
        ),
        parents=parents,
        loose=loose,
    )


def parents(
    msg_id: bytes, blocking: Sequence[bytes], loose: Sequence[bytes]
) -> tuple[tuple[bytes, ...], tuple[bytes, ...]]:
    """The parents a message names, checked: at most ``MAX_PARENTS`` in all, no duplicate,
    never the message itself (the wire refuses the same, so here it is a caller's bug)."""
    if isinstance(blocking, (bytes, str)) or isinstance(loose, (bytes, str)):
        raise StoreError("parents must be a sequence of message ids", reason=StoreReason.BAD_VALUE)
    named = tuple(v.blob(p, "parent") for p in blocking), tuple(v.blob(p, "parent") for p in loose)
    every = named[0] + named[1]
    if len(every) > MAX_PARENTS:
        raise StoreError(
            f"a message names at most {MAX_PARENTS} parents, not {len(every)}",
            reason=StoreReason.BAD_VALUE,
            field="parents",
        )
    if len(set(every)) != len(every):
        raise StoreError(
            "a message names the same parent twice", reason=StoreReason.BAD_VALUE, field="parents"
        )
    if msg_id in every:
        raise StoreError(
            "a message cannot name itself as a parent",
            reason=StoreReason.BAD_VALUE,
            field="parents",
        )
    return named
