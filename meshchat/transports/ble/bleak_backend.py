"""A BLE backend on the operating system's stack: bleak (central) and bless (peripheral).

bleak drives BlueZ over D-Bus on Linux, CoreBluetooth on macOS and WinRT on Windows; bless
publishes a GATT server on the same three. Both are dependencies of meshchat, imported only when
:meth:`start` runs, so nothing here loads until Bluetooth is used.

**Status: written against the documented bleak 0.22+/bless 0.3 APIs and never run on radio
hardware.** The project's tests run the same seam on bumble's virtual controllers; see
``firmware-notes/`` for what to check on real machines.

Known limits, all from what bless 0.3 exposes:

* The peripheral role cannot tell centrals apart: a write arrives without the writer's address
  and a notification goes to every subscriber. The peripheral side is therefore one
  :class:`BleConnection` for "the central", opened by the first write; two centrals writing to
  one bless peripheral at once would mix their fragments (the reassembler rejects the mixture;
  the handshake fails and the session closes). Prefer dialling (central role) where both can.
* bless reports no disconnection, so the peripheral-side connection ends only when the
  transport closes it (handshake timeout, or the node stops).
* Advertising data cannot be set byte by byte: the rotating identifier is the server's local
  name, so each rotation restarts the GATT server with the new name.
* The notify MTU is unknown to bless; notifications are cut for the default ATT MTU (20-byte
  values), which is slow but always fits.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Callable
from typing import Any

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
)

__all__ = ["BleakBackend"]

_log = logging.getLogger(__name__)
_INSTALL_HINT = "they come with meshchat: reinstall it (pip install --force-reinstall meshchat)"


def _import(name: str) -> Any:
    """Import ``bleak`` or ``bless`` on first use, with an actionable error."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise TransportError(f"{name} is not installed; {_INSTALL_HINT}") from exc


class _CentralConnection(BleConnection):
    """We dialled: writes go to the write characteristic, notifications come back."""

    def __init__(self, client: Any, profile: GattProfile) -> None:
        super().__init__(str(client.address), initiator=True)
        self._client = client
        self._profile = profile

    @property
    def mtu(self) -> int:
        return int(getattr(self._client, "mtu_size", DEFAULT_ATT_MTU) or DEFAULT_ATT_MTU)

    async def write(self, value: bytes) -> None:
        if self.closed:
            raise TransportError("BLE connection closed")
        try:
            await self._client.write_gatt_char(str(self._profile.write), value, response=False)
        except Exception as exc:
            raise TransportError(f"BLE write failed: {exc!r}") from exc

    async def close(self) -> None:
        if not self.closed:
            try:
                await self._client.disconnect()
            except Exception as exc:
                _log.debug("disconnect: %r", exc)
        self.mark_closed()


class _PeripheralConnection(BleConnection):
    """A central wrote to us: notifications go to every subscriber of the notify value."""

    def __init__(self, backend: BleakBackend) -> None:
        super().__init__("bless-central", initiator=False)
        self._backend = backend

    @property
    def mtu(self) -> int:
        return DEFAULT_ATT_MTU

    async def write(self, value: bytes) -> None:
        if self.closed:
            raise TransportError("BLE connection closed")
        self._backend.notify(value)
        await asyncio.sleep(0)  # bless queues on the OS stack; yield to keep the loop fair

    async def close(self) -> None:
        self._backend.peripheral_closed(self)
        self.mark_closed()


