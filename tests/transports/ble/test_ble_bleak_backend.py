"""The OS-stack backend loads bleak and bless only when started, and says what is missing."""

from __future__ import annotations

import subprocess
import sys

import pytest

import meshchat.transports.ble as ble_package
from meshchat.errors import TransportError
from meshchat.identity import Identity
from meshchat.transports.ble import BleTransport, GattProfile
from meshchat.transports.ble.bleak_backend import BleakBackend


def test_importing_the_package_loads_no_bluetooth_stack() -> None:
    code = (
        "import sys, meshchat.transports.ble, meshchat.transports.ble.bleak_backend;"
        "print(sorted(m for m in ('bleak', 'bless', 'bumble') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
    assert ble_package.BleTransport is BleTransport


async def test_start_without_bleak_is_a_clear_transport_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "bleak", None)  # as if not installed
    backend = BleakBackend()
    with pytest.raises(TransportError, match=r"bleak is not installed; .*reinstall"):
        await backend.start(GattProfile(), lambda connection: None)


async def test_transport_reports_a_missing_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "bless", None)
    monkeypatch.setitem(sys.modules, "bleak", None)
    transport = BleTransport(Identity.generate(), BleakBackend())

    class Nobody:
        def link_up(self, link: object) -> None: ...
        def link_down(self, link: object) -> None: ...
        def frame_received(self, link: object, frame: bytes) -> None: ...

    with pytest.raises(TransportError):
        await transport.start(Nobody())  # type: ignore[arg-type]
    status = transport.status()
    assert not status.up
    assert "not installed" in status.detail
