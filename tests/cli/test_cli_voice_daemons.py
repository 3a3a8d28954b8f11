"""A voice note between two real daemons on loopback TCP, through the command line only:
``send-voice`` from an espeak-ng WAV, the note arrives, ``play`` (no sound card here) writes a
WAV file of the right length."""

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

from meshchat.home import Home
from meshchat.voice import pcm_from_wav, read_audio
from tests.voice.speech import speak

PASS = "voice daemon passphrase"


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
def pair(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Home, Home, Callable[[], None]]]:
    monkeypatch.setenv("MESHCHAT_NO_SOUND", "1")  # and this machine has no sound card anyway
    homes = [Home(tmp_path / name) for name in ("alice", "bob")]
    for home, name in zip(homes, ("Alice", "Bob"), strict=True):
        assert cli(home.path, "init", "--name", name, "--kdf", "interactive").returncode == 0
    cards = [cli_json(h.path, "id")["card"] for h in homes]
    assert cli(homes[0].path, "contacts", "add", cards[1]).returncode == 0
    assert cli(homes[1].path, "contacts", "add", cards[0]).returncode == 0
    # a note from a verified contact is taken without asking
    assert cli(homes[1].path, "verify", "Alice", "--yes", "--no-qr").returncode == 0
    ports = [free_port(), free_port()]
    daemons, logs = [], []
    for i, home in enumerate(homes):
        args = ["--lan-host", "127.0.0.1", "--lan-port", str(ports[i]), "--no-mdns", "--no-ble"]
        if i == 0:
            args += ["--peer", f"127.0.0.1:{ports[1]}"]
        log = (tmp_path / f"{home.path.name}.log").open("wb")
        logs.append(log)
        command = [sys.executable, "-m", "meshchat.cli.main", "--home", str(home.path), "daemon"]
        daemons.append(
            subprocess.Popen(
                [*command, *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=cli_env(PASS),
                stdin=subprocess.DEVNULL,
            )
        )

    def stop() -> None:
        for daemon in daemons:
            daemon.terminate()
        for daemon in daemons:
            try:
                daemon.wait(timeout=10)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()

    try:
        for home in homes:
            eventually(home.control_socket.exists)
        eventually(lambda: len(cli_json(homes[0].path, "peers")["peers"]) == 1)
        yield homes[0], homes[1], stop
    finally:
        stop()
        for log in logs:
            log.close()


def test_send_voice_receive_and_play_writes_a_wav_of_the_right_length(
    pair: tuple[Home, Home, Callable[[], None]], tmp_path: Path
) -> None:
    alice, bob, stop_daemons = pair
    wav = speak(tmp_path / "speech.wav", "The north gate at six. Bring water and the map.")
    seconds = read_audio(wav).duration
    sent = cli(alice.path, "send-voice", "Bob", "--file", str(wav))
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout.startswith(f"voice note {seconds:.1f} s, "), sent.stdout
    (kept,) = alice.voice_notes.iterdir()
    assert os.stat(kept).st_mode & 0o777 == 0o600

    def arrived() -> bool:
        return any(
            t["kind"] == "voice" and t["state"] == "done"
            for t in cli_json(bob.path, "transfers")["transfers"]
        )

    eventually(arrived)
    (note,) = [t for t in cli_json(bob.path, "transfers")["transfers"] if t["kind"] == "voice"]
    assert note["media_type"] == "audio/ogg"
    # the message id as 'meshchat log' shows it: its first 8 hex digits
    played = cli(bob.path, "play", note["msg_id"][:8])
    assert played.returncode == 0, played.stderr
    out = Path(note["path"]).with_suffix(".wav")
    assert played.stdout.strip() == f"no sound card: wrote {seconds:.1f} s to {out}"
    decoded = pcm_from_wav(out.read_bytes())
    assert abs(decoded.duration - seconds) <= 0.05 * seconds
    # the sender can play its own note back by the same id
    mine = cli(alice.path, "play", note["msg_id"][:8], "--out", str(tmp_path / "mine.wav"))
    assert mine.returncode == 0, mine.stderr
    assert abs(pcm_from_wav((tmp_path / "mine.wav").read_bytes()).duration - seconds) < 0.1

    # with the daemon stopped, play finds the note in the transfers it kept
    stop_daemons()
    assert not bob.control_socket.exists()
    offline = cli(bob.path, "play", note["msg_id"][:8], "--out", str(tmp_path / "later.wav"))
    assert offline.returncode == 0, offline.stderr
    assert abs(pcm_from_wav((tmp_path / "later.wav").read_bytes()).duration - seconds) < 0.1


def test_send_voice_without_a_running_node_says_so(tmp_path: Path) -> None:
    home = tmp_path / "carol"
    assert cli(home, "init", "--name", "Carol", "--kdf", "interactive").returncode == 0
    wav = speak(tmp_path / "s.wav", "hello")
    result = cli(home, "send-voice", "Bob", "--file", str(wav))
    assert result.returncode == 1
    assert "needs the running node" in result.stderr
    assert not any(Home(home).voice_notes.iterdir())
