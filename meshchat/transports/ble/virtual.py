"""Virtual BLE radios for tests and benchmarks: bumble controllers on one simulated air.

:func:`make_virtual_backends` builds N :class:`~.bumble_backend.BumbleBackend`\\ s, each a bumble
:class:`~bumble.device.Device` over its own virtual :class:`~bumble.controller.Controller`, all
on one :class:`RangedLink`. The whole stack above the controller is real: HCI, L2CAP, ATT,
GATT, advertising, scanning, MTU exchange, notifications.

:class:`RangedLink` adds what bumble's :class:`~bumble.link.LocalLink` lacks for a mesh test:

* **range**: pairs of radios can be put out of range of each other. Advertisements, connection
  requests and data then do not pass between them, so a line A - B - C is made by putting A and
  C out of range; B, in range of both, must relay. Putting two linked radios out of range drops
  their connection on both sides with reason "connection timeout", as a real link would after
  its supervision timeout (:meth:`RangedLink.sever` does the same without changing range).
* **address privacy**: ``LocalLink`` sends ACL data from a controller's *current* random
  address, so a controller that moves to a new private address (or advertises from an
  advertising set's own address) loses its existing connections. ``RangedLink`` sends from the
  address the connection was made with, as a real controller does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from bumble import hci
from bumble.controller import Controller
from bumble.device import Device
from bumble.host import Host
from bumble.link import LocalLink
from bumble.transport.common import AsyncPipeSink

from meshchat.transports.ble.bumble_backend import BumbleBackend
from meshchat.transports.ble.seam import AdvertiseSettings, ScanSettings
from meshchat.transports.ble.transport import BleOptions

__all__ = ["RangedLink", "VirtualController", "fast_options", "make_virtual_backends"]

#: larger LE ACL packets make the virtual link ~4x faster than bumble's default of 27
_ACL_DATA_LENGTH = 251


class VirtualController(Controller):
    """bumble's virtual controller, with two gaps closed that a mesh test runs into.

    * *Create Connection Cancel* is acknowledged but otherwise ignored by bumble's controller,
      so a dial that timed out hangs in the host forever and dials again later on its own. A
      real controller ends the pending dial with a Connection Complete event carrying "Unknown
      Connection Identifier"; so does this one.
    * bumble's controller files connections by peer address; a second connection from the same
      central (which reached us through another of our private addresses) would silently
      replace the first. This controller ignores such a request, so the central's dial fails.
    """

    def on_hci_le_create_connection_cancel_command(self, command: Any) -> Any:
        pending, self.pending_le_connection = self.pending_le_connection, None
        if pending is not None:
            event = hci.HCI_LE_Connection_Complete_Event(
                status=hci.HCI_ErrorCode.UNKNOWN_CONNECTION_IDENTIFIER_ERROR,
                connection_handle=0,
                role=hci.Role.CENTRAL,
                peer_address_type=pending.peer_address.address_type,
                peer_address=pending.peer_address,
                connection_interval=0,
                peripheral_latency=0,
                supervision_timeout=0,
                central_clock_accuracy=0,
            )
            asyncio.get_running_loop().call_soon(self.send_hci_packet, event)
        return super().on_hci_le_create_connection_cancel_command(command)

    def on_le_connect_ind(self, packet: Any) -> None:
        if packet.initiator_address in self.le_connections:
            return
        super().on_le_connect_ind(packet)


def _controller_of(radio: BumbleBackend | Controller) -> Controller:
    if isinstance(radio, Controller):
        return radio
    if radio.controller is None:
        raise ValueError("backend has no virtual controller")
    controller: Controller = radio.controller
    return controller


class RangedLink(LocalLink):
    """A bumble ``LocalLink`` with radio range between pairs of controllers."""

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._apart: set[frozenset[int]] = set()

    def in_range(self, a: BumbleBackend | Controller, b: BumbleBackend | Controller) -> bool:
        pair = frozenset((id(_controller_of(a)), id(_controller_of(b))))
        return pair not in self._apart

    def set_in_range(
        self, a: BumbleBackend | Controller, b: BumbleBackend | Controller, in_range: bool
    ) -> None:
        """Put two radios in or out of range; going out of range drops their connections."""
        ca, cb = _controller_of(a), _controller_of(b)
        pair = frozenset((id(ca), id(cb)))
        if in_range:
            self._apart.discard(pair)
        else:
            self._apart.add(pair)
            self.sever(ca, cb)

    def sever(self, a: BumbleBackend | Controller, b: BumbleBackend | Controller) -> int:
        """Drop every connection between two radios, on both sides; return how many."""
        ca, cb = _controller_of(a), _controller_of(b)
        dropped = 0
        for connection in list(ca.le_connections.values()):
            other = cb.le_connections.get(connection.self_address)
            if other is None or other.self_address != connection.peer_address:
                continue
            reason = hci.HCI_CONNECTION_TIMEOUT_ERROR
            ca.on_le_disconnected(connection, reason)
            cb.on_le_disconnected(other, reason)
            dropped += 1
        return dropped

    # -- LocalLink overrides ---------------------------------------------------------------

    def send_advertising_pdu(self, sender_controller: Controller, packet: Any) -> None:
        loop = asyncio.get_running_loop()
        for controller in list(self.controllers):
            if controller is not sender_controller and self.in_range(sender_controller, controller):
                loop.call_soon(controller.on_ll_advertising_pdu, packet)

    def send_acl_data(
        self,
        sender_controller: Controller,
        destination_address: hci.Address,
        transport: Any,
        data: bytes,
    ) -> None:
        destination = self.find_le_controller(destination_address)
        if destination is None or not self.in_range(sender_controller, destination):
            return
        connection = sender_controller.le_connections.get(destination_address)
        source = (
            connection.self_address if connection is not None else sender_controller.random_address
        )
        asyncio.get_running_loop().call_soon(destination.on_link_acl_data, source, transport, data)

    def send_ll_control_pdu(
        self, sender_address: hci.Address, receiver_address: hci.Address, packet: Any
    ) -> None:
        # Unlike LocalLink, a control PDU to a radio that is gone or out of range is lost, as
        # on air, instead of raising inside the sending controller.
        sender = self.find_le_controller(sender_address)
        receiver = self.find_le_controller(receiver_address)
        if sender is None or receiver is None or not self.in_range(sender, receiver):
            return
        asyncio.get_running_loop().call_soon(receiver.on_ll_control_pdu, sender_address, packet)


def make_virtual_backends(
    count: int,
    *,
    link: RangedLink | None = None,
    mtu: int | Sequence[int] = 517,
    rate_limit: float | None = None,
    subscribe_timeout: float = 5.0,
) -> list[BumbleBackend]:
    """``count`` unstarted backends on ``link`` (a new :class:`RangedLink` if omitted).

    ``mtu`` is the ATT MTU each backend offers (one value for all, or one per backend); the
    MTU of a connection is the smaller of the two sides'. ``rate_limit`` caps each connection
    at that many bytes per second. The link is reachable as ``backend.controller.link``.
    """
    if link is None:
        link = RangedLink()
    mtus = [mtu] * count if isinstance(mtu, int) else list(mtu)
    if len(mtus) != count:
        raise ValueError("need one MTU per backend")
    backends = []
    for index in range(count):
        address = hci.Address.generate_static_address()
        controller = VirtualController(
            f"ble{index}", link=link, public_address=str(address).replace("/P", "")
        )
        controller.le_acl_data_packet_length = _ACL_DATA_LENGTH
        device = Device(
            name=f"ble{index}",
            address=address,
            host=Host(controller, AsyncPipeSink(controller)),
        )
        backends.append(
            BumbleBackend(
                device,
                mtu=mtus[index],
                rate_limit=rate_limit,
                subscribe_timeout=subscribe_timeout,
                controller=controller,
            )
        )
    return backends


def fast_options() -> BleOptions:
    """Transport timings for virtual radios: the simulated air has no cost per advertisement
    or scan, so nodes find each other in tens of milliseconds instead of seconds."""
    return BleOptions(
        scan=ScanSettings(interval_ms=20, window_ms=20),
        advertise=AdvertiseSettings(interval_ms=20),
        connect_timeout=2.0,
        settle=0.1,
        dial_grace=0.3,
        backoff_initial=0.2,
        backoff_max=1.0,
        candidate_ttl=2.0,
        tick=0.05,
    )
