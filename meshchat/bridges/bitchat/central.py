"""The central half of a bitchat node on a bumble device: find bitchat peripherals (phones,
other bridges) by their service UUID, connect, subscribe to the characteristic, and exchange
frames with :class:`~meshchat.bridges.bitchat.mesh.BitchatMesh`.

A frame notified by a peripheral goes to the mesh; what the mesh relays, and our own frames,
are written (without response) to every connected peripheral but the one a frame came from.
Our announce is written to a peripheral as soon as we are subscribed. With
:class:`~meshchat.bridges.bitchat.ble.BitchatGatt` on the same device the node has both
roles, as upstream's phones do. At most ``max_links`` peripherals; a failed connection is
retried only after the peripheral is seen advertising again.

bumble is imported by this module, which only a bitchat bridge imports.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from bumble.core import UUID as BumbleUUID
from bumble.device import Connection, Device, Peer

from meshchat.bridges.bitchat.announce import Announcement
from meshchat.bridges.bitchat.ble import CHARACTERISTIC_UUID, MTU, SERVICE_UUID
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

__all__ = ["BitchatCentral"]

log = logging.getLogger(__name__)
CONNECT_TIMEOUT_S = 10.0
DIAL_JITTER_S = 0.5


class _Link:
    def __init__(self, connection: Connection, peer: Peer, characteristic: Any) -> None:
        self.connection = connection
        self.peer = peer
        self.characteristic = characteristic


class BitchatCentral:
    """Dial bitchat peripherals from ``device`` and feed ``mesh``."""

    def __init__(
        self,
        device: Device,
        mesh: BitchatMesh,
        *,
        on_text: Callable[[PublicText], None] = lambda _: None,
        on_direct: Callable[[Decision], None] = lambda _: None,
        on_peer: Callable[[Announcement], None] = lambda _: None,
        clock_ms: Callable[[], int],
        max_links: int = 7,
    ) -> None:
        self.device = device
        self.on_peer = on_peer
        self.on_direct = on_direct
        self.mesh = mesh
        self.on_text = on_text
        self.clock_ms = clock_ms
        self.max_links = max_links
        self.refused: Counter[BridgeReason] = Counter()
        self.links: dict[str, _Link] = {}
        self._dialling: set[str] = set()
        #: where relayed frames also go (the node's other role, when it has both)
        self.relay_hook: Callable[[bytes], Awaitable[None]] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._service = BumbleUUID(SERVICE_UUID)

    async def start(self) -> None:
        """Scan for bitchat peripherals (the device must be powered on)."""
        self.device.on(Device.EVENT_ADVERTISEMENT, self._on_advertisement)
        await self.device.start_scanning(filter_duplicates=False)

    async def stop(self) -> None:
        self.device.remove_listener(Device.EVENT_ADVERTISEMENT, self._on_advertisement)
        if self.device.is_scanning:
            await self.device.stop_scanning()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for link in list(self.links.values()):
            try:
                await link.connection.disconnect()
            except Exception as exc:  # already gone; bumble raises several kinds
                log.debug("bitchat disconnect: %r", exc)
        self.links.clear()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_advertisement(self, advertisement: Any) -> None:
        address = str(advertisement.address)
        if address in self.links or address in self._dialling or self._connected_to(address):
            return
        if len(self.links) + len(self._dialling) >= self.max_links:
            return
        uuids = advertisement.data.get_all(
            advertisement.data.COMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS
        )
        if not any(self._service in (group or []) for group in uuids):
            return
        self._dialling.add(address)
        self._spawn(self._dial(advertisement.address, address))

    def _connected_to(self, address: str) -> bool:
        """Whether a link with ``address`` exists already, in either role (two radios hold
        one connection: a node that dialled us is not dialled back)."""
        return any(
            str(c.peer_address).split("/")[0] == address.split("/", maxsplit=1)[0]
            for c in self.device.connections.values()
        )

    async def _dial(self, target: Any, address: str) -> None:
        try:
            # a short random wait, so two dual-role nodes that see each other at once do not
            # both dial (the second finds the first's connection and stays)
            await asyncio.sleep(random.uniform(0.0, DIAL_JITTER_S))
            if self._connected_to(address):
                return
            if self.device.is_scanning:
                await self.device.stop_scanning()  # a controller may not connect while scanning
            connection = await self.device.connect(target, timeout=CONNECT_TIMEOUT_S)
            peer = Peer(connection)
            await peer.request_mtu(MTU)
            found = await peer.discover_service(self._service)
            if not found:
                await connection.disconnect()
                return
            chars = await peer.discover_characteristics([BumbleUUID(CHARACTERISTIC_UUID)], found[0])
            if not chars:
                await connection.disconnect()
                return
            link = _Link(connection, peer, chars[0])
            self.links[address] = link
            connection.on(Connection.EVENT_DISCONNECTION, lambda *_: self.links.pop(address, None))
            await peer.subscribe(chars[0], lambda value: self._on_frame(address, bytes(value)))
            for frame in self.mesh.announce(self.clock_ms()):
                await self._write(link, frame)
        except Exception as exc:  # a peripheral that went away mid-dial; bumble raises many kinds
            log.debug("bitchat dial %s failed: %r", address, exc)
        finally:
            self._dialling.discard(address)
            if not self.device.is_scanning:
                try:
                    await self.device.start_scanning(filter_duplicates=False)
                except Exception as exc:  # stopping: the device is going down
                    log.debug("bitchat scan restart: %r", exc)

    def _on_frame(self, origin: str, frame: bytes) -> None:
        try:
            decisions = self.mesh.receive(frame, self.clock_ms())
        except BridgeError as exc:
            self.refused[exc.reason] += 1
            return
        for decision in decisions:
            match decision:
                case Relay(frame=out, delay_ms=(low, high)):
                    self._spawn(self._relay(out, origin, random.randint(low, high)))
                case Heard(message=message):
                    self.on_text(message)
                case PeerSeen(announcement=announcement):
                    self.on_peer(announcement)
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

    async def _relay(self, frame: bytes, origin: str, delay_ms: int) -> None:
        await asyncio.sleep(delay_ms / 1000)
        for address, link in list(self.links.items()):
            if address != origin:
                await self._write(link, frame)
        if self.relay_hook is not None:
            await self.relay_hook(frame)

    async def _write(self, link: _Link, frame: bytes) -> None:
        try:
            await link.peer.write_value(link.characteristic, frame, with_response=False)
        except Exception as exc:  # a peripheral that went away; bumble raises several kinds
            log.debug("bitchat write failed: %r", exc)

    async def broadcast(self, frame: bytes) -> None:
        """One frame to every connected peripheral."""
        for link in list(self.links.values()):
            await self._write(link, frame)

    async def send_text(self, text: str) -> bytes:
        """Our public message to every connected peripheral; its message id."""
        msg_id, frames = self.mesh.public(text, self.clock_ms())
        for frame in frames:
            await self.broadcast(frame)
        return msg_id
