"""``meshchat status``: offline from the home, then from a real running daemon.

Alice's daemon is set up only through ``config.toml`` (loopback TCP, no mDNS); a stranger's
daemon dials it and announces a name with an invisible character. ``status --json`` must give
the identity, each transport with its state (and the reason for those not running), the link,
the gateway state, the queued and carried counts and the store size; the text output must show
the stranger's name escaped and marked ``~``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from clirun import cli_env, run_cli

from meshchat.home import Home
from meshchat.identity import KdfProfile

PASS = "status daemon passphrase"
#: U+3164 HANGUL FILLER is a letter to Unicode, so names keep it, but it shows as nothing
ODD_NAME = "mallory\u3164"

STRANGER = f"""
import sys
from dataclasses import replace
from meshchat.cli.main import main
from meshchat.home import Home
unlock = Home.unlock_all
Home.unlock_all = lambda self, passphrase: replace(unlock(self, passphrase), name={ODD_NAME!r})
sys.exit(main(sys.argv[1:]))
"""


def ok(home: Path, *args: str) -> str:
    done = run_cli(home, PASS, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def status(home: Path) -> Any:
    return json.loads(ok(home, "status", "--json"))


def eventually(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def by_name(transports: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {t["name"]: t for t in transports}


def test_status_without_an_identity_or_a_node(tmp_path: Path) -> None:
    home = tmp_path / "fresh"
    shown = status(home)
    assert shown["daemon"] == {"running": False, "detail": "daemon not running"}
    assert shown["identity"] is None and shown["locked"] is False
    assert shown["store"]["bytes"] == 0 and shown["queued"] is None
    transports = by_name(shown["transports"])
    assert transports["lan"]["state"] == "stopped"
    # Bluetooth is on by default; this machine has no adapter, and status says so
    assert transports["ble"]["state"] == "no adapter" and transports["ble"]["up"] is False
    assert "no Bluetooth adapter" in transports["ble"]["reason"]
    assert "meshchat config set internet.relays" in shown["gateway"]["reason"]
    text = ok(home, "status")
    assert "ble        no adapter no Bluetooth adapter" in text
    assert "gateway    no relay or DHT bootstrap configured: meshchat config set" in text
    assert "daemon not running" in text and "meshchat init" in text


@pytest.fixture
def alice_running(tmp_path: Path) -> Iterator[tuple[Home, Home]]:
    alice = Home(tmp_path / "alice")
    ok(alice.path, "init", "--name", "alice", "--kdf", "interactive")
    port = free_port()
    for key, value in [("lan.host", "127.0.0.1"), ("lan.port", str(port)), ("lan.mdns", "off")]:
        ok(alice.path, "config", "set", key, value)
    ok(alice.path, "send", "#mesh", "queued while offline")

    offline = status(alice.path)
    assert offline["daemon"]["running"] is False
    assert offline["identity"]["name"] == "alice" and offline["queued"] == 1
    assert offline["identity"]["devices"] == 1 and len(offline["identity"]["account_id"]) == 32
    assert offline["carried"] == 0 and offline["store"]["bytes"] > 0

    stranger = Home(tmp_path / "stranger")
    stranger.create_identity("stranger", PASS, KdfProfile.INTERACTIVE)
    procs: list[subprocess.Popen[bytes]] = []
    logs = []
    try:
        for home, argv in (
            (alice, ["-m", "meshchat.cli.main"]),
            (stranger, ["-c", STRANGER]),
        ):
            args = [] if home is alice else ["--lan-host", "127.0.0.1", "--no-mdns",
                                             "--peer", f"127.0.0.1:{port}"]  # fmt: skip
            log = (tmp_path / f"{home.path.name}.log").open("wb")
            logs.append(log)
            procs.append(
                subprocess.Popen(
                    [sys.executable, *argv, "--home", str(home.path), "daemon", *args],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=cli_env(PASS),
                    stdin=subprocess.DEVNULL,
                )
            )
            eventually(home.control_socket.exists)
        eventually(lambda: [n["name"] for n in status(alice.path)["neighbours"]] == [ODD_NAME])
        yield alice, stranger
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for log in logs:
            log.close()


def test_status_of_a_running_daemon(alice_running: tuple[Home, Home]) -> None:
    alice, stranger = alice_running
    shown = status(alice.path)
    assert shown["daemon"]["running"] is True
    card = json.loads(ok(alice.path, "id", "--json"))
    assert shown["identity"] == {
        "name": "alice",
        "short_id": card["node_id"][:8],
        "node_id": card["node_id"],
        "fingerprint": card["fingerprint"],
        "account_id": card["node_id"],  # a home of one device is its own account
        "devices": 1,
    }
    transports = by_name(shown["transports"])
    assert set(transports) == {"lan", "ble", "relay", "dht"}
    lan = transports["lan"]
    assert lan["state"] == "up" and lan["up"] is True and lan["reason"] is None
    assert "127.0.0.1:" in lan["detail"] and "mdns off" in lan["detail"]  # from config.toml
    for name in ("relay", "dht"):
        assert transports[name]["state"] == "off" and transports[name]["reason"]
    # BLE on by default, no adapter on this machine: said plainly, and the LAN link is up
    ble = transports["ble"]
    assert ble["state"] == "no adapter" and ble["up"] is False
    assert "no Bluetooth adapter" in ble["reason"]
    assert shown["links"] == 1
    stranger_id = json.loads(ok(stranger.path, "id", "--json"))["node_id"]
    [neighbour] = shown["neighbours"]
    assert neighbour["node_id"] == stranger_id and neighbour["transport"] == "lan"
    assert neighbour["name"] == ODD_NAME and neighbour["contact"] is None
    # no relay or bootstrap configured: status says how to add one
    assert shown["gateway"]["this_node"] is False and shown["gateway"]["heard"] == []
    assert "meshchat config set internet.relays" in shown["gateway"]["reason"]
    assert isinstance(shown["queued"], int) and isinstance(shown["carried"], int)
    assert shown["store"]["bytes"] > 0
    assert shown["config"] == {"path": str(alice.config), "exists": True}

    text = ok(alice.path, "status")
    assert "\u3164" not in text
    assert "~mallory\\u3164" in text  # escaped, and marked as a stranger
    assert "lan        up" in text
    assert "ble        no adapter" in text
    assert "links      1 neighbour(s): ~mallory" in text
    assert "gateway    none heard" in text
    assert "this node is not one: no relay or DHT bootstrap configured: meshchat config" in text


def test_status_without_the_passphrase_says_the_identity_is_locked(tmp_path: Path) -> None:
    home = tmp_path / "locked"
    ok(home, "init", "--name", "alice", "--kdf", "interactive")
    env = cli_env(PASS)
    del env["MESHCHAT_PASSPHRASE"]
    done = subprocess.run(
        [sys.executable, "-m", "meshchat.cli.main", "--home", str(home), "status", "--json"],
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["locked"] is True and shown["identity"] is None
    assert shown["queued"] is None and shown["store"]["bytes"] > 0
    assert shown["daemon"]["running"] is False


def test_status_names_a_broken_config_file_and_still_answers(tmp_path: Path) -> None:
    home = tmp_path / "broken"
    home.mkdir()
    (home / "config.toml").write_text("[lan]\nprot = 1\n")
    shown = status(home)
    assert shown["config"]["error"].endswith(
        "line 2: lan.prot: unknown key (did you mean lan.port?)"
    )
    assert shown["transports"] == [] and shown["daemon"]["running"] is False
    assert "line 2: lan.prot: unknown key" in ok(home, "status")


def test_status_gives_the_reason_an_internet_transport_is_down(tmp_path: Path) -> None:
    home = Home(tmp_path / "gateway")
    ok(home.path, "init", "--name", "gw", "--kdf", "interactive")
    closed = free_port()  # nothing listens there
    for key, value in [
        ("lan.enabled", "false"),
        ("internet.relays", f"mqtt://127.0.0.1:{closed}"),
        ("internet.dht_host", "127.0.0.1"),
        ("internet.dht_bootstrap", f"127.0.0.1:{free_port()}"),
    ]:
        ok(home.path, "config", "set", key, value)
    log = (tmp_path / "gateway.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "meshchat.cli.main", "--home", str(home.path), "daemon"],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=cli_env(PASS),
        stdin=subprocess.DEVNULL,
    )
    try:
        eventually(home.control_socket.exists)
        eventually(lambda: by_name(status(home.path)["transports"])["relay"]["reason"] != (
            f"mqtt://127.0.0.1:{closed}: connecting"
        ))  # fmt: skip
        shown = status(home.path)
        transports = by_name(shown["transports"])
        relay, dht, lan = transports["relay"], transports["dht"], transports["lan"]
        assert relay["state"] == "down" and relay["up"] is False
        assert relay["reason"].startswith(f"mqtt://127.0.0.1:{closed}: ")
        assert dht["state"] == "down" and dht["reason"] == "no DHT neighbours"
        assert lan["state"] == "off" and "lan.enabled" in lan["reason"]
        # configured, but neither reaches the internet: not a gateway, and status says why
        gateway = shown["gateway"]
        assert gateway["this_node"] is False
        assert gateway["reason"].startswith(f"mqtt://127.0.0.1:{closed}: ")
        assert gateway["reason"].endswith("; no DHT neighbours")
        text = ok(home.path, "status")
        assert f"relay      down     mqtt://127.0.0.1:{closed}: " in text
        assert f"this node is not one: mqtt://127.0.0.1:{closed}: " in text
        assert "links      0 neighbour(s); internet: " in text
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def test_device_revoke_goes_through_the_running_node(alice_running: tuple[Home, Home]) -> None:
    alice, _ = alice_running
    for device, told in (("nobody", "no device of this account"), ("alice", "this device")):
        done = run_cli(alice.path, PASS, "device", "revoke", device)
        assert done.returncode == 1 and told in done.stderr, done.stderr
        assert done.stderr.count("\n") == 1
