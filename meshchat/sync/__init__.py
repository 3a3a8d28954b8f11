"""History sync between the devices of one account (sans-IO).

* :mod:`.items` — the synced set as ordered ``(ts, sid)`` items, and range fingerprints;
* :mod:`.records` — what is synced (messages with their state, tombstones, contacts with their
  trust), each record's sync id, and how two versions of one record resolve;
* :mod:`.wire` — the sync messages (Reconcile, Records): a strict, bounded codec;
* :mod:`.session` — range-based set reconciliation with one peer device, bounded.
"""

from meshchat.sync.items import Bound, SortedItems
from meshchat.sync.records import ContactRecord, MessageRecord, Record, TombstoneRecord
from meshchat.sync.session import Step, SyncSession
from meshchat.sync.wire import Mode, Range, Reconcile, Records, SyncMessage, decode_sync

__all__ = [
    "Bound",
    "ContactRecord",
    "MessageRecord",
    "Mode",
    "Range",
    "Reconcile",
    "Record",
    "Records",
    "SortedItems",
    "Step",
    "SyncMessage",
    "SyncSession",
    "TombstoneRecord",
    "decode_sync",
]
