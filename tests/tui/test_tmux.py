"""``meshchat run`` in a real terminal: tmux drives the keys and reads the screen.

Each test starts its own tmux server (``tmux -L <unique socket>``) and its own nodes with
homes in a temporary folder; mDNS and TCP stay on 127.0.0.1. Everything is stopped in a
``finally``.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

MESHCHAT = Path(sys.executable).parent / "meshchat"
PASSPHRASE = "tmux test passphrase"
LOOPBACK = ["--mdns-interface", "127.0.0.1", "--lan-host", "127.0.0.1"]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux"),
]


def base_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESHCHAT_")}
    env.update(LANG="C.UTF-8", LC_ALL="C.UTF-8", MESHCHAT_KDF="interactive", **extra)
    return env


def cli(home: Path, *args: str) -> str:
    done = subprocess.run(
        [str(MESHCHAT), "--home", str(home), *args],
        env=base_env(MESHCHAT_PASSPHRASE=PASSPHRASE),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, f"meshchat {' '.join(args)} failed: {done.stderr}"
    return done.stdout


def init_home(home: Path, name: str) -> dict[str, str]:
    cli(home, "init", "--name", name, "--kdf", "interactive", "--json")
    ident: dict[str, str] = json.loads(cli(home, "id", "--json"))
    return ident


def wait_until(
    what: str, predicate: Callable[[], bool], timeout: float = 30.0, show: Callable[[], str] = str
) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}\n{show()}")
        time.sleep(0.1)


class Tmux:
    """One tmux server on a socket of its own, with one session."""

    def __init__(self) -> None:
        self.socket = f"meshchat-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.session = "chat"
        self.socket_path: Path | None = None

    def tmux(self, *args: str, check: bool = True) -> str:
        done = subprocess.run(
            ["tmux", "-L", self.socket, *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
            env=base_env(),
        )
        if check:
            assert done.returncode == 0, f"tmux {args[0]} failed: {done.stderr}"
        return done.stdout

    def start(self, command: str, cols: int = 160, rows: int = 48, session: str = "chat") -> None:
        self.session = session
        # The shell prints the exit status and keeps the pane, so the test can read it.
        shell = f'{command}; echo "[exit status $?]"; sleep 600'
        self.tmux("new-session", "-d", "-s", self.session, "-x", str(cols), "-y", str(rows), shell)
        if self.socket_path is None:
            self.socket_path = Path(self.tmux("display-message", "-p", "#{socket_path}").strip())

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", self.session)

    def type(self, text: str, enter: bool = True) -> None:
        self.tmux("send-keys", "-t", self.session, "-l", text)
        if enter:
            self.tmux("send-keys", "-t", self.session, "Enter")

    def key(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", self.session, *keys)

    def exit_status(self) -> int | None:
        """The program's exit status once it has ended, else None."""
        found = re.search(r"\[exit status (\d+)\]", self.screen())
        return int(found.group(1)) if found else None

    def ended(self) -> bool:
        return self.exit_status() is not None

    def wait_for(self, text: str, timeout: float = 30.0) -> str:
        screens: list[str] = []

        def shown() -> bool:
            screens.append(self.screen())
            return text in screens[-1]

        try:
            wait_until(repr(text), shown, timeout)
        except AssertionError:
            raise AssertionError(f"{text!r} never shown; last screen:\n{screens[-1]}") from None
        return screens[-1]

    def kill(self) -> None:
        self.tmux("kill-server", check=False)
        if self.socket_path is not None:
            self.socket_path.unlink(missing_ok=True)  # tmux leaves its socket file behind


def run_command(home: Path, *, passphrase: str | None, args: list[str]) -> str:
    env = "env LANG=C.UTF-8 LC_ALL=C.UTF-8 MESHCHAT_KDF=interactive"
    if passphrase is not None:
        env += f" MESHCHAT_PASSPHRASE={shlex.quote(passphrase)}"
    command = [str(MESHCHAT), "--home", str(home), "run", *args]
    return f"{env} {shlex.join(command)}"


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    session = Tmux()
    try:
        yield session
    finally:
        session.kill()


