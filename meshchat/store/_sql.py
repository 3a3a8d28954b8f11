"""Every SQL statement the store runs, named, so ``db.py`` reads as logic.

All values travel as ``?`` parameters; no statement is ever built from data. Columns named
``*_tag`` hold keyed lookup tags and ``sealed`` holds the row's encrypted values (see
``_crypt.py``); SQL sees nothing else but counters, states and times.
"""

from __future__ import annotations

# -- meta -------------------------------------------------------------------------------------

META_GET = "SELECT value FROM meta WHERE key = ?"
META_INSERT = "INSERT INTO meta (key, value) VALUES (?, ?)"

# -- contacts ---------------------------------------------------------------------------------

CONTACT_INSERT = "INSERT INTO contacts (tag, sign_tag, sealed) VALUES (?, ?, ?)"
CONTACT_UPDATE = "UPDATE contacts SET sealed = ? WHERE tag = ?"
CONTACT_BY_TAG = "SELECT tag, sign_tag, sealed FROM contacts WHERE tag = ?"
CONTACTS_BY_SIGN_TAG = "SELECT tag, sign_tag, sealed FROM contacts WHERE sign_tag = ?"
CONTACTS_ALL = "SELECT tag, sign_tag, sealed FROM contacts"

# -- peers ------------------------------------------------------------------------------------

PEER_DELETE_OLD_ID = "DELETE FROM peers WHERE sign_tag = ? AND tag != ?"
PEER_UPSERT = """
    INSERT INTO peers (tag, sign_tag, seen_ms, sealed) VALUES (?, ?, ?, ?)
    ON CONFLICT (tag) DO UPDATE SET
        sign_tag = excluded.sign_tag, seen_ms = excluded.seen_ms, sealed = excluded.sealed
"""
PEER_COUNT = "SELECT COUNT(*) FROM peers"
PEER_EVICT_OLDEST = """
    DELETE FROM peers WHERE tag IN
        (SELECT tag FROM peers ORDER BY seen_ms, rowid LIMIT ?)
"""
PEER_BY_SIGN_TAG = "SELECT tag, sign_tag, sealed FROM peers WHERE sign_tag = ?"

# -- channels ---------------------------------------------------------------------------------

CHANNEL_OTHER_NAME = """
    SELECT name_tag, id_tag, sealed FROM channels WHERE id_tag = ? AND name_tag != ?
"""
CHANNEL_UPSERT = """
    INSERT INTO channels (name_tag, id_tag, sealed) VALUES (?, ?, ?)
    ON CONFLICT (name_tag) DO UPDATE SET id_tag = excluded.id_tag, sealed = excluded.sealed
"""
CHANNEL_DELETE = "DELETE FROM channels WHERE name_tag = ?"
CHANNEL_BY_NAME_TAG = "SELECT name_tag, id_tag, sealed FROM channels WHERE name_tag = ?"
CHANNEL_BY_ID_TAG = "SELECT name_tag, id_tag, sealed FROM channels WHERE id_tag = ?"
CHANNELS_ALL = "SELECT name_tag, id_tag, sealed FROM channels"

# -- messages ---------------------------------------------------------------------------------

MESSAGE_INSERT_OUTGOING = """
    INSERT INTO messages (conv_tag, msg_tag, sender_tag, outgoing, state, updated_ms, sealed)
    VALUES (?, ?, ?, 1, ?, ?, ?)
"""
MESSAGE_INSERT_INCOMING = """
    INSERT INTO messages (conv_tag, msg_tag, sender_tag, outgoing, state, updated_ms, sealed)
    VALUES (?, ?, ?, 0, ?, ?, ?)
    ON CONFLICT (sender_tag, msg_tag) DO NOTHING
"""
MESSAGE_ANY_ROW = "SELECT 1 FROM messages WHERE msg_tag = ? LIMIT 1"
MESSAGE_OUTGOING_STATE = "SELECT state FROM messages WHERE msg_tag = ? AND outgoing = 1"
MESSAGE_SET_STATE = """
    UPDATE messages SET state = ?, updated_ms = ? WHERE msg_tag = ? AND outgoing = 1
"""
MESSAGES_LAST = """
    SELECT * FROM (
        SELECT row_id, conv_tag, msg_tag, sender_tag, outgoing, state, updated_ms, sealed
        FROM messages WHERE conv_tag = ? ORDER BY row_id DESC LIMIT ?
    ) ORDER BY row_id
"""
MESSAGE_OUTGOING_BY_TAG = """
    SELECT row_id, conv_tag, msg_tag, sender_tag, outgoing, state, updated_ms, sealed
    FROM messages WHERE msg_tag = ? AND outgoing = 1
"""
# One row per conversation: its latest stored message and the number of incoming messages
# stored after the conversation's read mark.
CONVERSATIONS = """
    SELECT m.row_id, m.conv_tag, m.msg_tag, m.sender_tag, m.outgoing, m.state, m.updated_ms,
        m.sealed,
        (SELECT COUNT(*) FROM messages u
         WHERE u.conv_tag = m.conv_tag AND u.outgoing = 0
           AND u.row_id > COALESCE(
               (SELECT r.last_read_row FROM read_marks r WHERE r.conv_tag = m.conv_tag),
               0))
    FROM messages m
    JOIN (SELECT MAX(row_id) AS last_row FROM messages GROUP BY conv_tag) AS latest
        ON m.row_id = latest.last_row
    ORDER BY m.row_id DESC
"""

