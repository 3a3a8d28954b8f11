"""``meshchat group`` between two real daemons on loopback TCP: create, send, remove."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from clirun import cli_env, run_cli

from meshchat.home import Home

PASS = "group daemon passphrase"


def _env() -> dict[str, str]:
    return cli_env(PASS)


def cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(home, PASS, *args)


def cli_json(home: Path, *args: str) -> Any:
    result = cli(home, *args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def eventually(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[Home, Home]]:
    homes = [Home(tmp_path / name) for name in ("alice", "bob")]
    for home, name in zip(homes, ("Alice", "Bob"), strict=True):
        assert cli(home.path, "init", "--name", name, "--kdf", "interactive").returncode == 0
    cards = [cli_json(h.path, "id")["card"] for h in homes]
    assert cli(homes[0].path, "contacts", "add", cards[1]).returncode == 0
    assert cli(homes[1].path, "contacts", "add", cards[0]).returncode == 0
    ports = [free_port(), free_port()]
    daemons = []
    logs = []
    for i, home in enumerate(homes):
        args = ["--lan-host", "127.0.0.1", "--lan-port", str(ports[i]), "--no-mdns"]
        if i == 0:
            args += ["--peer", f"127.0.0.1:{ports[1]}"]
        log = (tmp_path / f"{home.path.name}.log").open("wb")
        logs.append(log)
        daemons.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "meshchat.cli.main",
                    "--home",
                    str(home.path),
                    "daemon",
                    *args,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=_env(),
                stdin=subprocess.DEVNULL,
            )
        )
    try:
        for home in homes:
            eventually(home.control_socket.exists)
        eventually(lambda: len(cli_json(homes[0].path, "peers")["peers"]) == 1)
        yield homes[0], homes[1]
    finally:
        for daemon in daemons:
            daemon.terminate()
        for daemon in daemons:
            try:
                daemon.wait(timeout=10)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
        for log in logs:
            log.close()


def bob_groups(bob: Home) -> list[dict[str, Any]]:
    return list(cli_json(bob.path, "group", "list")["groups"])


def test_group_create_send_remove_through_the_cli(pair: tuple[Home, Home]) -> None:
    alice, bob = pair
    created = cli_json(alice.path, "group", "create", "crew", "Bob")["groups"][0]
    assert created["name"] == "crew" and created["admin"] and created["epoch"] == 1
    eventually(lambda: [g["member"] for g in bob_groups(bob)] == [True])
    assert not bob_groups(bob)[0]["admin"]

    sent = cli(alice.path, "send", "+crew", "pickled", "lighthouse")
    assert sent.returncode == 0, sent.stderr
    eventually(
        lambda: (
            [m["text"] for m in cli_json(bob.path, "log", "+crew")["messages"]]
            == ["pickled lighthouse"]
        )
    )
    reply = cli(bob.path, "send", "+crew", "copy that")
    assert reply.returncode == 0, reply.stderr
    eventually(
        lambda: "copy that" in [m["text"] for m in cli_json(alice.path, "log", "+crew")["messages"]]
    )
    refused = cli(bob.path, "group", "remove", "+crew", "Alice")
    assert refused.returncode == 1 and "only an admin" in refused.stderr

    removed = cli_json(alice.path, "group", "remove", "+crew", "Bob")["groups"][0]
    assert removed["epoch"] == 2
    eventually(lambda: [g["member"] for g in bob_groups(bob)] == [False])
    late = cli(bob.path, "send", "+crew", "still here?")
    assert late.returncode == 1 and "no longer a member" in late.stderr
    unknown = cli(alice.path, "send", "+nosuch", "hello")
    assert unknown.returncode == 1 and "no group" in unknown.stderr