def test_chat_with_a_daemon_over_the_lan(tmp_path: Path, tmux: Tmux) -> None:
    home_a, home_b = tmp_path / "a", tmp_path / "b"
    alice = init_home(home_a, "alice")
    bob = init_home(home_b, "bob")
    cli(home_a, "contacts", "add", bob["card"])
    cli(home_b, "contacts", "add", alice["card"])
    daemon_log = (tmp_path / "daemon.log").open("w")
    daemon = subprocess.Popen(
        [str(MESHCHAT), "--home", str(home_b), "daemon", *LOOPBACK],
        env=base_env(MESHCHAT_PASSPHRASE=PASSPHRASE),
        stdout=subprocess.DEVNULL,
        stderr=daemon_log,
    )
    try:
        wait_until("bob's node", (home_b / "control.sock").exists)
        tmux.start(run_command(home_a, passphrase=PASSPHRASE, args=LOOPBACK))
        screen = tmux.wait_for("[#mesh]>")
        assert f"alice {alice['node_id'][:8]}" in screen and "▸ #mesh" in screen
        screen = tmux.wait_for(f"lan {bob['node_id'][:8]} bob")
        # Other nodes on this host's loopback may be linked too; bob at least is.
        assert re.search(r" [1-9]\d* links? ", screen.splitlines()[0])

        tmux.type("/msg bob hello from tmux")

        def bob_has_it() -> bool:
            log = json.loads(cli(home_b, "log", "alice", "--json"))
            return [m["text"] for m in log["messages"]] == ["hello from tmux"]

        wait_until("bob to receive the message", bob_has_it)
        screen = tmux.wait_for("✓✓ alice: hello from tmux")
        assert f"bob ({bob['node_id'][:8]})" in screen and "[bob]>" in screen

        cli(home_b, "send", "alice", "hi back")
        tmux.wait_for("bob: hi back")
        # the header says what status says: no Bluetooth adapter on this machine (BLE is on
        # by default), and nothing waiting in the outbox
        screen = tmux.wait_for("0 queued")
        header = screen.splitlines()[0]
        assert " ble: no adapter" in header, header
        assert re.search(r" 0 queued \d+ carried", header), header  # carried: what it relays

        tmux.key("C-q")
        wait_until("meshchat run to quit", tmux.ended, show=tmux.screen)
        assert tmux.exit_status() == 0
        assert not (home_a / "control.sock").exists()  # the node was stopped, not killed
    finally:
        daemon.terminate()
        daemon.wait(timeout=10)
        daemon_log.close()


def test_fresh_home_is_walked_through_onboarding_then_unlocks(tmp_path: Path, tmux: Tmux) -> None:
    home = tmp_path / "fresh"
    tmux.start(run_command(home, passphrase=None, args=["--no-lan"]), cols=120, rows=40)
    tmux.wait_for("Welcome to meshchat")
    tmux.type("carol")
    tmux.type("first secret")
    tmux.type("first secreT")
    tmux.wait_for("the two passphrases differ")
    tmux.type("first secret")
    tmux.type("first secret")
    screen = tmux.wait_for("[#mesh]>")
    ident = json.loads(cli(home, "id", "--json"))
    assert ident["name"] == "carol"
    assert f"carol {ident['node_id'][:8]}" in screen and "▸ #mesh" in screen
    assert "first secret" not in screen
    tmux.key("C-c")
    wait_until("meshchat run to quit", tmux.ended, show=tmux.screen)
    assert tmux.exit_status() == 0

    # The identity exists now: the passphrase is asked, and a wrong one asked again.
    command = run_command(home, passphrase=None, args=["--no-lan"])
    tmux.start(command, cols=120, rows=40, session="unlock")
    tmux.wait_for("Unlock your identity")
    tmux.type("not it")
    tmux.wait_for("wrong passphrase")
    tmux.type("first secret")
    tmux.wait_for(f"carol {ident['node_id'][:8]}")
    tmux.type("/quit")
    wait_until("meshchat run to quit", tmux.ended, show=tmux.screen)
    assert tmux.exit_status() == 0
