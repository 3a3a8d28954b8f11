"""Push-to-talk between two real daemons on loopback TCP, through the command line only:
``talk --file`` sends espeak-ng speech live; the listening daemon (no sound card) writes what
it heard as a WAV file of the same length, which ``talks`` lists."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from meshchat.home import Home
from meshchat.voice import pcm_from_wav, read_audio
from tests.cli.test_cli_voice_daemons import cli, cli_json, eventually
from tests.cli.test_cli_voice_daemons import pair as pair  # noqa: PLC0414 - the fixture
from tests.voice.speech import speak


def test_talk_from_a_file_is_heard_and_written_as_a_wav(
    pair: tuple[Home, Home, Callable[[], None]], tmp_path: Path
) -> None:
    alice, bob, _ = pair
    wav = speak(tmp_path / "speech.wav", "North gate. Now.")
    seconds = read_audio(wav).duration
    said = cli(alice.path, "talk", "Bob", "--file", str(wav), "--json")
    assert said.returncode == 0, said.stderr
    talk = json.loads(said.stdout)
    assert abs(talk["seconds"] - seconds) <= 0.03

    def heard() -> bool:
        return any(t["ended"] for t in cli_json(bob.path, "talks"))

    eventually(heard, timeout=10)
    (got,) = cli_json(bob.path, "talks")
    assert got["talk_id"] == talk["talk_id"] and got["device"] is None
    assert got["sender"] == cli_json(alice.path, "id")["node_id"]
    decoded = pcm_from_wav(Path(got["wav"]).read_bytes())
    assert abs(decoded.duration - seconds) <= 0.05 * seconds
    plain = cli(bob.path, "talks")
    assert plain.returncode == 0 and got["wav"] in plain.stdout

    nobody = cli(alice.path, "talk", "#mesh", "--file", str(wav))
    assert nobody.returncode != 0 and "contact" in nobody.stderr

    nomic = cli(alice.path, "talk", "Bob", "--seconds", "1")
    assert nomic.returncode != 0 and "no microphone" in nomic.stderr
