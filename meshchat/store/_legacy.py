"""Sealing a version 1 (plaintext) database's rows into the version 2 tables.

Schema step 2 renames the version 1 tables to ``legacy_*`` (see ``schema.py``). The first open
with a store key then calls :func:`seal_legacy_rows` inside one write transaction: every legacy
row is sealed into its new table (message row ids kept, so read marks stay right) and the legacy
tables are dropped. A crash before the commit leaves the legacy tables whole for the next open.
The caller then vacuums the file and truncates the WAL, so no plaintext page survives in either
(``secure_delete`` also zeroes freed pages).
"""

from __future__ import annotations

import sqlite3

from meshchat.store import _sql as q
from meshchat.store import _values as v
from meshchat.store._rows import Rows
from meshchat.store.records import CarriedPacket, Channel, Contact, Message, MessageState, Trust
from meshchat.store.schema import LEGACY_TABLES, V5_BACKFILL

__all__ = ["has_legacy_rows", "seal_legacy_rows"]

_MESSAGE_INSERT_WITH_ROW_ID = """
    INSERT INTO messages (row_id, conv_tag, msg_tag, sender_tag, outgoing, state, updated_ms,
                          sealed)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
"""
_OUTBOX_INSERT_FULL = """
    INSERT INTO outbox (msg_tag, attempts, next_try_ms, expires_ms, sealed) VALUES (?, ?, ?, ?, ?)
"""
_READ_MARK_INSERT = "INSERT INTO read_marks (conv_tag, last_read_row) VALUES (?, ?)"


def has_legacy_rows(conn: sqlite3.Connection) -> bool:
    """True while version 1 tables set aside by schema step 2 are still in the file."""
    row = conn.execute(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?",
        (LEGACY_TABLES[0],),
    ).fetchone()
    return bool(row and row[0])


def seal_legacy_rows(conn: sqlite3.Connection, rows: Rows) -> int:
    """Move every legacy row into the sealed tables; returns how many. Caller's transaction."""
    moved = 0
    for r in conn.execute(
        "SELECT node_id, sign_public, box_public, name, trust, added_ms FROM legacy_contacts"
    ).fetchall():
        contact = Contact(
            v.cell_bytes(r[0]),
            v.cell_bytes(r[1]),
            v.cell_bytes(r[2]),
            v.cell_str(r[3]),
            v.cell_enum(Trust, r[4]),
            v.cell_int(r[5]),
        )
        conn.execute(q.CONTACT_INSERT, rows.seal_contact(contact))
        moved += 1
    for r in conn.execute(
        "SELECT node_id, sign_public, box_public, name, seen_ms FROM legacy_peers ORDER BY rowid"
    ).fetchall():
        tag, sign_tag, sealed = rows.seal_peer(
            v.cell_bytes(r[0]), v.cell_bytes(r[1]), v.cell_bytes(r[2]), v.cell_str(r[3])
        )
        conn.execute(q.PEER_UPSERT, (tag, sign_tag, v.cell_int(r[4]), sealed))
        moved += 1
    channels = "SELECT name, channel_id, key, joined_ms FROM legacy_channels"
    for r in conn.execute(channels).fetchall():
        channel = Channel(
            v.cell_str(r[0]), v.cell_bytes(r[1]), v.cell_optional_bytes(r[2]), v.cell_int(r[3])
        )
        conn.execute(q.CHANNEL_UPSERT, rows.seal_channel(channel))
        moved += 1
    for r in conn.execute(
        "SELECT row_id, conversation, msg_id, outgoing, sender, sender_name, text, created_ms, "
        "state, updated_ms, local_ms FROM legacy_messages ORDER BY row_id"
    ).fetchall():
        message = Message(
            row_id=v.cell_int(r[0]),
            conversation=v.cell_str(r[1]),
            msg_id=v.cell_bytes(r[2]),
            outgoing=bool(v.cell_int(r[3])),
            sender=v.cell_bytes(r[4]),
            sender_name=v.cell_str(r[5]),
            text=v.cell_str(r[6]),
            created_ms=v.cell_int(r[7]),
            state=v.cell_enum(MessageState, r[8]),
            updated_ms=v.cell_int(r[9]),
        )
        conv_tag, msg_tag, sender_tag, sealed = rows.seal_message(message, v.cell_int(r[10]))
        conn.execute(
            _MESSAGE_INSERT_WITH_ROW_ID,
            (
                message.row_id,
                conv_tag,
                msg_tag,
                sender_tag,
                int(message.outgoing),
                message.state.value,
                message.updated_ms,
                sealed,
            ),
        )
        moved += 1
    for r in conn.execute(
        "SELECT msg_id, conversation, destination, text, created_ms, attempts, next_try_ms, "
        "expires_ms FROM legacy_outbox"
    ).fetchall():
        tag, sealed = rows.seal_outbox(
            v.cell_bytes(r[0]), v.cell_str(r[1]), v.cell_bytes(r[2]), v.cell_str(r[3]),
            v.cell_int(r[4]),
        )  # fmt: skip
        conn.execute(
            _OUTBOX_INSERT_FULL,
            (tag, v.cell_int(r[5]), v.cell_int(r[6]), v.cell_int(r[7]), sealed),
        )
        moved += 1
    for r in conn.execute(
        "SELECT packet_id, frame, destination, expires_ms FROM legacy_carried ORDER BY rowid"
    ).fetchall():
        packet = CarriedPacket(
            v.cell_bytes(r[0]), v.cell_bytes(r[1]), v.cell_bytes(r[2]), v.cell_int(r[3])
        )
        tag, sealed = rows.seal_carried(packet)
        conn.execute(q.CARRIED_INSERT, (tag, packet.expires_ms, sealed))
        moved += 1
    marks = "SELECT conversation, last_read_row FROM legacy_read_marks"
    for r in conn.execute(marks).fetchall():
        conn.execute(_READ_MARK_INSERT, (rows.conv_tag(v.cell_str(r[0])), v.cell_int(r[1])))
        moved += 1
    for r in conn.execute("SELECT key, value FROM legacy_settings").fetchall():
        conn.execute(q.SETTING_SET, rows.seal_setting(v.cell_str(r[0]), v.cell_str(r[1])))
        moved += 1
    for statement in V5_BACKFILL:  # the sealed rows keep their order in the causal history
        conn.execute(statement)
    for table in LEGACY_TABLES:
        conn.execute(f"DROP TABLE {table}")
    return moved
