"""Bluetooth LE when it can work: a transport that starts BLE once an adapter is usable.

:class:`BleWatch` is what a node gets for Bluetooth by default. On :meth:`~BleWatch.start` it
asks its *opener* for a backend (:func:`os_opener` probes the operating system's stack,
:mod:`.probe`; :func:`bumble_opener` opens a bumble controller), within a short timeout. With a
backend it starts a :class:`~.transport.BleTransport` on it and from then on reports that
transport's status. Without one it keeps the :class:`~.probe.BleProbe` that says why, reports
the transport down with that reason (its state is the probe's availability, e.g. ``no
adapter``), and asks again every ``recheck_s`` seconds, so an adapter plugged in or switched on
later is used without a restart. A backend that fails to start is treated the same way: the
failure is the reason, and a fresh transport is tried later. While BLE runs, an optional
*check* (:func:`os_check`: the same probe) is asked every ``recheck_s`` seconds too: an
adapter switched off or unplugged stops the transport (its links are reported down) and the
watch goes back to waiting for one. Nothing here ever fails the node:
the LAN and the internet transports go on whatever Bluetooth does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from meshchat.errors import TransportError
from meshchat.transports.base import LinkHandler, Transport, TransportStatus
from meshchat.transports.ble.probe import Availability, BleProbe, probe
from meshchat.transports.ble.seam import BleBackend
from meshchat.transports.ble.transport import BleTransport

__all__ = [
    "BleUnavailable",
    "BleWatch",
    "Check",
    "Opener",
    "bumble_opener",
    "os_check",
    "os_opener",
]

log = logging.getLogger(__name__)


class BleUnavailable(TransportError):
    """No usable Bluetooth here; :attr:`probe` says why."""

    def __init__(self, found: BleProbe) -> None:
        super().__init__(found.reason or found.availability.value)
        self.probe = found


#: gives a backend ready to start, or raises :class:`BleUnavailable`
Opener = Callable[[], Awaitable[BleBackend]]
#: whether the adapter in use is still usable
Check = Callable[[], Awaitable[BleProbe]]


def os_opener(timeout: float = 2.0) -> Opener:
    """The operating system's stack (bleak and bless), when :func:`.probe.probe` finds it."""

    async def open_os() -> BleBackend:
        found = await probe(timeout)
        if not found.usable:
            raise BleUnavailable(found)
        from meshchat.transports.ble.bleak_backend import BleakBackend

        return BleakBackend(adapter=found.adapter)

    return open_os


def os_check(timeout: float = 2.0) -> Check:
    """The operating system's adapter, looked at again while BLE runs."""

    async def check() -> BleProbe:
        return await probe(timeout)

    return check


def bumble_opener(spec: str, timeout: float = 2.0) -> Opener:
    """A controller driven by bumble (``usb:0``, ``serial:...``, ``tcp-client:...``)."""

    async def open_bumble() -> BleBackend:
        try:
            from meshchat.transports.ble.bumble_backend import BumbleBackend
        except ImportError as exc:
            raise BleUnavailable(
                BleProbe(
                    Availability.NOT_INSTALLED,
                    "the bumble backend needs the ble extra: pip install 'meshchat[ble]'",
                )
            ) from exc
        try:
            async with asyncio.timeout(timeout):
                return await BumbleBackend.open(spec)
        except TimeoutError as exc:
            raise BleUnavailable(
                BleProbe(Availability.FAILED, f"no answer from the controller {spec}")
            ) from exc
        except TransportError as exc:
            raise BleUnavailable(
                BleProbe(Availability.NO_ADAPTER, f"no Bluetooth controller at {spec}: {exc}")
            ) from exc

    return open_bumble


class BleWatch(Transport):
    """Starts a :class:`BleTransport` when its opener gives a backend; says why not else."""

    name = "ble"

    def __init__(
        self,
        opener: Opener,
        make: Callable[[BleBackend], BleTransport],
        *,
        recheck_s: float = 30.0,
        check: Check | None = None,
    ) -> None:
        self._opener = opener
        self._check = check
        self._make = make
        self.recheck_s = recheck_s
        self.transport: BleTransport | None = None
        self.probe = BleProbe(Availability.FAILED, "not started")
        self.attempts = 0
        self._handler: LinkHandler | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self, handler: LinkHandler) -> None:
        self._handler = handler
        await self._attempt()
        self._task = asyncio.create_task(self._recheck(), name="meshchat-ble-watch")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        transport, self.transport = self.transport, None
        if transport is not None:
            await transport.stop()
        self._handler = None

    def status(self) -> TransportStatus:
        if self.transport is not None:
            return self.transport.status()
        found = self.probe
        return TransportStatus(
            self.name,
            up=False,
            detail=f"Bluetooth LE not in use: {found.reason}; checking again every "
            f"{self.recheck_s:g} s",
            reason=found.reason,
            state=found.availability.value,
        )

    async def _recheck(self) -> None:
        while self._handler is not None:
            await asyncio.sleep(self.recheck_s)
            if self.transport is None:
                await self._attempt()
            elif self._check is not None:
                found = await self._check()
                if not found.usable:
                    await self._lost(found)

    async def _lost(self, found: BleProbe) -> None:
        """The adapter in use went away or off: stop BLE (links reported down), wait again."""
        transport, self.transport = self.transport, None
        log.info("Bluetooth LE stopped: %s", found.reason or found.availability.value)
        self._unavailable(found)
        if transport is not None:
            with contextlib.suppress(Exception):
                await transport.stop()

    async def _attempt(self) -> None:
        handler = self._handler
        if handler is None:
            return
        self.attempts += 1
        try:
            backend = await self._opener()
        except BleUnavailable as exc:
            self._unavailable(exc.probe)
            return
        except Exception as exc:  # a platform library's own error, translated here
            self._unavailable(BleProbe(Availability.FAILED, f"cannot open Bluetooth: {exc!r}"))
            return
        transport = self._make(backend)
        try:
            await transport.start(handler)
        except Exception as exc:
            with contextlib.suppress(Exception):
                await backend.stop()
            self._unavailable(BleProbe(Availability.FAILED, f"Bluetooth failed to start: {exc}"))
            return
        self.transport = transport
        self.probe = BleProbe(Availability.AVAILABLE)
        log.info("Bluetooth LE started")

    def _unavailable(self, found: BleProbe) -> None:
        if found != self.probe:
            log.info("Bluetooth LE not in use: %s", found.reason or found.availability.value)
        self.probe = found
