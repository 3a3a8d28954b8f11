"""The DHT transport: gateways meet through a Kademlia DHT when no relay is configured."""

from meshchat.transports.dht._records import (
    MAX_RECORD,
    SLOTS,
    Record,
    build_record,
    check_record,
    check_record_at,
    mailbox_signer,
    open_record,
    record_key,
    slot_of,
)
from meshchat.transports.dht._storage import RecordStorage
from meshchat.transports.dht._transport import DhtConfig, DhtLink, DhtTransport

__all__ = [
    "MAX_RECORD",
    "SLOTS",
    "DhtConfig",
    "DhtLink",
    "DhtTransport",
    "Record",
    "RecordStorage",
    "build_record",
    "check_record",
    "check_record_at",
    "mailbox_signer",
    "open_record",
    "record_key",
    "slot_of",
]
