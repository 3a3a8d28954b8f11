"""Two bitchat crowds far apart, bridged by two ``meshchat daemon --bitchat`` gateways that meet
only through a relay (mosquitto): each crowd hears the other's public messages once each, and
an encrypted meshchat DM between the gateways' users never reaches bitchat.

Real parts: each island is its own simulated air (``tests/transports/ble/air_server.py``,
bumble controllers served over TCP), the daemons drive their controllers as they would drive a
USB dongle; the crowd on island A is bitchat-cli's own BLE layer (bleak, through the
bleak-on-bumble test backend), the crowd on island B the project's codec as a second, central
client. The daemons have no LAN (``lan.enabled = false``): the relay is their only path.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import bleak
import pytest
from bitchat_cli import ble_service
from bitchat_cli.chat_state import ChatState
from bumble import hci
from bumble.device import Device
from bumble.transport import open_transport

import meshchat
from meshchat.bridges.bitchat.central import BitchatCentral
from meshchat.bridges.bitchat.mesh import BitchatMesh
from meshchat.bridges.bitchat.peers import PublicText
from meshchat.bridges.bitchat.public import BitchatIdentity
from meshchat.bridges.marks import BITCHAT_MARK
from tests.transports.ble.bleak_bumble import backends
from tests.transports.relay.brokers import Mosquitto, end_process, free_port

PASS = "bitchat islands passphrase"
AIR = Path(__file__).parents[2] / "transports" / "ble" / "air_server.py"


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


async def acli(home: Path, *args: str) -> str:
    return await asyncio.to_thread(cli, home, *args)


async def until(check: Callable[[], Any], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.01)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


async def hci_device(port: int, name: str) -> Device:
    transport = await open_transport(f"tcp-client:127.0.0.1:{port}")
    device = Device.with_hci(
        name, hci.Address.generate_static_address(), transport.source, transport.sink
    )
    device.hci_transport = transport  # type: ignore[attr-defined]
    await device.power_on()
    return device


@pytest.fixture
async def procs() -> AsyncIterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in reversed(started):
        await asyncio.to_thread(end_process, proc, 10)  # type: ignore[arg-type]
        if proc.stdout is not None:
            proc.stdout.close()


async def start_air(procs: list[subprocess.Popen[bytes]]) -> tuple[int, int]:
    ports = (free_port(), free_port())
    air = subprocess.Popen(
        [sys.executable, str(AIR), *map(str, ports)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env(),
    )
    procs.append(air)
    assert air.stdout is not None
    assert (await asyncio.to_thread(air.stdout.readline)).strip() == b"ready"
    return ports


async def start_gateway(
    tmp_path: Path, name: str, broker: int, controller: int, procs: list[subprocess.Popen[bytes]]
) -> Path:
    home = tmp_path / name
    await acli(home, "init", "--name", name, "--kdf", "interactive")
    (home / "config.toml").write_text(
        "[lan]\nenabled = false\n[ble]\nenabled = false\n"
        f'[internet]\nrelays = ["mqtt://127.0.0.1:{broker}"]\n'
        f'[bitchat]\ncontroller = "tcp-client:127.0.0.1:{controller}"\n'
    )
    log = (tmp_path / f"{name}.log").open("wb")
    procs.append(
        subprocess.Popen(
            [sys.executable, "-m", "meshchat.cli.main", "--home", str(home), "daemon", "--bitchat"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env(),
            stdin=subprocess.DEVNULL,
        )
    )
    log.close()
    await until((home / "control.sock").exists, f"{name} did not start")
    return home


async def status(home: Path) -> Any:
    return json.loads(await acli(home, "status", "--json"))


async def test_two_bitchat_islands_hear_each_other_through_the_relay(
    tmp_path: Path, procs: list[subprocess.Popen[bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = Mosquitto(tmp_path, free_port())
    broker.start()
    try:
        await _islands(tmp_path, broker.port, procs, monkeypatch)
    finally:
        broker.stop()


async def _islands(
    tmp_path: Path,
    broker: int,
    procs: list[subprocess.Popen[bytes]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    air_a, air_b = await start_air(procs), await start_air(procs)
    alice, bob = await asyncio.gather(
        start_gateway(tmp_path, "alice", broker, air_a[0], procs),
        start_gateway(tmp_path, "bob", broker, air_b[0], procs),
    )

    # island A's crowd: bitchat-cli's BLE layer, unchanged, on the air of island A
    carol_device = await hci_device(air_a[1], "carol")
    scanner, client = backends(carol_device)
    monkeypatch.setattr(
        ble_service, "BleakScanner", functools.partial(bleak.BleakScanner, backend=scanner)
    )
    monkeypatch.setattr(
        ble_service, "BleakClient", functools.partial(bleak.BleakClient, backend=client)
    )
    monkeypatch.setattr(ble_service, "print_formatted_text", lambda *a, **k: None)
    carol = ChatState("carol", os.urandom(8))
    carol.my_peer_id = hashlib.sha256(carol.identity.noise_public_key_bytes()).digest()[:8]
    service = ble_service.BLEService(carol, lambda: None)
    runner = asyncio.get_running_loop().create_task(service.run())

    # island B's crowd: the project's codec as a central
    dave_device = await hci_device(air_b[1], "dave")
    dave_heard: list[PublicText] = []
    dave = BitchatCentral(
        dave_device,
        BitchatMesh(BitchatIdentity.generate(), "dave"),
        on_text=dave_heard.append,
        clock_ms=now_ms,
    )
    await dave.start()
    try:
        await _exchange(alice, bob, service, carol, dave, dave_heard)
    finally:
        await service.stop()
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        await dave.stop()
        for device in (carol_device, dave_device):
            await device.hci_transport.close()  # type: ignore[attr-defined]


def _bridge(shown: Any) -> Any:
    return next(b for b in shown["bridges"] if b["network"] == "bitchat")


async def _exchange(
    alice: Path,
    bob: Path,
    service: Any,
    carol: ChatState,
    dave: BitchatCentral,
    dave_heard: list[PublicText],
) -> None:
    # both gateways appear in their crowd's peer list under their users' names
    await until(lambda: "alice" in carol.peer_nicknames.values(), "carol never saw alice")
    await until(lambda: len(dave.mesh.peers) == 1, "dave never saw bob")
    assert next(iter(dave.mesh.peers._peers.values())).nickname == "bob"
    for home in (alice, bob):

        async def ready(home: Path = home) -> bool:
            shown = await status(home)
            return bool(shown["gateway"]) and _bridge(shown)["peers"] >= 1

        await until(ready, f"{home.name}: no relay or no bitchat peer")

    def carol_texts() -> list[str]:
        return [m.content for m in carol.messages if m.sender != "carol"]

    started = time.monotonic()
    await service.send_public_message("hello from island A")
    await until(lambda: any("hello from island A" in t.text for t in dave_heard), "B never heard A")
    a_to_b = time.monotonic() - started
    started = time.monotonic()
    await dave.send_text("hello from island B")
    await until(lambda: any("hello from island B" in t for t in carol_texts()), "A never heard B")
    b_to_a = time.monotonic() - started
    await acli(bob, "send", "#bitchat", "bob writes in #bitchat")
    await until(lambda: any("bob writes" in t for t in carol_texts()), "bob's text not at A")

    # an encrypted DM between the gateways' users
    ids = await asyncio.gather(acli(alice, "id", "--json"), acli(bob, "id", "--json"))
    alice_card, bob_card = (json.loads(shown)["card"] for shown in ids)
    await asyncio.gather(
        acli(alice, "contacts", "add", bob_card, "--name", "bob"),
        acli(bob, "contacts", "add", alice_card, "--name", "alice"),
    )
    await acli(alice, "send", "bob", "a secret between meshchat users")

    async def dm_arrived() -> bool:
        return "a secret between meshchat users" in await acli(bob, "log", "alice")

    await until(dm_arrived, "the DM never arrived", timeout=60)
    await acli(alice, "send", "#mesh", "meshchat's own public channel")
    await asyncio.sleep(2.0)  # time for an echo, a loop or a leak to show

    print(f"island to island: A->B {a_to_b * 1000:.0f} ms, B->A {b_to_a * 1000:.0f} ms")
    # over the relay the gateways have not heard each other's announce: a sender is shown by
    # its meshchat id until then ("~name" for an announced stranger)
    echo = re.compile(r"\u21c4 \S+ \(meshchat\): (.*)")
    at_b = [t.text for t in dave_heard]
    assert len(at_b) == 2 and at_b[1] == "bob writes in #bitchat"  # bob's own, unmarked
    assert (m := echo.fullmatch(at_b[0])) and m[1] == "carol@bitchat: hello from island A"
    at_a = [m[1] for t in carol_texts() if (m := echo.fullmatch(t))]
    assert sorted(at_a) == ["bob writes in #bitchat", "dave@bitchat: hello from island B"]
    assert len(carol_texts()) == 2
    for texts in (carol_texts(), [t.text for t in dave_heard]):
        assert not any("secret" in t or "own public channel" in t for t in texts)

    log = await acli(bob, "log", "#bitchat")
    assert log.splitlines()[0] == f"#bitchat: {BITCHAT_MARK}"
    assert "carol@bitchat: hello from island A" in log
    shown = _bridge(await status(alice))
    assert shown["mark"] == BITCHAT_MARK and shown["counters"]["carried"] == 1