class BleakBackend(BleBackend):
    """The BLE seam on the OS stack through bleak and bless (untested on hardware)."""

    name = "bleak"

    def __init__(self, *, peripheral: bool = True, adapter: str | None = None) -> None:
        self._peripheral_enabled = peripheral
        self._adapter = adapter
        self._profile = GattProfile()
        self._on_incoming: Callable[[BleConnection], None] | None = None
        self._server: Any = None
        self._scanner: Any = None
        self._devices: dict[str, Any] = {}
        self._centrals: set[_CentralConnection] = set()
        self._peripheral: _PeripheralConnection | None = None
        self._dial_lock = asyncio.Lock()
        self._started = False

    async def start(
        self, profile: GattProfile, on_incoming: Callable[[BleConnection], None]
    ) -> None:
        _import("bleak")
        if self._peripheral_enabled:
            _import("bless")
        self._profile = profile
        self._on_incoming = on_incoming
        self._started = True

    async def stop(self) -> None:
        await self.stop_scanning()
        await self.stop_advertising()
        for connection in list(self._centrals):
            await connection.close()
        self._started = False

    # -- peripheral (bless) ----------------------------------------------------------------

    async def start_advertising(self, adv_id: bytes, settings: AdvertiseSettings) -> None:
        if not self._peripheral_enabled:
            return
        del settings  # bless 0.3 offers no advertising interval
        bless = _import("bless")
        await self.stop_advertising()
        server = bless.BlessServer(name=advert.id_to_name(adv_id), loop=asyncio.get_running_loop())
        server.read_request_func = lambda characteristic, **_: characteristic.value
        server.write_request_func = self._on_write
        service = str(self._profile.service)
        props = bless.GATTCharacteristicProperties
        perms = bless.GATTAttributePermissions
        try:
            await server.add_new_service(service)
            await server.add_new_characteristic(
                service,
                str(self._profile.write),
                props.write_without_response,
                None,
                perms.writeable,
            )
            await server.add_new_characteristic(
                service, str(self._profile.notify), props.notify | props.read, None, perms.readable
            )
            await server.start()
        except Exception as exc:
            raise TransportError(f"cannot start the GATT server: {exc!r}") from exc
        self._server = server

    async def stop_advertising(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            try:
                await server.stop()
            except Exception as exc:
                _log.debug("stopping the GATT server: %r", exc)
        if self._peripheral is not None:
            self._peripheral.mark_closed()
            self._peripheral = None

    def _on_write(self, characteristic: Any, value: Any, **_: Any) -> None:
        if str(characteristic.uuid).lower() != str(self._profile.write):
            return
        if self._peripheral is None or self._peripheral.closed:
            self._peripheral = _PeripheralConnection(self)
            if self._on_incoming is not None:
                self._on_incoming(self._peripheral)
        self._peripheral.deliver(bytes(value))

    def notify(self, value: bytes) -> None:
        """Send one notification to the subscribed central(s)."""
        server = self._server
        if server is None:
            raise TransportError("GATT server not running")
        service, notify = str(self._profile.service), str(self._profile.notify)
        server.get_characteristic(notify).value = bytearray(value)
        server.update_value(service, notify)

    def peripheral_closed(self, connection: _PeripheralConnection) -> None:
        if self._peripheral is connection:
            self._peripheral = None

    # -- central (bleak) -------------------------------------------------------------------

    async def start_scanning(
        self, on_result: Callable[[ScanResult], None], settings: ScanSettings
    ) -> None:
        bleak = _import("bleak")
        await self.stop_scanning()

        def detected(device: Any, data: Any) -> None:
            self._devices[str(device.address)] = device
            if len(self._devices) > 1024:
                self._devices.clear()
            adv_id = advert.id_from_name(data.local_name) if data.local_name else None
            on_result(ScanResult(str(device.address), data.rssi, adv_id))

        kwargs: dict[str, Any] = {
            "detection_callback": detected,
            "service_uuids": [str(self._profile.service)],
        }
        if self._adapter is not None:
            kwargs["adapter"] = self._adapter
        del settings  # the OS schedules scan windows itself
        try:
            self._scanner = bleak.BleakScanner(**kwargs)
            await self._scanner.start()
        except Exception as exc:
            raise TransportError(f"cannot scan: {exc!r}") from exc

    async def stop_scanning(self) -> None:
        scanner, self._scanner = self._scanner, None
        if scanner is not None:
            try:
                await scanner.stop()
            except Exception as exc:
                _log.debug("stopping the scanner: %r", exc)

    async def connect(self, address: str, timeout: float) -> BleConnection:
        bleak = _import("bleak")
        connection: _CentralConnection | None = None

        def lost(_: Any) -> None:
            if connection is not None:
                self._centrals.discard(connection)
                connection.mark_closed()

        async with self._dial_lock:
            client = bleak.BleakClient(
                self._devices.get(address, address), disconnected_callback=lost
            )
            try:
                await client.connect(timeout=timeout)
                connection = _CentralConnection(client, self._profile)
                await client.start_notify(
                    str(self._profile.notify), lambda _, data: connection.deliver(bytes(data))
                )
            except Exception as exc:
                try:
                    await client.disconnect()
                except Exception as inner:
                    _log.debug("disconnect after failed dial: %r", inner)
                raise TransportError(f"connect to {address} failed: {exc!r}") from exc
        self._centrals.add(connection)
        return connection
