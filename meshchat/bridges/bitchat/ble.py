"""bitchat's GATT service on a bumble device: the peripheral half of a bitchat node.

The service and its one characteristic are upstream's (``BLEService.swift``,
``BLEService+LinkLayerPeripheralRole.swift``; see firmware-notes/bitchat.md): service
``F47B5E2D-4A9E-4C5A-9B3F-8E1D2C3A4B5C``, characteristic
``A1B2C3D4-E5F6-4A5B-8C9D-0E1F2A3B4C5D`` with notify, write, write without response and read.
A central writes frames to the characteristic and gets ours as notifications. Each frame goes
to :class:`~meshchat.bridges.bitchat.mesh.BitchatMesh`; relays go to every other subscribed
central, announces and texts to the callbacks. Our announce is sent to a central when it
subscribes. The central half (dialling bitchat phones) is not built yet.

bumble is imported by this module, which only a bitchat bridge imports.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from bumble import hci
from bumble.core import UUID as BumbleUUID
from bumble.device import Connection, Device
from bumble.gatt import Characteristic, CharacteristicValue, Service

from meshchat.bridges.bitchat.announce import Announcement
from meshchat.bridges.bitchat.mesh import (
    BitchatMesh,
    Decision,
    Heard,
    PeerSeen,
    Relay,
    Send,
)
from meshchat.bridges.bitchat.peers import PublicText
from meshchat.errors import BridgeError, BridgeReason

__all__ = ["CHARACTERISTIC_UUID", "SERVICE_UUID", "BitchatGatt"]

log = logging.getLogger(__name__)
SERVICE_UUID = "F47B5E2D-4A9E-4C5A-9B3F-8E1D2C3A4B5C"
CHARACTERISTIC_UUID = "A1B2C3D4-E5F6-4A5B-8C9D-0E1F2A3B4C5D"
#: Android asks for 517; a 512-byte frame needs an ATT MTU of 515.
MTU = 517


def advertising_data() -> bytes:
    """Flags, then the complete list of 128-bit service UUIDs (little-endian), no name
    (upstream advertises no local name)."""
    service = BumbleUUID(SERVICE_UUID).to_bytes()  # little-endian, as AD fields are
    return bytes([2, 0x01, 0x06, 1 + len(service), 0x07]) + service


class BitchatGatt:
    """The bitchat service on ``device``, feeding ``mesh``."""

    def __init__(
        self,
        device: Device,
        mesh: BitchatMesh,
        *,
        on_peer: Callable[[Announcement], None] = lambda _: None,
        on_text: Callable[[PublicText], None] = lambda _: None,
        on_direct: Callable[[Decision], None] = lambda _: None,
        clock_ms: Callable[[], int],
    ) -> None:
        self.device = device
        self.on_direct = on_direct
        self.mesh = mesh
        self.on_peer = on_peer
        self.on_text = on_text
        self.clock_ms = clock_ms
        self.refused: Counter[BridgeReason] = Counter()
        self._subscribers: dict[int, Connection] = {}
        #: where relayed frames also go (the node's other role, when it has both)
        self.relay_hook: Callable[[bytes], Awaitable[None]] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._characteristic: Characteristic[bytes] = Characteristic(
            BumbleUUID(CHARACTERISTIC_UUID),
            Characteristic.Properties.NOTIFY
            | Characteristic.Properties.WRITE
            | Characteristic.Properties.WRITE_WITHOUT_RESPONSE
            | Characteristic.Properties.READ,
            Characteristic.READABLE | Characteristic.WRITEABLE,
            CharacteristicValue[bytes](read=lambda _: b"", write=self._on_write),
        )

    async def start(self) -> None:
        self.device.add_service(Service(BumbleUUID(SERVICE_UUID), [self._characteristic]))
        self.device.gatt_server.max_mtu = MTU
        self.device.on("characteristic_subscription", self._on_subscription)
        self.device.on(Device.EVENT_CONNECTION, self._on_connection)
        await self.device.power_on()
        await self.device.start_advertising(advertising_data=advertising_data(), auto_restart=True)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.device.stop_advertising()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_connection(self, raw: Connection) -> None:
        # a controller stops advertising when a central connects: advertise again, so that
        # more centrals (phones, other bridges) can reach us while this one stays
        if raw.role == hci.Role.PERIPHERAL:
            self._spawn(self._readvertise())

    async def _readvertise(self) -> None:
        try:
            if not self.device.is_advertising:
                await self.device.start_advertising(
                    advertising_data=advertising_data(), auto_restart=True
                )
        except Exception as exc:  # a controller that cannot advertise while connected
            log.debug("bitchat advertising not restarted: %r", exc)

    def _on_subscription(
        self, raw: Connection, characteristic: Any, notify: bool, indicate: bool
    ) -> None:
        del indicate
        if characteristic is not self._characteristic:
            return
        if not notify:
            self._subscribers.pop(raw.handle, None)
            return
        self._subscribers[raw.handle] = raw
        raw.on(Connection.EVENT_DISCONNECTION, lambda *_: self._subscribers.pop(raw.handle, None))
        for frame in self.mesh.announce(self.clock_ms()):
            self._spawn(self._notify(raw, frame))

    def _on_write(self, raw: Connection, value: bytes) -> None:
        try:
            decisions = self.mesh.receive(bytes(value), self.clock_ms())
        except BridgeError as exc:
            self.refused[exc.reason] += 1
            return
        for decision in decisions:
            match decision:
                case Relay(frame=frame, delay_ms=(low, high)):
                    self._spawn(self._relay(frame, raw.handle, random.randint(low, high)))
                case PeerSeen(announcement=announcement):
                    self.on_peer(announcement)
                case Heard(message=message):
                    self.on_text(message)
                case Send(frames=frames):
                    self._spawn(self.send_frames(frames))
                case _:
                    self.on_direct(decision)  # Private, Delivered

    async def send_frames(self, frames: tuple[bytes, ...]) -> None:
        """Frames of ours to every link, in both roles."""
        for frame in frames:
            await self.broadcast(frame)
            if self.relay_hook is not None:
                await self.relay_hook(frame)

    async def _relay(self, frame: bytes, origin: int, delay_ms: int) -> None:
        await asyncio.sleep(delay_ms / 1000)
        for handle, raw in list(self._subscribers.items()):
            if handle != origin:
                await self._notify(raw, frame)
        if self.relay_hook is not None:
            await self.relay_hook(frame)

    async def _notify(self, raw: Connection, frame: bytes) -> None:
        try:
            await self.device.notify_subscriber(raw, self._characteristic, frame)
        except Exception as exc:  # a central that went away; bumble raises several kinds
            log.debug("bitchat notify failed: %r", exc)

    @property
    def centrals(self) -> int:
        """How many bitchat centrals are subscribed now."""
        return len(self._subscribers)

    async def send_text(self, text: str) -> bytes:
        """Our public message to every subscribed central; its message id."""
        msg_id, frames = self.mesh.public(text, self.clock_ms())
        for frame in frames:
            await self.broadcast(frame)
        return msg_id

    async def broadcast(self, frame: bytes) -> None:
        """One frame to every subscribed central."""
        for raw in list(self._subscribers.values()):
            await self._notify(raw, frame)
