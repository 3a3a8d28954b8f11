"""The project's own BLE seam: what a Bluetooth stack must offer the BLE transport.

Below the seam live backends (:mod:`bumble_backend` for tests and USB dongles,
:mod:`bleak_backend` for the operating system's stack); above it, shared by all of them, live
fragmentation, the link handshake and connection management (:mod:`transport`). The seam is
deliberately small, so that a new stack (Android, an ESP32 bridge) needs only these few calls:

* a :class:`BleBackend` hosts the meshchat GATT service, advertises, scans and connects;
* a :class:`BleConnection` is one connected, ready GATT pipe to a peer: it carries ATT values
  (at most :attr:`BleConnection.max_value_size` bytes each) both ways, in order.

The GATT service has one write characteristic (central to peripheral, written without
response) and one notify characteristic (peripheral to central). A connection is "ready", and
only then handed up, when values can flow both ways: for a central after MTU exchange, service
discovery and subscription; for a peripheral once the central has subscribed.
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "ATT_L2CAP_HEADER",
    "DEFAULT_ATT_MTU",
    "MAX_ATT_VALUE",
    "NOTIFY_UUID",
    "SERVICE_UUID",
    "WRITE_UUID",
    "AdvertiseSettings",
    "BleBackend",
    "BleConnection",
    "GattProfile",
    "ScanResult",
    "ScanSettings",
    "packed_value_size",
]

#: the meshchat GATT service, and its two characteristics
SERVICE_UUID = uuid.UUID("44950000-8b8d-4e14-9a90-76f8f882e803")
WRITE_UUID = uuid.UUID("44950001-8b8d-4e14-9a90-76f8f882e803")
NOTIFY_UUID = uuid.UUID("44950002-8b8d-4e14-9a90-76f8f882e803")

#: the ATT MTU every connection starts with
DEFAULT_ATT_MTU = 23
#: an attribute value is at most 512 bytes (Core spec Vol 3 Part F 3.2.9), whatever the MTU
MAX_ATT_VALUE = 512
#: values received before the transport attached; beyond this they are dropped
_EARLY_VALUES = 64
#: bytes in front of an ATT value in its link-layer payload: L2CAP header (4), ATT opcode and
#: handle (3), for a write without response and a notification alike
ATT_L2CAP_HEADER = 7


def packed_value_size(max_value_size: int, packet_size: int) -> int:
    """The largest value size up to ``max_value_size`` whose ATT PDU fills whole data packets
    of ``packet_size`` bytes (the LE data length: 251 with data length extension, 27
    without), or ``max_value_size`` when not even one packet's worth fits.

    A 512-byte value with its 7 header bytes is 519 bytes: three 251-byte packets, the last
    carrying 17 bytes, each packet with its own cost (on air: preamble, header, CRC, the
    150 us gap; in a host stack: an HCI packet and its completion). A 495-byte value fills
    exactly two, so 3.3% fewer bytes per value take a third fewer packets.
    """
    packets = (max_value_size + ATT_L2CAP_HEADER) // packet_size
    if packet_size <= ATT_L2CAP_HEADER or packets < 1:
        return max_value_size
    return min(max_value_size, packets * packet_size - ATT_L2CAP_HEADER)


@dataclass(frozen=True, slots=True)
class GattProfile:
    """The UUIDs of the meshchat service (overridable so tests can run two meshes apart)."""

    service: uuid.UUID = SERVICE_UUID
    write: uuid.UUID = WRITE_UUID
    notify: uuid.UUID = NOTIFY_UUID


@dataclass(frozen=True, slots=True)
class ScanResult:
    """One advertisement of a meshchat node, as a scanner saw it."""

    address: str
    rssi: int | None
    #: the rotating identifier, or None when the advertisement carried none
    adv_id: bytes | None


@dataclass(frozen=True, slots=True)
class ScanSettings:
    """Scan duty cycle: listen ``window_ms`` out of every ``interval_ms`` (power vs. latency)."""

    interval_ms: float = 100.0
    window_ms: float = 50.0
    #: passive scanning sends no scan requests, so it reveals nothing about the scanner
    active: bool = False

    def __post_init__(self) -> None:
        if not 2.5 <= self.window_ms <= self.interval_ms <= 10240:
            raise ValueError("scan window/interval out of range (2.5 <= window <= interval)")


@dataclass(frozen=True, slots=True)
class AdvertiseSettings:
    """Advertising interval: shorter is found sooner and costs more power."""

    interval_ms: float = 100.0

    def __post_init__(self) -> None:
        if not 20 <= self.interval_ms <= 10240:
            raise ValueError("advertising interval outside 20..10240 ms")


class BleConnection(ABC):
    """One ready GATT connection to a peer (either role).

    Values received before :meth:`attach` are held (up to a small bound) and delivered on
    attach, so that nothing sent right after the connection became ready is lost.
    """

    #: the peer's address as the backend names it
    address: str
    #: True when this side is the central (it dialled)
    initiator: bool

    def __init__(self, address: str, initiator: bool) -> None:
        self.address = address
        self.initiator = initiator
        self._on_value: Callable[[bytes], None] | None = None
        self._on_closed: Callable[[], None] | None = None
        self._early: list[bytes] = []
        self._closed = False
        self.dropped_early = 0

    @property
    @abstractmethod
    def mtu(self) -> int:
        """The negotiated ATT MTU (read again before each frame: it may change)."""

    @property
    def max_value_size(self) -> int:
        """Largest ATT value this connection can carry in one write or notification."""
        return min(self.mtu - 3, MAX_ATT_VALUE)

    @property
    def value_size(self) -> int:
        """The size a sender cuts values to: :attr:`max_value_size`, or a little less when
        the backend knows the link's data packet size and a shorter value fills its packets
        (see :func:`packed_value_size`)."""
        return self.max_value_size

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def rssi(self) -> int | None:
        """Signal strength if the backend knows it."""
        return None

    def attach(self, on_value: Callable[[bytes], None], on_closed: Callable[[], None]) -> None:
        """Receive values and the end of the connection from now on (call once)."""
        self._on_value = on_value
        self._on_closed = on_closed
        early, self._early = self._early, []
        for value in early:
            on_value(value)
        if self._closed:
            on_closed()

    @abstractmethod
    async def write(self, value: bytes) -> None:
        """Send one value, waiting while the stack's buffers are full.

        Raises :class:`meshchat.errors.TransportError` once the connection is closed.
        """

    @abstractmethod
    async def close(self) -> None:
        """Disconnect; ``on_closed`` follows (at most once)."""

    # For backends: report what arrived.

    def deliver(self, value: bytes) -> None:
        """Backend side: one value arrived from the peer."""
        if self._closed:
            return
        if self._on_value is not None:
            self._on_value(value)
        elif len(self._early) < _EARLY_VALUES:
            self._early.append(bytes(value))
        else:
            self.dropped_early += 1

    def mark_closed(self) -> None:
        """Backend side: the connection ended (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if self._on_closed is not None:
            self._on_closed()


class BleBackend(ABC):
    """A Bluetooth LE stack that can be both peripheral and central at once."""

    #: short name for logs and ``--ble-backend``
    name: str

    @abstractmethod
    async def start(
        self, profile: GattProfile, on_incoming: Callable[[BleConnection], None]
    ) -> None:
        """Power on and host the GATT service; report each ready incoming connection."""

    @abstractmethod
    async def stop(self) -> None:
        """Stop advertising and scanning, disconnect everything, power off."""

    @abstractmethod
    async def start_advertising(self, adv_id: bytes, settings: AdvertiseSettings) -> None:
        """Advertise the service with this rotating identifier, replacing any advertisement.

        When ``adv_id`` differs from the previous one, the backend also moves to a fresh
        private address where the stack allows it, so the two advertisements share nothing.
        """

    @abstractmethod
    async def stop_advertising(self) -> None:
        """Stop advertising (no new incoming connections)."""

    @abstractmethod
    async def start_scanning(
        self, on_result: Callable[[ScanResult], None], settings: ScanSettings
    ) -> None:
        """Scan for the service and report every advertisement seen (duplicates included)."""

    @abstractmethod
    async def stop_scanning(self) -> None:
        """Stop scanning."""

    @abstractmethod
    async def connect(self, address: str, timeout: float) -> BleConnection:
        """Dial ``address`` and return the ready connection.

        Raises :class:`meshchat.errors.TransportError` on failure or timeout. Backends may
        allow only one dial at a time; the transport dials one peer at a time.
        """
