"""``meshchat play`` and ``send-voice`` from a shell, on a machine with no sound card and no
microphone (this one, and CI): play writes a WAV file of the note's length and says where;
recording says "no microphone"; a file that is not audio is one clear error line."""

from __future__ import annotations

from pathlib import Path

import pytest
from clirun import cli_env, run_cli

from meshchat.voice import encode_file, pcm_from_wav
from tests.voice.speech import speak


@pytest.fixture(scope="module")
def note(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    folder = tmp_path_factory.mktemp("note")
    wav = speak(folder / "speech.wav", "Meet at the north gate at six.")
    encoded = encode_file(wav)
    path = folder / "note.ogg"
    path.write_bytes(encoded.data)
    return path, encoded.duration


@pytest.fixture(autouse=True)
def no_sound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MESHCHAT_NO_SOUND", "1")
    assert cli_env("x")["MESHCHAT_NO_SOUND"] == "1"


def test_play_without_a_sound_card_writes_a_wav_beside_the_note(
    tmp_path: Path, note: tuple[Path, float]
) -> None:
    path, duration = note
    result = run_cli(tmp_path / "home", "pw", "play", str(path))
    assert result.returncode == 0, result.stderr
    wav = path.with_suffix(".wav")
    assert result.stdout.strip() == f"no sound card: wrote {duration:.1f} s to {wav}"
    played = pcm_from_wav(wav.read_bytes())
    assert abs(played.duration - duration) <= 0.05 * duration
    again = run_cli(tmp_path / "home", "pw", "play", str(path), "--json")
    assert again.returncode == 0, again.stderr
    assert '"wav": "' + str(path.with_name("note-1.wav")) in again.stdout


def test_play_out_writes_where_asked(tmp_path: Path, note: tuple[Path, float]) -> None:
    out = tmp_path / "here.wav"
    result = run_cli(tmp_path / "home", "pw", "play", str(note[0]), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("wrote ")
    assert out.exists()


def test_play_of_something_that_is_not_a_voice_note_is_one_error_line(tmp_path: Path) -> None:
    fake = tmp_path / "fake.ogg"
    fake.write_bytes(b"#!/bin/sh\necho not a voice note\n")
    result = run_cli(tmp_path / "home", "pw", "play", str(fake))
    assert result.returncode == 1
    assert result.stderr == "meshchat: error: not an Ogg file\n"
    assert not fake.with_suffix(".wav").exists()


def test_send_voice_record_without_a_microphone(tmp_path: Path) -> None:
    result = run_cli(tmp_path / "home", "pw", "send-voice", "alice", "--record", "3")
    assert result.returncode == 1
    assert result.stderr == "meshchat: error: no microphone\n"


def test_send_voice_of_a_file_that_is_not_audio(tmp_path: Path) -> None:
    text = tmp_path / "list.txt"
    text.write_text("milk\neggs\n" * 100)
    result = run_cli(tmp_path / "home", "pw", "send-voice", "alice", "--file", str(text))
    assert result.returncode == 1
    assert result.stderr.startswith(f"meshchat: error: {text} is not audio")
    assert not (tmp_path / "home" / "voice").exists() or not any(
        (tmp_path / "home" / "voice").iterdir()
    )
