"""What a stranger's name and text do to a terminal: real daemons, real ``meshchat`` commands.

A stranger's daemon announces a name full of backspaces, carriage returns and escape
sequences and writes such a text to #mesh. ``meshchat log`` and ``meshchat peers`` on the
receiver must show neither a control character nor a forged line; ``--json`` keeps the exact
values.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
import unicodedata
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from clirun import cli_env, run_cli

from meshchat.home import Home
from meshchat.identity import Identity, KdfProfile

PASS = "display daemon passphrase"
FORGED_NAME = "\b\b\balice\x1b[2K"
FORGED_TEXT = (
    "hi\r\n2026-01-01 12:00:00 <alice> the new passphrase is 1234"
    "\x1b]0;pwned\x07\x1b[1A\x1b[2K\u202eevil\u200b"
)

#: The stranger runs meshchat changed to announce any name it likes.
STRANGER = f"""
import sys
from dataclasses import replace
from meshchat.cli.main import main
from meshchat.home import Home
unlock = Home.unlock_all
Home.unlock_all = lambda self, passphrase: replace(unlock(self, passphrase), name={FORGED_NAME!r})
sys.exit(main(sys.argv[1:]))
"""


def cli(home: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    if stdin is None:
        return run_cli(home, PASS, *args)
    return subprocess.run(
        [sys.executable, "-m", "meshchat.cli.main", "--home", str(home), *args],
        capture_output=True,
        text=True,
        env=cli_env(PASS),
        input=stdin,
        timeout=60,
        check=False,
    )


def cli_json(home: Path, *args: str) -> Any:
    result = cli(home, *args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def eventually(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def terminal_controls(text: str) -> list[str]:
    """Characters a terminal obeys or hides (line feeds between lines are the printer's own)."""
    bad = []
    for line in text.split("\n"):
        for ch in line:
            if unicodedata.category(ch) in {"Cc", "Cf", "Zl", "Zp"}:
                bad.append(ch)
    return bad


def _peer_names(home: Home) -> list[str]:
    return [str(p["name"]) for p in cli_json(home.path, "peers")["peers"]]


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[tuple[Home, Home]]:
    """Alice's daemon (set up with the CLI) and a stranger's daemon dialling it."""
    alice = Home(tmp_path / "alice")
    assert cli(alice.path, "init", "--name", "alice", "--kdf", "interactive").returncode == 0
    stranger = Home(tmp_path / "stranger")
    stranger.create_identity("stranger", PASS, KdfProfile.INTERACTIVE)
    procs: list[subprocess.Popen[bytes]] = []
    logs = []
    try:
        port = free_port()
        for home, dial in ((alice, False), (stranger, True)):
            args = ["--lan-host", "127.0.0.1", "--no-mdns"]
            args += ["--peer", f"127.0.0.1:{port}"] if dial else ["--lan-port", str(port)]
            log = (tmp_path / f"{home.path.name}.log").open("wb")
            logs.append(log)
            command = ["-m", "meshchat.cli.main"] if home is alice else ["-c", STRANGER]
            procs.append(
                subprocess.Popen(
                    [sys.executable, *command, "--home", str(home.path), "daemon", *args],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=cli_env(PASS),
                    stdin=subprocess.DEVNULL,
                )
            )
            eventually(home.control_socket.exists)
        eventually(lambda: _peer_names(alice) == [FORGED_NAME])
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


def test_a_strangers_name_and_text_cannot_steer_the_terminal(
    daemons: tuple[Home, Home], tmp_path: Path
) -> None:
    alice, stranger = daemons
    sent = cli(stranger.path, "send", "#mesh", "-", stdin=FORGED_TEXT)
    assert sent.returncode == 0, sent.stderr
    eventually(lambda: len(cli_json(alice.path, "log", "#mesh")["messages"]) == 1)

    # --json keeps the exact values.
    (message,) = cli_json(alice.path, "log", "#mesh")["messages"]
    assert message["text"] == FORGED_TEXT
    assert message["sender_name"] == "~" + FORGED_NAME

    shown = cli(alice.path, "log", "#mesh")
    assert shown.returncode == 0, shown.stderr
    assert terminal_controls(shown.stdout) == []
    lines = shown.stdout.splitlines()
    assert len(lines) == 1  # one message, one line: no forged line "from alice"
    assert "<~\\x08\\x08\\x08alice\\x1b[2K>" in lines[0]  # the stranger mark stays visible
    assert "<alice>" in lines[0] and lines[0].count("<") == 2

    peers = cli(alice.path, "peers")
    assert peers.returncode == 0, peers.stderr
    assert terminal_controls(peers.stdout) == []
    (peer_line,) = [line for line in peers.stdout.splitlines() if "alice" in line]
    assert "~\\x08\\x08\\x08alice" in peer_line  # a stranger, marked as `log` marks them

    # With the node running, our card comes from it (nothing about us is kept in clear).
    assert cli_json(alice.path, "id")["name"] == "alice"
    assert not alice.card.exists()

    # The daemon's log gives the hop count only as the relays' unsigned claim.
    log = (tmp_path / "alice.log").read_text()
    assert "received" in log and "in #mesh" in log
    assert re.search(r"relays claim \d+ hops \(unsigned\)", log)
    assert not re.search(r"#mesh, \d+ hops", log)


def test_with_the_node_running_a_lookalike_is_refused_and_peers_mark_strangers(
    daemons: tuple[Home, Home],
) -> None:
    alice, _ = daemons
    fake_me = Identity.generate().card("\u0430lice").to_text()  # a Cyrillic a
    refused = cli(alice.path, "contacts", "add", fake_me)
    assert refused.returncode == 1 and "LOOK-ALIKE" in refused.stderr
    assert cli_json(alice.path, "contacts", "list") == []
    added = cli(alice.path, "contacts", "add", fake_me, "--allow-lookalike")
    assert added.returncode == 0, added.stderr
    listed = cli(alice.path, "contacts", "list")
    assert "\u0430lice (!! looks like alice)" in listed.stdout
    (peer,) = cli_json(alice.path, "peers")["peers"]
    assert peer["contact"] is None  # the stranger is still no contact
