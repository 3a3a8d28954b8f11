"""A BLE backend on the bumble stack: virtual controllers in tests, or a USB HCI dongle.

bumble runs the host side of Bluetooth (HCI, L2CAP, ATT, GATT, SMP) in Python. Under it sits
either a virtual controller on a :class:`bumble.link.LocalLink` (see :mod:`.virtual`) or a real
controller reached through an HCI transport such as ``usb:0`` (:meth:`BumbleBackend.open`).
One :class:`bumble.device.Device` is peripheral and central at once.

Peripheral role. The meshchat service is hosted by the device's GATT server. A controller
stops advertising when a central connects, so the backend starts advertising again after each
incoming connection. An incoming connection is handed up once the central subscribes to the
notify characteristic; a central that has not subscribed within ``subscribe_timeout`` is
disconnected (phones connect to anything for a look).

Central role. :meth:`connect` dials, raises the ATT MTU to the backend's ``mtu``, discovers
the service, subscribes, and only then returns the connection.

Privacy. Advertising uses an extended advertising set with legacy PDUs and its own private
address, drawn afresh whenever the rotating identifier changes; the controller's own random
address (used when scanning and dialling) is rotated at the same moment. Scanning is passive.
Controllers without extended advertising use legacy advertising from the controller address.

Pacing. Writes and notifications wait while more than ``max_pending_packets`` ACL packets are
queued in the host and not yet completed by the controller, so a slow radio holds frames in
the link's bounded queue above instead of in unbounded stack buffers. ``rate_limit`` (bytes per
second per connection) slows a virtual link to radio-like speeds for tests.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from typing import Any

from bumble import hci
from bumble.core import UUID as BumbleUUID
from bumble.device import (
    AdvertisingEventProperties,
    AdvertisingParameters,
    AdvertisingType,
    Connection,
    Device,
    Peer,
)
from bumble.gatt import Characteristic, CharacteristicValue, Service

from meshchat.errors import TransportError
from meshchat.transports.ble import advert
from meshchat.transports.ble.seam import (
    DEFAULT_ATT_MTU,
    AdvertiseSettings,
    BleBackend,
    BleConnection,
    GattProfile,
    ScanResult,
    ScanSettings,
    packed_value_size,
)

__all__ = ["BumbleBackend", "BumbleConnection"]

_log = logging.getLogger(__name__)
_MAX_MTU = 517
_DISCONNECT_TIMEOUT = 3.0


class BumbleConnection(BleConnection):
    """A ready GATT connection on a bumble device."""

    def __init__(
        self,
        backend: BumbleBackend,
        connection: Connection,
        *,
        initiator: bool,
        write_handle: int = 0,
    ) -> None:
        super().__init__(str(connection.peer_address), initiator)
        self._backend = backend
        self._connection = connection
        self._write_handle = write_handle
        self._next_free = 0.0

    @property
    def mtu(self) -> int:
        return int(self._connection.att_mtu)

    @property
    def value_size(self) -> int:
        # values that fill whole ACL data packets of the host (251 bytes with the data length
        # the virtual controllers and most dongles use): 495 bytes at MTU 517, two packets,
        # not 512 in three
        queue = self._backend.device.host.le_acl_packet_queue
        if queue is None:
            return self.max_value_size
        return packed_value_size(self.max_value_size, int(queue.max_packet_size))

    async def write(self, value: bytes) -> None:
        if self.closed:
            raise TransportError("BLE connection closed")
        if self._backend.is_congested(self):
            await self._backend.wait_for_room(self)
            if self.closed:
                raise TransportError("BLE connection closed")
        try:
            if self.initiator:
                await self._connection.gatt_client.write_value(
                    self._write_handle, value, with_response=False
                )
            else:
                await self._backend.notify(self._connection, value)
        except Exception as exc:
            raise TransportError(f"BLE write failed: {exc!r}") from exc
        rate = self._backend.rate_limit
        if rate is not None:
            await self._throttle(len(value), rate)

    async def _throttle(self, size: int, rate: float) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        self._next_free = max(self._next_free, now) + size / rate
        if self._next_free - now > 0.002:
            await asyncio.sleep(self._next_free - now)

    async def close(self) -> None:
        if self.closed:
            return
        await _quiet_disconnect(self._connection)
        self.mark_closed()

    @property
    def handle(self) -> int:
        return int(self._connection.handle)


class BumbleBackend(BleBackend):
    """The BLE seam on one bumble :class:`~bumble.device.Device`."""

    name = "bumble"

    def __init__(
        self,
        device: Device,
        *,
        mtu: int = _MAX_MTU,
        rate_limit: float | None = None,
        max_pending_packets: int = 32,
        subscribe_timeout: float = 5.0,
        controller: Any = None,
        hci_transport: Any = None,
    ) -> None:
        if not DEFAULT_ATT_MTU <= mtu <= _MAX_MTU:
            raise ValueError(f"ATT MTU must be within {DEFAULT_ATT_MTU}..{_MAX_MTU}")
        self.device = device
        #: the virtual controller, when there is one (used by :class:`.virtual.RangedLink`)
        self.controller = controller
        self.mtu = mtu
        self.rate_limit = rate_limit
        self._max_pending_packets = max_pending_packets
        self._subscribe_timeout = subscribe_timeout
        self._hci_transport = hci_transport
        self._irk = os.urandom(16)
        self._profile = GattProfile()
        self._notify_char: Characteristic[bytes] | None = None
        self._on_incoming: Callable[[BleConnection], None] | None = None
        self._on_result: Callable[[ScanResult], None] | None = None
        self._scan_settings: ScanSettings | None = None
        self._by_handle: dict[int, BumbleConnection] = {}
        self._unready: dict[int, Connection] = {}
        self._addresses: dict[str, hci.Address] = {}
        self._adv_lock = asyncio.Lock()
        self._dial_lock = asyncio.Lock()
        self._adv_set: Any = None
        self._adv_id: bytes | None = None
        self._adv_settings = AdvertiseSettings()
        self._adv_address: hci.Address | None = None
        self._want_advertising = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._started = False

    @classmethod
    async def open(cls, spec: str, *, mtu: int = _MAX_MTU) -> BumbleBackend:
        """A backend on a real controller, e.g. ``usb:0`` or ``serial:/dev/ttyACM0``.

        The controller must not also be in use by the operating system (on Linux, take the
        adapter down with ``hciconfig hci0 down`` or use a dongle BlueZ does not manage).
        """
        from bumble.transport import open_transport

        try:
            transport = await open_transport(spec)
        except Exception as exc:
            raise TransportError(f"cannot open HCI transport {spec!r}: {exc!r}") from exc
        address = hci.Address.generate_static_address()
        device = Device.with_hci("meshchat", address, transport.source, transport.sink)
        return cls(device, mtu=mtu, hci_transport=transport)

    # -- lifecycle -------------------------------------------------------------------------

    async def start(
        self, profile: GattProfile, on_incoming: Callable[[BleConnection], None]
    ) -> None:
        if self._started:
            raise TransportError("backend already started")
        self._started = True
        self._profile = profile
        self._on_incoming = on_incoming
        write_char: Characteristic[bytes] = Characteristic(
            BumbleUUID(str(profile.write)),
            Characteristic.Properties.WRITE_WITHOUT_RESPONSE,
            Characteristic.WRITEABLE,
            CharacteristicValue[bytes](write=self._on_write),
        )
        notify_char: Characteristic[bytes] = Characteristic(
            BumbleUUID(str(profile.notify)),
            Characteristic.Properties.NOTIFY,
            Characteristic.READABLE,
            b"",
        )
        self._notify_char = notify_char
        self.device.add_service(
            Service(BumbleUUID(str(profile.service)), [write_char, notify_char])
        )
        self.device.gatt_server.max_mtu = self.mtu
        self.device.on(Device.EVENT_CONNECTION, self._on_connection)
        self.device.on("characteristic_subscription", self._on_subscription)
        self.device.on(Device.EVENT_ADVERTISEMENT, self._on_advertisement)
        try:
            await self.device.power_on()
        except Exception as exc:
            raise TransportError(f"cannot power on BLE controller: {exc!r}") from exc

    async def stop(self) -> None:
        self._want_advertising = False
        self._on_result = None
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        try:
            await self.stop_advertising()
            if self.device.is_scanning:
                await self.device.stop_scanning()
        except Exception as exc:
            _log.debug("stopping radio activity: %r", exc)
        for connection in list(self._by_handle.values()):
            await connection.close()
        for raw in list(self._unready.values()):
            await _quiet_disconnect(raw)
        await self.device.power_off()
        if self._hci_transport is not None:
            await self._hci_transport.close()

    # -- advertising -----------------------------------------------------------------------

    async def start_advertising(self, adv_id: bytes, settings: AdvertiseSettings) -> None:
        self._want_advertising = True
        async with self._adv_lock:
            rotate = adv_id != self._adv_id
            self._adv_id = adv_id
            self._adv_settings = settings
            if rotate:
                await self._rotate_addresses()
            await self._advertise_locked()

    async def stop_advertising(self) -> None:
        self._want_advertising = False
        async with self._adv_lock:
            await self._stop_set_locked()

    async def _rotate_addresses(self) -> None:
        self._adv_address = hci.Address.generate_private_address(self._irk)
        # The controller address (scanning, dialling) may only change while neither is active.
        async with self._dial_lock:
            scanning = self.device.is_scanning
            if scanning:
                await self.device.stop_scanning()
            await self._stop_set_locked()
            new_address = hci.Address.generate_private_address(self._irk)
            await self.device.send_sync_command(
                hci.HCI_LE_Set_Random_Address_Command(random_address=new_address)
            )
            self.device.random_address = new_address
            if scanning and self._scan_settings is not None:
                await self._scan(self._scan_settings)

    async def _advertise_locked(self) -> None:
        await self._stop_set_locked()
        if not self._want_advertising or self._adv_id is None:
            return
        data = advert.build(self._profile.service, self._adv_id)
        interval = self._adv_settings.interval_ms
        if self.device.supports_le_extended_advertising:
            self._adv_set = await self.device.create_advertising_set(
                advertising_parameters=AdvertisingParameters(
                    advertising_event_properties=AdvertisingEventProperties.from_advertising_type(
                        AdvertisingType.UNDIRECTED_CONNECTABLE_SCANNABLE
                    ),
                    primary_advertising_interval_min=interval,
                    primary_advertising_interval_max=interval,
                ),
                random_address=self._adv_address,
                advertising_data=data,
                auto_start=True,
            )
        else:
            await self.device.start_advertising(
                advertising_data=data,
                advertising_interval_min=interval,
                advertising_interval_max=interval,
            )

    async def _stop_set_locked(self) -> None:
        adv_set, self._adv_set = self._adv_set, None
        if adv_set is not None:
            try:
                if adv_set.enabled:
                    await adv_set.stop()
                await adv_set.remove()
            except Exception as exc:
                _log.debug("removing advertising set: %r", exc)
        elif self.device.is_advertising:
            await self.device.stop_advertising()

    async def _readvertise(self) -> None:
        async with self._adv_lock:
            await self._advertise_locked()

    # -- scanning --------------------------------------------------------------------------

    async def start_scanning(
        self, on_result: Callable[[ScanResult], None], settings: ScanSettings
    ) -> None:
        self._on_result = on_result
        self._scan_settings = settings
        async with self._dial_lock:
            if self.device.is_scanning:
                await self.device.stop_scanning()
            await self._scan(settings)

    async def _scan(self, settings: ScanSettings) -> None:
        await self.device.start_scanning(
            active=settings.active,
            scan_interval=settings.interval_ms,
            scan_window=settings.window_ms,
            filter_duplicates=False,
        )

    async def stop_scanning(self) -> None:
        self._on_result = None
        self._scan_settings = None
        if self.device.is_scanning:
            await self.device.stop_scanning()

    def _on_advertisement(self, advertisement: Any) -> None:
        if self._on_result is None or not advertisement.is_connectable:
            return
        parsed = advert.parse(bytes(advertisement.data_bytes), self._profile.service)
        if parsed is None:
            return
        address = str(advertisement.address)
        if len(self._addresses) > 1024:
            self._addresses.clear()
        self._addresses[address] = advertisement.address
        rssi = int(advertisement.rssi)
        self._on_result(ScanResult(address, None if rssi == 127 else rssi, parsed.adv_id))

    # -- central role ----------------------------------------------------------------------

    async def connect(self, address: str, timeout: float) -> BleConnection:
        target = self._addresses.get(address) or hci.Address(address)
        # bumble's Device.connect() takes the next new connection of *any* role for its own,
        # so an incoming connection during a dial would be mistaken for the outgoing one.
        # Advertising therefore pauses while we dial: no central can reach us meanwhile.
        async with self._adv_lock, self._dial_lock:
            await self._stop_set_locked()
            try:
                # bumble cancels the dial after ``timeout``; the outer bound guards against a
                # controller that never confirms the cancel.
                async with asyncio.timeout(timeout + 2.0):
                    raw = await self.device.connect(target, timeout=timeout)
            except Exception as exc:
                raise TransportError(f"connect to {address} failed: {exc!r}") from exc
            finally:
                await self._advertise_locked()
            if raw.role != hci.Role.CENTRAL:  # pragma: no cover - guarded by the pause
                raise TransportError("dial returned an incoming connection")
        try:
            async with asyncio.timeout(timeout):
                return await self._setup_central(raw)
        except Exception as exc:
            await _quiet_disconnect(raw)
            raise TransportError(f"GATT setup with {address} failed: {exc!r}") from exc

    async def _setup_central(self, raw: Connection) -> BumbleConnection:
        peer = Peer(raw)
        if self.mtu > DEFAULT_ATT_MTU:
            await peer.request_mtu(self.mtu)
        service_uuid = BumbleUUID(str(self._profile.service))
        await peer.discover_service(service_uuid)
        services = peer.get_services_by_uuid(service_uuid)
        if not services:
            raise TransportError("peer has no meshchat service")
        await peer.discover_characteristics(service=services[0])
        writes = services[0].get_characteristics_by_uuid(BumbleUUID(str(self._profile.write)))
        notifies = services[0].get_characteristics_by_uuid(BumbleUUID(str(self._profile.notify)))
        if not writes or not notifies:
            raise TransportError("meshchat service lacks its characteristics")
        connection = BumbleConnection(self, raw, initiator=True, write_handle=writes[0].handle)
        self._track(raw, connection)
        await peer.subscribe(notifies[0], connection.deliver)
        return connection

    # -- peripheral role -------------------------------------------------------------------

    def _on_connection(self, raw: Connection) -> None:
        if raw.role != hci.Role.PERIPHERAL:
            return
        self._unready[raw.handle] = raw
        raw.on(Connection.EVENT_DISCONNECTION, lambda *_: self._unready.pop(raw.handle, None))
        self._spawn(self._await_subscription(raw))
        if self._want_advertising:
            self._spawn(self._readvertise())

    async def _await_subscription(self, raw: Connection) -> None:
        await asyncio.sleep(self._subscribe_timeout)
        if self._unready.pop(raw.handle, None) is raw:
            _log.info("central %s never subscribed; disconnecting", raw.peer_address)
            await _quiet_disconnect(raw)

    def _on_subscription(
        self, raw: Any, characteristic: Any, notify_enabled: bool, indicate_enabled: bool
    ) -> None:
        del indicate_enabled
        if characteristic is not self._notify_char or not notify_enabled:
            return
        if self._unready.pop(raw.handle, None) is None:
            return
        connection = BumbleConnection(self, raw, initiator=False)
        self._track(raw, connection)
        if self._on_incoming is not None:
            self._on_incoming(connection)

    def _on_write(self, raw: Any, value: bytes) -> None:
        connection = self._by_handle.get(raw.handle)
        if connection is not None:
            connection.deliver(value)

    async def notify(self, raw: Connection, value: bytes) -> None:
        """Send one notification to the central of ``raw``."""
        if self._notify_char is None:
            raise TransportError("BLE notify before the GATT server was set up")
        await self.device.notify_subscriber(raw, self._notify_char, value)

    # -- shared ----------------------------------------------------------------------------

    def _track(self, raw: Connection, connection: BumbleConnection) -> None:
        self._by_handle[raw.handle] = connection

        def gone(*_: object) -> None:
            if self._by_handle.get(raw.handle) is connection:
                del self._by_handle[raw.handle]
            connection.mark_closed()

        raw.on(Connection.EVENT_DISCONNECTION, gone)

    def is_congested(self, connection: BumbleConnection) -> bool:
        """Whether the host holds too many uncompleted ACL packets to queue another write."""
        queue = self.device.host.get_data_packet_queue(connection.handle)
        return queue is not None and queue.pending >= self._max_pending_packets

    async def wait_for_room(self, connection: BumbleConnection) -> None:
        """Wait while the host holds too many uncompleted ACL packets."""
        queue = self.device.host.get_data_packet_queue(connection.handle)
        while queue is not None and queue.pending >= self._max_pending_packets:
            if connection.closed:
                return
            flow: asyncio.Future[None] = asyncio.get_running_loop().create_future()

            def on_flow(flow: asyncio.Future[None] = flow) -> None:
                if not flow.done():
                    flow.set_result(None)

            queue.once("flow", on_flow)
            try:
                async with asyncio.timeout(0.5):
                    await flow
            except TimeoutError:
                queue.remove_listener("flow", on_flow)

    def _spawn(self, coroutine: Any) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(_log_failure)


async def _quiet_disconnect(raw: Connection) -> None:
    """Disconnect, bounded in time: a stack that lost track of the link must not hang us."""
    try:
        async with asyncio.timeout(_DISCONNECT_TIMEOUT):
            await raw.disconnect()
    except Exception as exc:
        _log.debug("disconnect: %r", exc)


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        _log.warning("BLE backend task failed: %r", task.exception())
