"""How each record becomes a row of tags and one sealed cell, and back.

One method pair per table. The ``seal_*`` methods return the row's lookup tags and its sealed
cell; the ``open_*`` methods take a row as SQLite returns it (tags first, the sealed cell
last, clear counters and times in between) and rebuild the record, checking every value's type.
Each sealed cell is bound to its row's tags (see ``_crypt.py``), so it opens only in that row.

What stays in clear, per table (``docs/security.md`` lists what this leaks):

==========  ==========================================================================
table       clear columns besides tags
==========  ==========================================================================
contacts    none
peers       ``seen_ms`` (the eviction order)
channels    none
messages    ``row_id``, ``outgoing``, ``state``, ``updated_ms``, ``order_ms``, ``late``,
            ``held_ms``, ``head`` (the causal order, ``_dag.py``)
links       ``waiting`` (tags only: which message names which, in one conversation)
tombstones  ``deleted_ms``
outbox      ``attempts``, ``next_try_ms``, ``expires_ms``
carried     ``expires_ms``
read_marks  ``last_read_row``
settings    none
crypto_     none
state
set_aside   ``set_ms``
device_     none
lists
==========  ==========================================================================
"""

from __future__ import annotations

from typing import Any

from meshchat.errors import StoreError, StoreReason
from meshchat.store import _values as v
from meshchat.store._crypt import StoreCipher
from meshchat.store.records import (
    CarriedPacket,
    Channel,
    Contact,
    Message,
    MessageState,
    OutboxEntry,
    SetAside,
    Trust,
)

__all__ = ["Rows"]


def _fields(fields: list[Any], count: int, table: str) -> list[Any]:
    if len(fields) != count:
        raise StoreError(
            f"a sealed value in {table} has {len(fields)} fields, not {count}",
            reason=StoreReason.DAMAGED,
            table=table,
        )
    return fields


def _fields_of(fields: list[Any], counts: tuple[int, ...], table: str) -> list[Any]:
    """``fields`` if it has one of the lengths a layout of ``table`` ever had."""
    if len(fields) not in counts:
        return _fields(fields, counts[-1], table)
    return fields


def _ids(fields: list[Any], index: int) -> tuple[bytes, ...]:
    """The list of message ids at ``index`` of a sealed cell (absent in older layouts)."""
    if index >= len(fields):
        return ()
    value = fields[index]
    if not isinstance(value, list):
        raise StoreError("a sealed list of message ids is not a list", reason=StoreReason.DAMAGED)
    return tuple(v.cell_bytes(item) for item in value)


