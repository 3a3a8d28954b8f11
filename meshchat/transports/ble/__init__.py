"""Bluetooth LE transport: a GATT seam, fragmentation, link management, and backends.

Backends are imported by their own modules, never here, so that importing this package loads
no Bluetooth stack: :mod:`.bumble_backend` (and :mod:`.virtual` for tests) needs ``bumble``;
:mod:`.bleak_backend` loads ``bleak`` and ``bless`` only when it starts.
"""

from meshchat.transports.ble.fragment import Fragmenter, Reassembler
from meshchat.transports.ble.rotating_id import RotatingId
from meshchat.transports.ble.seam import (
    NOTIFY_UUID,
    SERVICE_UUID,
    WRITE_UUID,
    AdvertiseSettings,
    BleBackend,
    BleConnection,
    GattProfile,
    ScanResult,
    ScanSettings,
)
from meshchat.transports.ble.session import BleLink, SessionLimits
from meshchat.transports.ble.transport import BleOptions, BleTransport

__all__ = [
    "NOTIFY_UUID",
    "SERVICE_UUID",
    "WRITE_UUID",
    "AdvertiseSettings",
    "BleBackend",
    "BleConnection",
    "BleLink",
    "BleOptions",
    "BleTransport",
    "Fragmenter",
    "GattProfile",
    "Reassembler",
    "RotatingId",
    "ScanResult",
    "ScanSettings",
    "SessionLimits",
]
