"""A bleak backend on a bumble device (scanner and client), so code written for bleak —
bitchat-cli's BLE layer here — runs unchanged against virtual radios.

bleak picks a backend per call with ``backend=``; :func:`backends` returns a scanner and a
client class bound to one bumble :class:`Device`. This is a test helper: only what a GATT
client needs (scan with service UUIDs and local name, connect, discover, write, notify)
is implemented.
Kept out of conftest.py under a unique module name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bleak.assigned_numbers import CHARACTERISTIC_PROPERTIES
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, BaseBleakScanner
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import BleakError
from bumble import hci
from bumble.core import AdvertisingData
from bumble.device import Connection, Device, Peer
from bumble.host import Host
from bumble.transport.common import AsyncPipeSink

from meshchat.transports.ble.virtual import RangedLink, VirtualController


def virtual_device(link: RangedLink, name: str) -> Device:
    address = hci.Address.generate_static_address()
    controller = VirtualController(name, link=link, public_address=str(address).replace("/P", ""))
    controller.le_acl_data_packet_length = 251
    return Device(name=name, address=address, host=Host(controller, AsyncPipeSink(controller)))


def _uuid(value: Any) -> str:
    return str(value).lower()


def backends(device: Device) -> tuple[type[BaseBleakScanner], type[BaseBleakClient]]:
    """A bleak scanner backend and client backend on ``device``."""

    class Scanner(BaseBleakScanner):
        def __init__(
            self,
            detection_callback: Any,
            service_uuids: list[str] | None,
            scanning_mode: Any = "active",
            **kwargs: Any,
        ) -> None:
            super().__init__(detection_callback, service_uuids)

        async def start(self) -> None:
            self.seen_devices = {}
            device.on(Device.EVENT_ADVERTISEMENT, self._on_advertisement)
            await device.start_scanning(filter_duplicates=False)

        async def stop(self) -> None:
            device.remove_listener(Device.EVENT_ADVERTISEMENT, self._on_advertisement)
            if device.is_scanning:
                await device.stop_scanning()

        def _on_advertisement(self, advertisement: Any) -> None:
            data = advertisement.data
            uuids = [
                _uuid(u)
                for kind in (
                    AdvertisingData.COMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS,
                    AdvertisingData.INCOMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS,
                )
                for u in (data.get(kind) or [])
            ]
            name = data.get(AdvertisingData.COMPLETE_LOCAL_NAME) or data.get(
                AdvertisingData.SHORTENED_LOCAL_NAME
            )
            adv = AdvertisementData(
                local_name=name if isinstance(name, str) else None,
                manufacturer_data={},
                service_data={},
                service_uuids=uuids,
                tx_power=None,
                rssi=int(advertisement.rssi),
                platform_data=(advertisement,),
            )
            address = str(advertisement.address)
            found = self.create_or_update_device(
                address, address, adv.local_name, advertisement.address, adv
            )
            if self.is_allowed_uuid(uuids):
                self.call_detection_callbacks(found, adv)

    class Client(BaseBleakClient):
        def __init__(self, address_or_ble_device: BLEDevice | str, **kwargs: Any) -> None:
            super().__init__(
                address_or_ble_device,
                disconnected_callback=kwargs.get("disconnected_callback"),
                timeout=kwargs.get("timeout", 10.0),
            )
            self._target = (
                address_or_ble_device.details
                if isinstance(address_or_ble_device, BLEDevice)
                else hci.Address(address_or_ble_device)
            )
            self._connection: Connection | None = None
            self._peer: Peer | None = None

        @property
        def mtu_size(self) -> int:
            return int(self._connection.att_mtu) if self._connection is not None else 23

        @property
        def is_connected(self) -> bool:
            return self._connection is not None

        async def connect(self, pair: bool, **kwargs: Any) -> None:
            connection = await device.connect(self._target, timeout=self._timeout)
            self._connection = connection
            connection.on(Connection.EVENT_DISCONNECTION, self._gone)
            peer = Peer(connection)
            self._peer = peer
            await peer.request_mtu(517)
            await peer.discover_services()
            collection = BleakGATTServiceCollection()
            for service in peer.services:
                await peer.discover_characteristics(service=service)
                wrapped = BleakGATTService(service, service.handle, _uuid(service.uuid))
                collection.add_service(wrapped)
                for char in service.characteristics:
                    props = [
                        name
                        for bit, name in CHARACTERISTIC_PROPERTIES.items()
                        if char.properties & bit
                    ]
                    collection.add_characteristic(
                        BleakGATTCharacteristic(
                            char,
                            char.handle,
                            _uuid(char.uuid),
                            props,
                            lambda: self.mtu_size - 3,
                            wrapped,
                        )
                    )
            self.services = collection

        def _gone(self, *_: Any) -> None:
            self._connection = None
            if self._disconnected_callback is not None:
                self._disconnected_callback()

        async def disconnect(self) -> None:
            if self._connection is not None:
                await self._connection.disconnect()

        async def pair(self, *args: Any, **kwargs: Any) -> None:
            raise BleakError("pairing is not supported here")

        async def unpair(self) -> None:
            raise BleakError("pairing is not supported here")

        async def read_gatt_char(
            self, characteristic: BleakGATTCharacteristic, **kwargs: Any
        ) -> bytearray:
            assert self._peer is not None
            return bytearray(await self._peer.read_value(characteristic.obj))

        async def read_gatt_descriptor(
            self, descriptor: BleakGATTDescriptor, **kwargs: Any
        ) -> bytearray:
            raise BleakError("descriptors are not supported here")

        async def write_gatt_char(
            self, characteristic: BleakGATTCharacteristic, data: Any, response: bool
        ) -> None:
            if self._peer is None:
                raise BleakError("not connected")
            await self._peer.write_value(characteristic.obj, bytes(data), with_response=response)

        async def write_gatt_descriptor(self, descriptor: BleakGATTDescriptor, data: Any) -> None:
            raise BleakError("descriptors are not supported here")

        async def start_notify(
            self,
            characteristic: BleakGATTCharacteristic,
            callback: Callable[[bytearray], None],
            **kwargs: Any,
        ) -> None:
            if self._peer is None:
                raise BleakError("not connected")
            await self._peer.subscribe(characteristic.obj, lambda value: callback(bytearray(value)))

        async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
            if self._peer is not None:
                await self._peer.unsubscribe(characteristic.obj)

    return Scanner, Client