class Rows:
    """The row codecs of one store, under its cipher."""

    __slots__ = ("cipher",)

    def __init__(self, cipher: StoreCipher) -> None:
        self.cipher = cipher

    # -- contacts ---------------------------------------------------------------------------

    def contact_tag(self, node_id: bytes) -> bytes:
        return self.cipher.tag("contact", node_id)

    def contact_sign_tag(self, sign_public: bytes) -> bytes:
        return self.cipher.tag("contact-sign", sign_public)

    def seal_contact(self, c: Contact) -> tuple[bytes, bytes, bytes]:
        tag, sign_tag = self.contact_tag(c.node_id), self.contact_sign_tag(c.sign_public)
        fields = [
            c.node_id,
            c.sign_public,
            c.box_public,
            c.name,
            c.trust.value,
            c.added_ms,
            c.card,
            c.account_id,
        ]
        return tag, sign_tag, self.cipher.seal("contacts", (tag, sign_tag), fields)

    def open_contact(self, row: tuple[Any, ...]) -> Contact:
        tag, sign_tag, sealed = row
        # 7 fields before accounts: such a contact is its own account
        f = _fields_of(self.cipher.open("contacts", (tag, sign_tag), sealed), (7, 8), "contacts")
        return Contact(
            node_id=v.cell_bytes(f[0]),
            sign_public=v.cell_bytes(f[1]),
            box_public=v.cell_bytes(f[2]),
            name=v.cell_str(f[3]),
            trust=v.cell_enum(Trust, f[4]),
            added_ms=v.cell_int(f[5]),
            card=v.cell_str(f[6]),
            account_id=v.cell_bytes(f[7]) if len(f) > 7 else b"",
        )

    # -- peers ------------------------------------------------------------------------------

    def peer_tag(self, node_id: bytes) -> bytes:
        return self.cipher.tag("peer", node_id)

    def peer_sign_tag(self, sign_public: bytes) -> bytes:
        return self.cipher.tag("peer-sign", sign_public)

    def seal_peer(
        self, node_id: bytes, sign_public: bytes, box_public: bytes, name: str
    ) -> tuple[bytes, bytes, bytes]:
        tag, sign_tag = self.peer_tag(node_id), self.peer_sign_tag(sign_public)
        fields = [node_id, sign_public, box_public, name]
        return tag, sign_tag, self.cipher.seal("peers", (tag, sign_tag), fields)

    def open_peer(self, row: tuple[Any, ...]) -> tuple[bytes, bytes, bytes, str]:
        tag, sign_tag, sealed = row
        f = _fields(self.cipher.open("peers", (tag, sign_tag), sealed), 4, "peers")
        return v.cell_bytes(f[0]), v.cell_bytes(f[1]), v.cell_bytes(f[2]), v.cell_str(f[3])

    # -- channels ---------------------------------------------------------------------------

    def channel_name_tag(self, name: str) -> bytes:
        return self.cipher.tag("channel-name", name)

    def channel_id_tag(self, channel_id: bytes) -> bytes:
        return self.cipher.tag("channel-id", channel_id)

    def seal_channel(self, c: Channel) -> tuple[bytes, bytes, bytes]:
        name_tag, id_tag = self.channel_name_tag(c.name), self.channel_id_tag(c.channel_id)
        fields = [c.name, c.channel_id, c.key, c.joined_ms]
        return name_tag, id_tag, self.cipher.seal("channels", (name_tag, id_tag), fields)

    def open_channel(self, row: tuple[Any, ...]) -> Channel:
        name_tag, id_tag, sealed = row
        f = _fields(self.cipher.open("channels", (name_tag, id_tag), sealed), 4, "channels")
        return Channel(
            name=v.cell_str(f[0]),
            channel_id=v.cell_bytes(f[1]),
            key=v.cell_optional_bytes(f[2]),
            joined_ms=v.cell_int(f[3]),
        )

    # -- messages ---------------------------------------------------------------------------

    def conv_tag(self, conversation: str) -> bytes:
        return self.cipher.tag("conversation", conversation)

    def msg_tag(self, msg_id: bytes) -> bytes:
        return self.cipher.tag("message", msg_id)

    def sender_tag(self, sender: bytes) -> bytes:
        return self.cipher.tag("sender", sender)

    @staticmethod
    def _message_binding(
        conv_tag: bytes, msg_tag: bytes, sender_tag: bytes, outgoing: bool
    ) -> tuple[bytes, ...]:
        return conv_tag, msg_tag, sender_tag, b"\x01" if outgoing else b"\x00"

    def seal_message(self, m: Message, local_ms: int) -> tuple[bytes, bytes, bytes, bytes]:
        """``(conv_tag, msg_tag, sender_tag, sealed)`` for ``m``, stored at ``local_ms``."""
        conv_tag, msg_tag = self.conv_tag(m.conversation), self.msg_tag(m.msg_id)
        sender_tag = self.sender_tag(m.sender)
        fields = [
            m.conversation,
            m.msg_id,
            m.sender,
            m.sender_name,
            m.text,
            m.created_ms,
            local_ms,
            list(m.parents),
            list(m.loose),
        ]
        binding = self._message_binding(conv_tag, msg_tag, sender_tag, m.outgoing)
        return conv_tag, msg_tag, sender_tag, self.cipher.seal("messages", binding, fields)

    def open_message(self, row: tuple[Any, ...], *, dag: bool = False) -> tuple[Message, int]:
        """The message in a ``messages`` row, and when it was stored.

        ``row`` starts with ``row_id, conv_tag, msg_tag, sender_tag, outgoing, state,
        updated_ms, sealed``; with ``dag``, ``order_ms, late, missing`` follow (``_dag.py``).
        A cell written before the causal history (7 fields) opens with no parents.
        """
        row_id, conv_tag, msg_tag, sender_tag, outgoing, state, updated_ms, sealed = row[:8]
        is_outgoing = bool(v.cell_int(outgoing))
        binding = self._message_binding(conv_tag, msg_tag, sender_tag, is_outgoing)
        f = _fields_of(self.cipher.open("messages", binding, sealed), (7, 9), "messages")
        order_ms, late, missing = (row[8], row[9], row[10]) if dag else (None, 0, 0)
        message = Message(
            row_id=v.cell_int(row_id),
            conversation=v.cell_str(f[0]),
            msg_id=v.cell_bytes(f[1]),
            outgoing=is_outgoing,
            sender=v.cell_bytes(f[2]),
            sender_name=v.cell_str(f[3]),
            text=v.cell_str(f[4]),
            created_ms=v.cell_int(f[5]),
            state=v.cell_enum(MessageState, state),
            updated_ms=v.cell_int(updated_ms),
            parents=_ids(f, 7),
            loose=_ids(f, 8),
            order_ms=None if order_ms is None else v.cell_int(order_ms),
            late=bool(v.cell_int(late)),
            missing=v.cell_int(missing),
        )
        return message, v.cell_int(f[6])

    # -- outbox -----------------------------------------------------------------------------

    def outbox_tag(self, msg_id: bytes) -> bytes:
        return self.cipher.tag("outbox", msg_id)

    def seal_outbox(
        self,
        msg_id: bytes,
        conversation: str,
        destination: bytes,
        text: str,
        created_ms: int,
        parents: tuple[bytes, ...] = (),
        loose: tuple[bytes, ...] = (),
    ) -> tuple[bytes, bytes]:
        tag = self.outbox_tag(msg_id)
        fields = [msg_id, conversation, destination, text, created_ms, list(parents), list(loose)]
        return tag, self.cipher.seal("outbox", (tag,), fields)

    def open_outbox(self, row: tuple[Any, ...]) -> OutboxEntry:
        tag, attempts, next_try_ms, expires_ms, sealed = row
        f = _fields_of(self.cipher.open("outbox", (tag,), sealed), (5, 7), "outbox")
        return OutboxEntry(
            msg_id=v.cell_bytes(f[0]),
            conversation=v.cell_str(f[1]),
            destination=v.cell_bytes(f[2]),
            text=v.cell_str(f[3]),
            created_ms=v.cell_int(f[4]),
            attempts=v.cell_int(attempts),
            next_try_ms=v.cell_int(next_try_ms),
            expires_ms=v.cell_int(expires_ms),
            parents=_ids(f, 5),
            loose=_ids(f, 6),
        )

    # -- carried packets --------------------------------------------------------------------

    def carried_tag(self, packet_id: bytes) -> bytes:
        return self.cipher.tag("carried", packet_id)

    def seal_carried(self, p: CarriedPacket) -> tuple[bytes, bytes]:
        tag = self.carried_tag(p.packet_id)
        return tag, self.cipher.seal("carried", (tag,), [p.packet_id, p.frame, p.destination])

    def open_carried(self, row: tuple[Any, ...]) -> CarriedPacket:
        tag, expires_ms, sealed = row
        f = _fields(self.cipher.open("carried", (tag,), sealed), 3, "carried")
        return CarriedPacket(
            packet_id=v.cell_bytes(f[0]),
            frame=v.cell_bytes(f[1]),
            destination=v.cell_bytes(f[2]),
            expires_ms=v.cell_int(expires_ms),
        )

    # -- settings ---------------------------------------------------------------------------

    def setting_tag(self, key: str) -> bytes:
        return self.cipher.tag("setting", key)

    def seal_setting(self, key: str, value: str) -> tuple[bytes, bytes]:
        tag = self.setting_tag(key)
        return tag, self.cipher.seal("settings", (tag,), [key, value])

    def open_setting(self, tag: bytes, sealed: object) -> str:
        f = _fields(self.cipher.open("settings", (tag,), sealed), 2, "settings")
        return v.cell_str(f[1])

    # -- crypto state -----------------------------------------------------------------------

    def state_tags(self, kind: str, key: bytes) -> tuple[bytes, bytes]:
        """``(tag, kind_tag)`` of the state ``key`` of ``kind``."""
        tag = self.cipher.tag("state", kind.encode() + b"\x00" + key)
        return tag, self.cipher.tag("state-kind", kind)

    def seal_state(self, kind: str, key: bytes, blob: bytes) -> tuple[bytes, bytes, bytes]:
        tag, kind_tag = self.state_tags(kind, key)
        return tag, kind_tag, self.cipher.seal("crypto_state", (tag, kind_tag), [kind, key, blob])

    def open_state(self, row: tuple[Any, ...]) -> tuple[str, bytes, bytes]:
        tag, kind_tag, sealed = row
        f = _fields(self.cipher.open("crypto_state", (tag, kind_tag), sealed), 3, "crypto_state")
        return v.cell_str(f[0]), v.cell_bytes(f[1]), v.cell_bytes(f[2])

    # -- set aside --------------------------------------------------------------------------

    def seal_set_aside(self, tag: bytes, kind: str, key: bytes, blob: bytes, reason: str) -> bytes:
        return self.cipher.seal("set_aside", (tag,), [kind, key, blob, reason])

    def open_set_aside(self, row: tuple[Any, ...]) -> SetAside:
        tag, set_ms, sealed = row
        f = _fields(self.cipher.open("set_aside", (tag,), sealed), 4, "set_aside")
        return SetAside(
            kind=v.cell_str(f[0]),
            key=v.cell_bytes(f[1]),
            blob=v.cell_bytes(f[2]),
            reason=v.cell_str(f[3]),
            set_ms=v.cell_int(set_ms),
        )

    # -- device lists -----------------------------------------------------------------------

    def device_list_tag(self, account_id: bytes) -> bytes:
        return self.cipher.tag("device-list", account_id)

    def seal_device_list(self, account_id: bytes, blob: bytes) -> tuple[bytes, bytes]:
        tag = self.device_list_tag(account_id)
        return tag, self.cipher.seal("device_lists", (tag,), [account_id, blob])

    def open_device_list(self, row: tuple[Any, ...]) -> tuple[bytes, bytes]:
        tag, sealed = row
        f = _fields(self.cipher.open("device_lists", (tag,), sealed), 2, "device_lists")
        return v.cell_bytes(f[0]), v.cell_bytes(f[1])
