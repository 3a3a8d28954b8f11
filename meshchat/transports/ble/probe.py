"""Is there a Bluetooth adapter meshchat can use here? A quick look, with a plain answer.

``meshchat run`` and ``daemon`` use Bluetooth LE by default; on a machine where it cannot work
they must say why in words a person can act on, and go on with the LAN. :func:`probe` looks,
within a short timeout, and returns a :class:`BleProbe`: :attr:`~BleProbe.availability` (a
stable name, what ``status --json`` shows as the transport's state) and a sentence
(:attr:`~BleProbe.reason`).

Theory of operation (Linux, where bleak and bless talk to BlueZ over the D-Bus system bus):

===============================================  =========================================
what is seen, in this order                      answer
===============================================  =========================================
bleak or bless cannot be imported                ``not installed``
no system bus socket, kernel lists no ``hci*``   ``no adapter``
no system bus socket, kernel lists an adapter    ``no D-Bus``
every adapter the kernel lists is rfkill-blocked ``adapter off``
the bus refuses us (auth, EACCES, AccessDenied)  ``no permission``
``org.bluez`` has no owner, no ``hci*`` listed   ``no adapter``
``org.bluez`` has no owner, an adapter listed    ``no BlueZ``
BlueZ lists no ``org.bluez.Adapter1``            ``no adapter``
no adapter is powered                            ``adapter off``
a powered adapter                                ``available`` (its name, e.g. ``hci0``)
no answer within the timeout, anything else      ``failed`` (what went wrong)
===============================================  =========================================

The kernel's list (``/sys/class/bluetooth``) only decides when D-Bus cannot be asked: a
container may reach the host's BlueZ without seeing the host's ``/sys``. On macOS and Windows
the probe starts and stops a bleak scanner and reads the error, if any
(:func:`classify_error`); that path has not run on those systems yet.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import sys
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_SYSTEM_BUS",
    "Availability",
    "BleProbe",
    "classify_error",
    "probe",
    "probe_linux",
    "system_bus_address",
]

#: where the D-Bus system bus listens unless ``$DBUS_SYSTEM_BUS_ADDRESS`` says otherwise
DEFAULT_SYSTEM_BUS = "unix:path=/run/dbus/system_bus_socket"
_BLUEZ = "org.bluez"
_ADAPTER = "org.bluez.Adapter1"


class Availability(Enum):
    """Whether Bluetooth LE can be used here, and if not, why (stable names)."""

    AVAILABLE = "available"
    NO_ADAPTER = "no adapter"
    ADAPTER_OFF = "adapter off"
    NO_PERMISSION = "no permission"
    NO_DBUS = "no D-Bus"
    NO_BLUEZ = "no BlueZ"
    NOT_INSTALLED = "not installed"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class BleProbe:
    """What :func:`probe` found."""

    availability: Availability
    #: a sentence for a person: what is missing and how to fix it ("" when available)
    reason: str = ""
    #: the adapter to use (``hci0``), when one is available and known by name
    adapter: str | None = None

    @property
    def usable(self) -> bool:
        return self.availability is Availability.AVAILABLE


def system_bus_address(environ: dict[str, str] | None = None) -> str:
    """The D-Bus system bus address: ``$DBUS_SYSTEM_BUS_ADDRESS`` or the usual socket."""
    env = os.environ if environ is None else environ
    return env.get("DBUS_SYSTEM_BUS_ADDRESS") or DEFAULT_SYSTEM_BUS


def _socket_path(address: str) -> Path | None:
    """The socket file of a ``unix:path=...`` address (the first one), else None."""
    for part in address.split(";"):
        transport, _, params = part.partition(":")
        if transport != "unix":
            continue
        for item in params.split(","):
            key, _, value = item.partition("=")
            if key == "path":
                return Path(value)
    return None


def _kernel_adapters(sysfs: Path) -> list[str]:
    try:
        return sorted(
            p.name for p in (sysfs / "class" / "bluetooth").iterdir() if ":" not in p.name
        )
    except OSError:
        return []


def _rfkill_blocked(sysfs: Path) -> bool | None:
    """True if every Bluetooth rfkill switch is blocked, False if one is not, None if none."""
    states: list[bool] = []
    with contextlib.suppress(OSError):
        for switch in (sysfs / "class" / "rfkill").iterdir():
            with contextlib.suppress(OSError):
                if (switch / "type").read_text().strip() != "bluetooth":
                    continue
                soft = (switch / "soft").read_text().strip() == "1"
                hard = (switch / "hard").read_text().strip() == "1"
                states.append(soft or hard)
    return all(states) if states else None


def _missing_package() -> str | None:
    for name in ("bleak", "bless"):
        if importlib.util.find_spec(name) is None:
            return name
    return None


async def probe(timeout: float = 2.0) -> BleProbe:
    """Look for a usable adapter on this platform's stack, within ``timeout`` seconds."""
    missing = _missing_package()
    if missing is not None:
        return BleProbe(
            Availability.NOT_INSTALLED,
            f"{missing} is not installed: reinstall meshchat (it comes with it)",
        )
    if sys.platform.startswith("linux"):
        return await probe_linux(timeout=timeout)
    return await _probe_bleak(timeout)


