"""The BLE probe tells apart every way Bluetooth can be unusable, each with a plain reason.

The kernel's side is a folder laid out as ``/sys`` is; the D-Bus side is a real ``dbus-daemon``
on a private socket, with a stand-in for BlueZ (this machine has no Bluetooth for the real
one) that answers ``GetManagedObjects`` as BlueZ does.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from dbus_fast import Message, Variant
from dbus_fast.aio import MessageBus

from meshchat.transports.ble.probe import (
    Availability,
    classify_error,
    probe_linux,
    system_bus_address,
)

NOWHERE = "unix:path=/nonexistent/meshchat-test/system_bus_socket"


def sysfs(
    root: Path, adapters: list[str], rfkill: dict[str, tuple[int, int]] | None = None
) -> Path:
    """A /sys with these adapters (and rfkill switches: name -> (soft, hard))."""
    (root / "class" / "bluetooth").mkdir(parents=True)
    for name in adapters:
        (root / "class" / "bluetooth" / name).mkdir()
    for name, (soft, hard) in (rfkill or {}).items():
        switch = root / "class" / "rfkill" / name
        switch.mkdir(parents=True)
        (switch / "type").write_text("bluetooth\n")
        (switch / "soft").write_text(f"{soft}\n")
        (switch / "hard").write_text(f"{hard}\n")
    return root


async def test_no_adapter_and_no_bus_says_no_adapter(tmp_path: Path) -> None:
    found = await probe_linux(sysfs=sysfs(tmp_path, []), bus_address=NOWHERE)
    assert found.availability is Availability.NO_ADAPTER and not found.usable
    assert "no Bluetooth adapter" in found.reason


async def test_no_bluetooth_class_at_all_is_no_adapter(tmp_path: Path) -> None:
    found = await probe_linux(sysfs=tmp_path, bus_address=NOWHERE)
    assert found.availability is Availability.NO_ADAPTER


async def test_an_adapter_without_d_bus_says_so(tmp_path: Path) -> None:
    found = await probe_linux(sysfs=sysfs(tmp_path, ["hci0"]), bus_address=NOWHERE)
    assert found.availability is Availability.NO_DBUS
    assert "/nonexistent/meshchat-test/system_bus_socket" in found.reason


async def test_a_blocked_adapter_is_off(tmp_path: Path, bus: str) -> None:
    root = sysfs(tmp_path, ["hci0"], {"rfkill0": (1, 0)})
    found = await probe_linux(sysfs=root, bus_address=bus)
    assert found.availability is Availability.ADAPTER_OFF and "rfkill unblock" in found.reason


async def test_an_unblocked_switch_goes_on_to_ask_bluez(tmp_path: Path, bus: str) -> None:
    root = sysfs(tmp_path, ["hci0"], {"rfkill0": (0, 0)})
    found = await probe_linux(sysfs=root, bus_address=bus)
    assert found.availability is Availability.NO_BLUEZ and "bluetoothd" in found.reason


def test_the_system_bus_address_comes_from_the_environment() -> None:
    assert system_bus_address({}) == "unix:path=/run/dbus/system_bus_socket"
    assert system_bus_address({"DBUS_SYSTEM_BUS_ADDRESS": "unix:path=/x"}) == "unix:path=/x"


# -- a real bus -----------------------------------------------------------------------------


@pytest.fixture
def bus(tmp_path: Path) -> Iterator[str]:
    """A private dbus-daemon; its address."""
    daemon = shutil.which("dbus-daemon")
    assert daemon is not None, "dbus-daemon is needed (apt-get install dbus)"
    path = tmp_path / "bus"
    address = f"unix:path={path}"
    log = tmp_path / "dbus.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [daemon, "--session", "--nofork", "--nopidfile", f"--address={address}"],
            stdout=subprocess.DEVNULL,
            stderr=out,
        )
    try:
        for _ in range(500):
            if path.exists():
                break
            assert proc.poll() is None, log.read_text()
            time.sleep(0.02)
        yield address
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def adapter(powered: bool) -> dict[str, dict[str, Variant]]:
    return {
        "org.bluez.Adapter1": {
            "Powered": Variant("b", powered),
            "Address": Variant("s", "00:11:22:33:44:55"),
        },
        "org.freedesktop.DBus.Properties": {},
    }


async def fake_bluez(address: str, objects: dict[str, Any] | None, error: str = "") -> MessageBus:
    """Own org.bluez on the bus and answer GetManagedObjects with ``objects`` (or ``error``)."""
    service = await MessageBus(bus_address=address).connect()

    def answer(message: Message) -> Message | None:
        if message.member != "GetManagedObjects":
            return None
        if error:
            return Message.new_error(message, error, "refused")
        return Message.new_method_return(message, "a{oa{sa{sv}}}", [objects])

    service.add_message_handler(answer)
    await service.request_name("org.bluez")
    return service


@pytest.fixture
async def services() -> AsyncIterator[list[MessageBus]]:
    held: list[MessageBus] = []
    yield held
    for service in held:
        service.disconnect()


async def test_a_bus_without_bluez_and_no_kernel_adapter_is_no_adapter(
    tmp_path: Path, bus: str
) -> None:
    found = await probe_linux(sysfs=sysfs(tmp_path, []), bus_address=bus)
    assert found.availability is Availability.NO_ADAPTER and "BlueZ" in found.reason


@pytest.mark.parametrize(
    ("objects", "availability", "adapter_name"),
    [
        ({"/org/bluez": {"org.bluez.AgentManager1": {}}}, Availability.NO_ADAPTER, None),
        ({"/org/bluez/hci0": adapter(False)}, Availability.ADAPTER_OFF, None),
        (
            {"/org/bluez/hci0": adapter(False), "/org/bluez/hci1": adapter(True)},
            Availability.AVAILABLE,
            "hci1",
        ),
    ],
)
async def test_bluez_answers(
    tmp_path: Path,
    bus: str,
    services: list[MessageBus],
    objects: dict[str, Any],
    availability: Availability,
    adapter_name: str | None,
) -> None:
    services.append(await fake_bluez(bus, objects))
    found = await probe_linux(sysfs=sysfs(tmp_path, ["hci0"]), bus_address=bus)
    assert found.availability is availability, found
    assert found.adapter == adapter_name
    assert found.usable == (availability is Availability.AVAILABLE)
    if availability is Availability.ADAPTER_OFF:
        assert "hci0" in found.reason and "power on" in found.reason


async def test_bluez_refusing_us_is_no_permission(
    tmp_path: Path, bus: str, services: list[MessageBus]
) -> None:
    services.append(await fake_bluez(bus, None, "org.freedesktop.DBus.Error.AccessDenied"))
    found = await probe_linux(sysfs=sysfs(tmp_path, ["hci0"]), bus_address=bus)
    assert found.availability is Availability.NO_PERMISSION and "bluetooth group" in found.reason


async def test_a_bus_that_never_answers_fails_within_the_timeout(tmp_path: Path) -> None:
    path = tmp_path / "silent"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as silent:
        silent.bind(str(path))
        silent.listen()
        found = await asyncio.wait_for(
            probe_linux(
                sysfs=sysfs(tmp_path / "sys", ["hci0"]),
                bus_address=f"unix:path={path}",
                timeout=0.3,
            ),
            timeout=10,
        )
    assert found.availability is Availability.FAILED and "0.3 s" in found.reason


@pytest.mark.parametrize(
    ("message", "availability"),
    [
        ("Bluetooth device is turned off", Availability.ADAPTER_OFF),
        ("BLE is not authorized - check macOS privacy settings", Availability.NO_PERMISSION),
        ("No Bluetooth adapters found.", Availability.NO_ADAPTER),
        ("BLE is unsupported", Availability.NO_ADAPTER),
        ("something else", Availability.FAILED),
    ],
)
def test_bleak_errors_on_other_systems(message: str, availability: Availability) -> None:
    found = classify_error(message)
    assert found.availability is availability and message in found.reason
