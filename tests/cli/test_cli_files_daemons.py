"""``meshchat send-file``, ``transfers`` and ``accept`` between two real daemons on loopback
TCP: the file arrives byte-identical in the folder given with ``--to``, and a text sent while
a larger transfer runs arrives before that transfer ends."""

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
from clirun import cli_env, run_cli

from meshchat.control import request
from meshchat.home import Home

PASS = "files daemon passphrase"


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


def eventually(check: Callable[[], bool], timeout: float = 40.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[Home, Home, Path]]:
    homes = [Home(tmp_path / name) for name in ("alice", "bob")]
    for home, name in zip(homes, ("Alice", "Bob"), strict=True):
        assert cli(home.path, "init", "--name", name, "--kdf", "interactive").returncode == 0
    cards = [cli_json(h.path, "id")["card"] for h in homes]
    assert cli(homes[0].path, "contacts", "add", cards[1]).returncode == 0
    assert cli(homes[1].path, "contacts", "add", cards[0]).returncode == 0
    inbox = tmp_path / "bob-files"
    ports = [free_port(), free_port()]
    daemons, logs = [], []
    for i, home in enumerate(homes):
        args = ["--lan-host", "127.0.0.1", "--lan-port", str(ports[i]), "--no-mdns"]
        args += ["--peer", f"127.0.0.1:{ports[1]}"] if i == 0 else ["--to", str(inbox)]
        log = (tmp_path / f"{home.path.name}.log").open("wb")
        logs.append(log)
        command = [sys.executable, "-m", "meshchat.cli.main", "--home", str(home.path)]
        daemons.append(
            subprocess.Popen(
                [*command, "daemon", *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=cli_env(PASS),
                stdin=subprocess.DEVNULL,
            )
        )
    try:
        for home in homes:
            eventually(home.control_socket.exists)
        eventually(lambda: len(cli_json(homes[0].path, "peers")["peers"]) == 1)
        yield homes[0], homes[1], inbox
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


def transfers(home: Home) -> list[dict[str, Any]]:
    return list(cli_json(home.path, "transfers")["transfers"])


def test_send_file_between_two_daemons_asks_then_arrives_byte_identical(
    pair: tuple[Home, Home, Path], tmp_path: Path
) -> None:
    alice, bob, inbox = pair
    data = os.urandom(700_000)
    source = tmp_path / "notes from the square.txt"
    source.write_bytes(data)
    sent = cli_json(alice.path, "send-file", "Bob", str(source), "--caption", "read this")
    assert sent["direction"] == "out" and sent["size"] == len(data)
    # Bob has not verified Alice: his node asks before pulling
    eventually(lambda: [t["state"] for t in transfers(bob)] == ["asking"])
    shown = cli(bob.path, "transfers")
    assert "notes from the square.txt" in shown.stdout and "asking" in shown.stdout
    accepted = cli_json(bob.path, "accept", sent["root"][:10])
    assert accepted["state"] == "active"
    eventually(lambda: [t["state"] for t in transfers(bob)] == ["done"])
    (done,) = transfers(bob)
    saved = Path(done["path"])
    assert saved.parent == inbox and saved.name == "notes from the square.txt"
    assert saved.read_bytes() == data
    # the announcement is in Bob's history of the conversation, after nothing it waits for
    log = cli_json(bob.path, "log", "Alice")["messages"]
    assert len(log) == 1 and log[0]["msg_id"] == sent["msg_id"]
    watched = cli(bob.path, "transfers", "--watch")  # nothing active: the list, at once
    assert watched.returncode == 0 and "notes from the square.txt" in watched.stdout
    shown = cli(bob.path, "log", "Alice").stdout
    assert "[file] notes from the square.txt (700.0 kB) read this" in shown


def test_a_text_sent_during_a_transfer_arrives_while_it_runs(
    pair: tuple[Home, Home, Path], tmp_path: Path
) -> None:
    alice, bob, _ = pair
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(6_000_000))
    sent = cli_json(alice.path, "send-file", "Bob", str(source))
    eventually(lambda: bool(transfers(bob)))
    # the control socket (what the CLI talks to) straight from here: no process start-up
    # between the transfer starting and the text being sent
    request(bob.control_socket, {"op": "accept_file", "id": sent["root"][:10]})

    def held() -> int:
        listed = request(bob.control_socket, {"op": "transfers"})["transfers"]
        return int(listed[0].get("held") or 0)

    eventually(lambda: held() > 0)
    reply = request(alice.control_socket, {"op": "send", "to": "Bob", "text": "typed during"})
    assert reply["ok"], reply

    def arrived() -> bool:
        return "typed during" in [m["text"] for m in cli_json(bob.path, "log", "Alice")["messages"]]

    eventually(arrived, timeout=90)
    eventually(lambda: transfers(bob)[0]["state"] == "done", timeout=90)
    (done,) = transfers(bob)
    assert Path(done["path"]).read_bytes() == source.read_bytes()
    (message,) = [
        m for m in cli_json(bob.path, "log", "Alice")["messages"] if m["text"] == "typed during"
    ]
    # both times are Bob's clock: the text was stored before the file's last chunk came
    took = done["finished_ms"] - done["started_ms"]
    ahead = done["finished_ms"] - message["updated_ms"]
    latency = message["updated_ms"] - message["created_ms"]
    print(
        f"transfer {took} ms ({len(source.read_bytes()) / took / 1000:.2f} MB/s); text "
        f"stored {latency} ms after it was written, {ahead} ms before the transfer's end"
    )
    assert message["updated_ms"] < done["finished_ms"]
