"""``meshchat device ...`` and ``init --link`` as a shell runs them: a mistyped code is told at
once (nothing is created), and ``device list`` works on a lone device without a node."""

from __future__ import annotations

import json
from pathlib import Path

from clirun import run_cli

from meshchat.account.link import LinkCode

PASSPHRASE = "link test passphrase"


def mistyped() -> str:
    text = LinkCode.generate(bytes(16)).to_text()
    last = "A" if text[-1] != "A" else "B"
    return text[:-1] + last


def test_a_mistyped_code_is_told_before_anything_is_made(tmp_path: Path) -> None:
    home = tmp_path / "new"
    done = run_cli(home, PASSPHRASE, "init", "--kdf", "interactive", "--link", mistyped())
    assert done.returncode == 1
    assert "mistyped link code" in done.stderr and done.stderr.count("\n") == 1
    assert not (home / "keystore").exists()
    done = run_cli(home, PASSPHRASE, "device", "join", "not a code")
    assert done.returncode == 1 and "link code" in done.stderr


def test_device_list_of_a_lone_device(tmp_path: Path) -> None:
    home = tmp_path / "desk"
    made = run_cli(home, PASSPHRASE, "init", "--name", "desk", "--kdf", "interactive")
    assert made.returncode == 0, made.stderr
    me = json.loads(run_cli(home, PASSPHRASE, "id", "--json").stdout)["node_id"]
    done = run_cli(home, PASSPHRASE, "device", "list", "--json")
    assert done.returncode == 0, done.stderr
    listed = json.loads(done.stdout)
    assert listed["account_id"] == me and listed["version"] == 1 and listed["revoked"] == []
    assert listed["devices"] == [{"node_id": me, "name": "desk", "this": True}]
    text = run_cli(home, PASSPHRASE, "device", "list").stdout
    assert f"account {me}" in text and "(this device)" in text


def test_device_revoke_without_a_running_node_starts_one(tmp_path: Path) -> None:
    home = tmp_path / "desk"
    made = run_cli(home, PASSPHRASE, "init", "--name", "desk", "--kdf", "interactive")
    assert made.returncode == 0, made.stderr
    args = ("--lan-host", "127.0.0.1", "--lan-port", "0", "--no-mdns", "--no-ble")
    done = run_cli(home, PASSPHRASE, "device", "revoke", "phone", *args)
    assert done.returncode == 1 and "no device of this account" in done.stderr, done.stderr
    assert done.stderr.count("\n") == 1
