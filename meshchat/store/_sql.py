"""Every SQL statement the store runs, named, so ``db.py`` reads as logic.

All values travel as ``?`` parameters; no statement is ever built from data. The column order
of each ``SELECT`` matches the row converters in ``_values.py``.
"""

from __future__ import annotations

# -- contacts ---------------------------------------------------------------------------------

CONTACT_UPSERT = """
    INSERT INTO contacts (node_id, sign_public, box_public, name, trust, added_ms)
    VALUES (?, ?, ?, ?, ?, ?)
    ON CONFLICT (node_id) DO UPDATE SET name = excluded.name
"""
CONTACT_BY_NODE_ID = """
    SELECT node_id, sign_public, box_public, name, trust, added_ms
    FROM contacts WHERE node_id = ?
"""
CONTACT_BY_SIGN_KEY = """
    SELECT node_id, sign_public, box_public, name, trust, added_ms
    FROM contacts WHERE sign_public = ?
"""
CONTACTS_ALL = """
    SELECT node_id, sign_public, box_public, name, trust, added_ms
    FROM contacts ORDER BY name COLLATE NOCASE, node_id
"""
CONTACT_SET_TRUST = "UPDATE contacts SET trust = ? WHERE node_id = ?"

# -- peers ------------------------------------------------------------------------------------

PEER_DELETE_OLD_ID = "DELETE FROM peers WHERE sign_public = ? AND node_id != ?"
PEER_UPSERT = """
    INSERT INTO peers (node_id, sign_public, box_public, name, seen_ms) VALUES (?, ?, ?, ?, ?)
    ON CONFLICT (node_id) DO UPDATE SET
        sign_public = excluded.sign_public, box_public = excluded.box_public,
        name = excluded.name, seen_ms = excluded.seen_ms
"""
PEER_COUNT = "SELECT COUNT(*) FROM peers"
PEER_EVICT_OLDEST = """
    DELETE FROM peers WHERE node_id IN
        (SELECT node_id FROM peers ORDER BY seen_ms, rowid LIMIT ?)
"""
PEER_BY_SIGN_KEY = "SELECT node_id, name FROM peers WHERE sign_public = ?"

# -- channels ---------------------------------------------------------------------------------

CHANNEL_OTHER_NAME = "SELECT name FROM channels WHERE channel_id = ? AND name != ?"
CHANNEL_UPSERT = """
    INSERT INTO channels (name, channel_id, key, joined_ms) VALUES (?, ?, ?, ?)
    ON CONFLICT (name) DO UPDATE SET
        channel_id = excluded.channel_id, key = excluded.key, joined_ms = excluded.joined_ms
"""
CHANNEL_DELETE = "DELETE FROM channels WHERE name = ?"
CHANNEL_BY_NAME = "SELECT name, channel_id, key, joined_ms FROM channels WHERE name = ?"
CHANNEL_BY_ID = "SELECT name, channel_id, key, joined_ms FROM channels WHERE channel_id = ?"
CHANNELS_ALL = "SELECT name, channel_id, key, joined_ms FROM channels ORDER BY name"

# -- messages ---------------------------------------------------------------------------------

