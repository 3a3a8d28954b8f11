"""The DHT transport: gateways meet through a Kademlia DHT when no relay is configured.

Mailbox records (:mod:`._records`), sealed records filed under rotating tags (:mod:`._sealed`),
the checked, bounded storage every node keeps (:mod:`._storage`), the Kademlia node with guards
against hostile peers (:mod:`._protocol`, :mod:`._crawl`, :mod:`._server`) and the transport
(:mod:`._transport`).
"""

from meshchat.transports.dht._protocol import GuardedProtocol, GuardLimits
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
    seal_record,
    slot_of,
    unseal_record,
)
from meshchat.transports.dht._sealed import (
    SEALED_SLOTS,
    SealedPolls,
    SealedTagHost,
    build_sealed_record,
    epoch_tags,
    open_sealed_record,
    sealed_envelope_key,
    sealed_expiry,
    sealed_record_key,
    sealed_signer,
)
from meshchat.transports.dht._server import GuardedServer
from meshchat.transports.dht._storage import RecordStorage, StorageLimits
from meshchat.transports.dht._transport import DhtConfig, DhtLink, DhtTransport

__all__ = [
    "MAX_RECORD",
    "SEALED_SLOTS",
    "SLOTS",
    "DhtConfig",
    "DhtLink",
    "DhtTransport",
    "GuardLimits",
    "GuardedProtocol",
    "GuardedServer",
    "Record",
    "RecordStorage",
    "SealedPolls",
    "SealedTagHost",
    "StorageLimits",
    "build_record",
    "build_sealed_record",
    "check_record",
    "check_record_at",
    "epoch_tags",
    "mailbox_signer",
    "open_record",
    "open_sealed_record",
    "record_key",
    "seal_record",
    "sealed_envelope_key",
    "sealed_expiry",
    "sealed_record_key",
    "sealed_signer",
    "slot_of",
    "unseal_record",
]