# -- channel history budgets (history.py) -----------------------------------------------------
# A row costs its sealed cell plus HISTORY_ROW_OVERHEAD bytes (tags, index entries, slack).

HISTORY_ROW_OVERHEAD = 160
HISTORY_CHANNEL_TOTAL = """
    SELECT COALESCE(SUM(length(sealed) + 160), 0) FROM messages
    WHERE conv_tag = ? AND outgoing = 0
"""
HISTORY_ROW_COST = "SELECT length(sealed) + 160 FROM messages WHERE row_id = ?"
HISTORY_SENDER_TOTAL = """
    SELECT COALESCE(SUM(length(sealed) + 160), 0) FROM messages
    WHERE sender_tag = ? AND conv_tag = ? AND outgoing = 0
"""
# A sender's rows in a channel beyond the newest ones that fit in ``?`` bytes.
HISTORY_SENDER_CUT = """
    DELETE FROM messages WHERE row_id IN (
        SELECT row_id FROM (
            SELECT row_id, SUM(length(sealed) + 160) OVER (ORDER BY row_id DESC) AS newer
            FROM messages WHERE sender_tag = ? AND conv_tag = ? AND outgoing = 0)
        WHERE newer > ?)
    RETURNING length(sealed) + 160
"""
# Among a channel's 64 oldest incoming rows, those received before ``?``.
HISTORY_AGE_CUT = """
    DELETE FROM messages WHERE row_id IN (
        SELECT row_id FROM messages WHERE conv_tag = ? AND outgoing = 0
        ORDER BY row_id LIMIT 64)
    AND updated_ms < ?
    RETURNING length(sealed) + 160
"""
HISTORY_SENDERS = """
    SELECT sender_tag, SUM(length(sealed) + 160) AS used FROM messages
    WHERE conv_tag = ? AND outgoing = 0 GROUP BY sender_tag ORDER BY used DESC
"""

# -- outbox -----------------------------------------------------------------------------------

OUTBOX_INSERT = """
    INSERT INTO outbox (msg_tag, attempts, next_try_ms, expires_ms, sealed)
    VALUES (?, 0, ?, ?, ?)
"""
OUTBOX_PENDING = """
    SELECT msg_tag, attempts, next_try_ms, expires_ms, sealed
    FROM outbox WHERE expires_ms > ?
"""
OUTBOX_RECORD_ATTEMPT = "UPDATE outbox SET attempts = ?, next_try_ms = ? WHERE msg_tag = ?"
OUTBOX_EXPIRED = """
    SELECT msg_tag, attempts, next_try_ms, expires_ms, sealed
    FROM outbox WHERE expires_ms <= ?
"""
OUTBOX_DELETE = "DELETE FROM outbox WHERE msg_tag = ?"

# -- carried packets --------------------------------------------------------------------------

CARRIED_INSERT = """
    INSERT INTO carried (id_tag, expires_ms, sealed) VALUES (?, ?, ?)
    ON CONFLICT (id_tag) DO NOTHING
"""
CARRIED_COUNT = "SELECT COUNT(*) FROM carried"
CARRIED_EVICT_SOONEST = """
    DELETE FROM carried WHERE id_tag IN
        (SELECT id_tag FROM carried ORDER BY expires_ms, rowid LIMIT ?)
"""
CARRIED_HAS = "SELECT 1 FROM carried WHERE id_tag = ?"
CARRIED_DELETE = "DELETE FROM carried WHERE id_tag = ?"
CARRIED_LIVE = """
    SELECT id_tag, expires_ms, sealed FROM carried WHERE expires_ms > ? ORDER BY rowid
"""
CARRIED_EXPIRE = "DELETE FROM carried WHERE expires_ms <= ?"

# -- settings ---------------------------------------------------------------------------------

SETTING_GET = "SELECT sealed FROM settings WHERE key_tag = ?"
SETTING_SET = """
    INSERT INTO settings (key_tag, sealed) VALUES (?, ?)
    ON CONFLICT (key_tag) DO UPDATE SET sealed = excluded.sealed
"""

# -- crypto state ---------------------------------------------------------------------------

STATE_PUT = """
    INSERT INTO crypto_state (tag, kind_tag, sealed) VALUES (?, ?, ?)
    ON CONFLICT (tag) DO UPDATE SET sealed = excluded.sealed
"""
STATE_GET = "SELECT tag, kind_tag, sealed FROM crypto_state WHERE tag = ?"
STATE_DELETE = "DELETE FROM crypto_state WHERE tag = ?"
STATES_OF_KIND = "SELECT tag, kind_tag, sealed FROM crypto_state WHERE kind_tag = ?"

# -- set aside --------------------------------------------------------------------------------

SET_ASIDE_INSERT = "INSERT INTO set_aside (tag, set_ms, sealed) VALUES (?, ?, ?)"
SET_ASIDE_ALL = "SELECT tag, set_ms, sealed FROM set_aside ORDER BY set_ms, rowid"

# -- device lists -----------------------------------------------------------------------------

DEVICE_LIST_PUT = """
    INSERT INTO device_lists (account_tag, sealed) VALUES (?, ?)
    ON CONFLICT (account_tag) DO UPDATE SET sealed = excluded.sealed
"""
DEVICE_LIST_DELETE = "DELETE FROM device_lists WHERE account_tag = ?"
DEVICE_LISTS_ALL = "SELECT account_tag, sealed FROM device_lists"
CONTACT_DELETE = "DELETE FROM contacts WHERE tag = ?"
