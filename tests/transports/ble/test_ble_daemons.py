"""Bluetooth by default, with an adapter present: two ``meshchat daemon`` processes with no
Bluetooth flag, each driving a (virtual) controller through bumble, link over BLE alone (the
LAN is off) and ``status`` shows the BLE transport up with its neighbour."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import meshchat

PASS = "ble daemons passphrase"
HERE = Path(__file__).parent


def env() -> dict[str, str]:
    root = str(Path(meshchat.__file__).resolve().parent.parent)
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path, "MESHCHAT_PASSPHRASE": PASS}


def cli(home: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "meshchat.cli.main", "--home", str(home), *args],
        capture_output=True,
        text=True,
        env=env(),
        stdin=subprocess.DEVNULL,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def eventually(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def status(home: Path) -> Any:
    return json.loads(cli(home, "status", "--json"))


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in reversed(started):
        proc.terminate()
    for proc in started:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def test_two_daemons_link_over_bluetooth_by_default(
    tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    ports = [free_port(), free_port()]
    air = subprocess.Popen(
        [sys.executable, str(HERE / "air_server.py"), *map(str, ports)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env(),
    )
    processes.append(air)
    assert air.stdout is not None and air.stdout.readline().strip() == b"ready"
    homes = [tmp_path / "alice", tmp_path / "bob"]
    for home, port in zip(homes, ports, strict=True):
        cli(home, "init", "--name", home.name, "--kdf", "interactive")
        # Bluetooth is not switched on: only told which controller to drive (a USB dongle
        # would be usb:0); the LAN is off so that BLE is the only way
        cli(home, "config", "set", "ble.backend", "bumble")
        cli(home, "config", "set", "ble.controller", f"tcp-client:127.0.0.1:{port}")
        cli(home, "config", "set", "lan.enabled", "false")
        log = (tmp_path / f"{home.name}.log").open("wb")
        processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "meshchat.cli.main", "--home", str(home), "daemon"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env(),
                stdin=subprocess.DEVNULL,
            )
        )
        log.close()
    for home in homes:
        eventually((home / "control.sock").exists, f"{home.name} did not start")

    def ble_neighbours(home: Path) -> list[str]:
        return [p["node_id"] for p in status(home)["neighbours"] if p["transport"] == "ble"]

    for home in homes:
        eventually(lambda home=home: len(ble_neighbours(home)) == 1, "no BLE link")  # type: ignore[misc]
    shown = status(homes[0])
    ble = {t["name"]: t for t in shown["transports"]}["ble"]
    assert ble["up"] is True and ble["state"] == "up" and ble["reason"] is None
    assert "1 links" in ble["detail"]
    bob_id = status(homes[1])["identity"]["node_id"]
    assert ble_neighbours(homes[0]) == [bob_id]
    # and a message crosses it
    cli(homes[0], "send", "#mesh", "over the air")
    eventually(
        lambda: "over the air" in cli(homes[1], "log", "#mesh"), "the message did not arrive"
    )