MESSAGE_INSERT_OUTGOING = """
    INSERT INTO messages (conversation, msg_id, outgoing, sender, sender_name, text,
                          created_ms, state, updated_ms, local_ms)
    VALUES (?, ?, 1, ?, ?, ?, ?, ?, ?, ?)
"""
MESSAGE_INSERT_INCOMING = """
    INSERT INTO messages (conversation, msg_id, outgoing, sender, sender_name, text,
                          created_ms, state, updated_ms, local_ms)
    VALUES (?, ?, 0, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (sender, msg_id) DO NOTHING
"""
MESSAGE_OUTGOING_STATE = "SELECT state FROM messages WHERE msg_id = ? AND outgoing = 1"
MESSAGE_SET_STATE = """
    UPDATE messages SET state = ?, updated_ms = ? WHERE msg_id = ? AND outgoing = 1
"""
MESSAGES_LAST = """
    SELECT * FROM (
        SELECT row_id, conversation, msg_id, outgoing, sender, sender_name, text,
               created_ms, state, updated_ms
        FROM messages WHERE conversation = ? ORDER BY row_id DESC LIMIT ?
    ) ORDER BY row_id
"""
MESSAGE_OUTGOING_BY_ID = """
    SELECT row_id, conversation, msg_id, outgoing, sender, sender_name, text,
           created_ms, state, updated_ms
    FROM messages WHERE msg_id = ? AND outgoing = 1
"""
# One row per conversation: its latest stored message and the incoming messages stored after
# the conversation's read mark.
CONVERSATIONS = """
    SELECT m.conversation, m.local_ms,
        (SELECT COUNT(*) FROM messages u
         WHERE u.conversation = m.conversation AND u.outgoing = 0
           AND u.row_id > COALESCE(
               (SELECT r.last_read_row FROM read_marks r WHERE r.conversation = m.conversation),
               0)),
        m.text
    FROM messages m
    JOIN (SELECT MAX(row_id) AS last_row FROM messages GROUP BY conversation) AS latest
        ON m.row_id = latest.last_row
    ORDER BY m.row_id DESC
"""
READ_MARK_SET = """
    INSERT INTO read_marks (conversation, last_read_row)
    SELECT ?, COALESCE(MAX(row_id), 0) FROM messages WHERE conversation = ?
    ON CONFLICT (conversation) DO UPDATE SET last_read_row = excluded.last_read_row
"""

# -- outbox -----------------------------------------------------------------------------------

OUTBOX_INSERT = """
    INSERT INTO outbox (msg_id, conversation, destination, text, created_ms, attempts,
                        next_try_ms, expires_ms)
    VALUES (?, ?, ?, ?, ?, 0, ?, ?)
"""
OUTBOX_PENDING = """
    SELECT msg_id, conversation, destination, text, created_ms, attempts, next_try_ms,
           expires_ms
    FROM outbox WHERE expires_ms > ? ORDER BY next_try_ms, created_ms, msg_id
"""
OUTBOX_RECORD_ATTEMPT = "UPDATE outbox SET attempts = ?, next_try_ms = ? WHERE msg_id = ?"
OUTBOX_EXPIRED = "SELECT msg_id FROM outbox WHERE expires_ms <= ? ORDER BY expires_ms, msg_id"
OUTBOX_DELETE = "DELETE FROM outbox WHERE msg_id = ?"

# -- carried packets --------------------------------------------------------------------------

CARRIED_INSERT = """
    INSERT INTO carried (packet_id, frame, destination, expires_ms) VALUES (?, ?, ?, ?)
    ON CONFLICT (packet_id) DO NOTHING
"""
CARRIED_COUNT = "SELECT COUNT(*) FROM carried"
CARRIED_EVICT_SOONEST = """
    DELETE FROM carried WHERE packet_id IN
        (SELECT packet_id FROM carried ORDER BY expires_ms, rowid LIMIT ?)
"""
CARRIED_HAS = "SELECT 1 FROM carried WHERE packet_id = ?"
CARRIED_DELETE = "DELETE FROM carried WHERE packet_id = ?"
CARRIED_LIVE = """
    SELECT packet_id, frame, destination, expires_ms
    FROM carried WHERE expires_ms > ? ORDER BY rowid
"""
CARRIED_EXPIRE = "DELETE FROM carried WHERE expires_ms <= ?"

# -- settings ---------------------------------------------------------------------------------

SETTING_GET = "SELECT value FROM settings WHERE key = ?"
SETTING_SET = """
    INSERT INTO settings (key, value) VALUES (?, ?)
    ON CONFLICT (key) DO UPDATE SET value = excluded.value
"""
