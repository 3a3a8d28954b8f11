"""The message store: contacts, channels, messages, the outbox and carried packets in SQLite.

:class:`Store` is synchronous and blocking; the node calls it from one worker thread. It is
opened with the store key from the keystore and keeps every private value sealed under it. See
:mod:`meshchat.store.db` for durability and bounds, :mod:`meshchat.store._crypt` for the
encryption at rest, :mod:`meshchat.store._dag` for each conversation's causal order (the
rules are :mod:`meshchat.causal`), :mod:`meshchat.store.trust` for key changes,
:mod:`meshchat.store.states` for the life of an outgoing message and
:mod:`meshchat.store.schema` for migrations.
"""

from meshchat.store._conn import COMMITS_KEPT
from meshchat.store._crypt import KEY_SIZE as STORE_KEY_SIZE
from meshchat.store._sync import SyncApplied
from meshchat.store._values import MAX_BLOB_BYTES, MAX_TEXT_BYTES
from meshchat.store.db import DEFAULT_MAX_CARRIED, DEFAULT_MAX_PEERS, MIN_ID_PREFIX, Store
from meshchat.store.records import (
    CarriedPacket,
    Channel,
    Contact,
    Conversation,
    Message,
    MessageState,
    OutboxEntry,
    SetAside,
    Trust,
)
from meshchat.store.schema import SCHEMA_VERSION
from meshchat.store.trust import CardOutcome, CardResult, KeyChangeError

__all__ = [
    "COMMITS_KEPT",
    "DEFAULT_MAX_CARRIED",
    "DEFAULT_MAX_PEERS",
    "MAX_BLOB_BYTES",
    "MAX_TEXT_BYTES",
    "MIN_ID_PREFIX",
    "SCHEMA_VERSION",
    "STORE_KEY_SIZE",
    "CardOutcome",
    "CardResult",
    "CarriedPacket",
    "Channel",
    "Contact",
    "Conversation",
    "KeyChangeError",
    "Message",
    "MessageState",
    "OutboxEntry",
    "SetAside",
    "Store",
    "SyncApplied",
    "Trust",
]