async def probe_linux(
    *, sysfs: Path = Path("/sys"), bus_address: str | None = None, timeout: float = 2.0
) -> BleProbe:
    """The Linux probe: the kernel's adapters and rfkill, then BlueZ on the system bus."""
    address = bus_address or system_bus_address()
    kernel = _kernel_adapters(sysfs)
    socket_path = _socket_path(address)
    if socket_path is not None and not socket_path.exists():
        if not kernel:
            return BleProbe(
                Availability.NO_ADAPTER,
                "no Bluetooth adapter: the kernel lists none and there is no D-Bus system bus",
            )
        return BleProbe(
            Availability.NO_DBUS,
            f"no D-Bus system bus at {socket_path}: BlueZ is reached through it "
            "(start the dbus service)",
        )
    if kernel and _rfkill_blocked(sysfs):
        return BleProbe(
            Availability.ADAPTER_OFF,
            f"Bluetooth is blocked ({', '.join(kernel)}): rfkill unblock bluetooth",
        )
    try:
        async with asyncio.timeout(timeout):
            return await _ask_bluez(address, kernel)
    except TimeoutError:
        return BleProbe(Availability.FAILED, f"no answer from D-Bus or BlueZ within {timeout:g} s")


async def _ask_bluez(address: str, kernel: list[str]) -> BleProbe:
    try:
        from dbus_fast import BusType, Message, MessageType
        from dbus_fast.aio import MessageBus
        from dbus_fast.errors import AuthError
    except ImportError:
        return BleProbe(
            Availability.NOT_INSTALLED, "dbus-fast is not installed: reinstall meshchat"
        )
    try:
        bus = await MessageBus(bus_address=address, bus_type=BusType.SYSTEM).connect()
    except (PermissionError, AuthError) as exc:
        return BleProbe(
            Availability.NO_PERMISSION, f"the D-Bus system bus refused this user: {exc}"
        )
    except (OSError, ValueError) as exc:
        if not kernel:
            return BleProbe(
                Availability.NO_ADAPTER,
                f"no Bluetooth adapter: the kernel lists none and D-Bus is unreachable ({exc})",
            )
        return BleProbe(Availability.NO_DBUS, f"cannot reach the D-Bus system bus: {exc}")
    try:
        owned = await bus.call(
            Message(
                destination="org.freedesktop.DBus",
                path="/org/freedesktop/DBus",
                interface="org.freedesktop.DBus",
                member="NameHasOwner",
                signature="s",
                body=[_BLUEZ],
            )
        )
        if owned is None or owned.message_type is MessageType.ERROR or not owned.body[0]:
            if not kernel:
                return BleProbe(
                    Availability.NO_ADAPTER,
                    "no Bluetooth adapter: the kernel lists none and BlueZ is not running",
                )
            return BleProbe(
                Availability.NO_BLUEZ,
                "BlueZ is not running: start the bluetooth service (bluetoothd)",
            )
        reply = await bus.call(
            Message(
                destination=_BLUEZ,
                path="/",
                interface="org.freedesktop.DBus.ObjectManager",
                member="GetManagedObjects",
            )
        )
        if reply is None or reply.message_type is MessageType.ERROR:
            error = "" if reply is None else str(reply.error_name)
            if error.endswith(("AccessDenied", "NotAuthorized", "PermissionDenied")):
                return BleProbe(
                    Availability.NO_PERMISSION,
                    "BlueZ refused this user: join the bluetooth group or ask the admin",
                )
            return BleProbe(Availability.FAILED, f"BlueZ answered {error or 'nothing'}")
        return _adapters(reply.body[0])
    finally:
        bus.disconnect()


def _adapters(objects: dict[str, dict[str, dict[str, Any]]]) -> BleProbe:
    found: list[tuple[str, bool]] = []
    for path, interfaces in sorted(objects.items()):
        props = interfaces.get(_ADAPTER)
        if props is None:
            continue
        powered = props.get("Powered")
        found.append((path.rsplit("/", 1)[-1], bool(getattr(powered, "value", powered))))
    if not found:
        return BleProbe(Availability.NO_ADAPTER, "no Bluetooth adapter: BlueZ lists none")
    for name, powered in found:
        if powered:
            return BleProbe(Availability.AVAILABLE, "", name)
    names = ", ".join(name for name, _ in found)
    return BleProbe(
        Availability.ADAPTER_OFF,
        f"the Bluetooth adapter is off ({names}): bluetoothctl power on",
    )


def classify_error(message: str) -> BleProbe:
    """What a bleak error on macOS or Windows means (bleak reports these in words)."""
    low = message.lower()
    if "turned off" in low or "powered off" in low or "radio is off" in low:
        return BleProbe(Availability.ADAPTER_OFF, f"Bluetooth is off: turn it on ({message})")
    if "authoriz" in low or "permission" in low or "denied" in low:
        return BleProbe(
            Availability.NO_PERMISSION,
            f"this app may not use Bluetooth: allow it in the system settings ({message})",
        )
    if "no bluetooth adapter" in low or "not found" in low or "unsupported" in low:
        return BleProbe(Availability.NO_ADAPTER, f"no Bluetooth adapter ({message})")
    return BleProbe(Availability.FAILED, message)


async def _probe_bleak(timeout: float) -> BleProbe:  # pragma: no cover - not Linux
    """macOS (CoreBluetooth) and Windows (WinRT): start and stop a scanner."""
    import bleak

    try:
        async with asyncio.timeout(timeout):
            scanner = bleak.BleakScanner()
            await scanner.start()
            await scanner.stop()
    except TimeoutError:
        return BleProbe(Availability.FAILED, f"no answer from Bluetooth within {timeout:g} s")
    except Exception as exc:
        return classify_error(str(exc) or repr(exc))
    return BleProbe(Availability.AVAILABLE)
