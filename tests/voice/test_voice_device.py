"""Playing and recording on a machine without a sound card or microphone (as here and in
CI): play writes a WAV file and says where, record says "no microphone"."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from meshchat.errors import VoiceError, VoiceReason
from meshchat.voice import Pcm, pcm_from_wav, play, record, wav_bytes
from meshchat.voice.device import write_wav

TONE = Pcm(bytes(range(256)) * 100, 48_000)


@pytest.fixture(autouse=True)
def no_sound(monkeypatch: pytest.MonkeyPatch) -> None:
    # a developer's machine may have a sound card; this machine and CI have none
    monkeypatch.setenv("MESHCHAT_NO_SOUND", "1")


def test_without_a_sound_card_play_writes_a_wav(tmp_path: Path) -> None:
    played = play(TONE, tmp_path / "note.wav")
    assert played.device is None
    assert played.wav == tmp_path / "note.wav"
    assert played.why == "no sound card"
    assert pcm_from_wav(played.wav.read_bytes()) == TONE
    assert played.wav.stat().st_mode & 0o777 == 0o600


def test_play_never_writes_over_a_file(tmp_path: Path) -> None:
    (tmp_path / "note.wav").write_bytes(b"mine")
    with pytest.raises(FileExistsError):
        write_wav(TONE, tmp_path / "note.wav")
    assert (tmp_path / "note.wav").read_bytes() == b"mine"


def test_without_a_microphone_record_says_so() -> None:
    with pytest.raises(VoiceError, match=r"^no microphone$") as caught:
        record(3)
    assert caught.value.reason is VoiceReason.NO_MICROPHONE


def test_record_refuses_a_length_out_of_bounds() -> None:
    for seconds in (0, -1, 301):
        with pytest.raises(VoiceError) as caught:
            record(seconds)
        assert caught.value.reason is VoiceReason.TOO_LONG


def test_portaudio_missing_is_no_device_not_a_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the override, this machine's real state: sounddevice finds no PortAudio (or no
    device), and both paths fail softly."""
    monkeypatch.delenv("MESHCHAT_NO_SOUND")
    played = play(TONE, tmp_path / "real.wav")
    if played.device is None:  # no sound card: the WAV path
        assert played.wav is not None
        assert played.wav.exists()
        with pytest.raises(VoiceError, match="no microphone"):
            record(1)
    else:
        assert os.environ.get("CI") != "true"


def test_wav_round_trip() -> None:
    assert pcm_from_wav(wav_bytes(TONE)) == TONE
    with pytest.raises(VoiceError):
        pcm_from_wav(b"RIFF not really")


def test_a_kept_note_is_named_by_its_length(tmp_path: Path) -> None:
    from meshchat.voice import VoiceNote
    from meshchat.voice.saved import keep_note, note_name

    assert note_name(7.04) == "voice-7s.ogg"
    assert note_name(0.2) == "voice-1s.ogg"
    assert note_name(125.4) == "voice-2m05s.ogg"
    first = keep_note(tmp_path / "voice", VoiceNote(b"OggS one", 7.0))
    second = keep_note(tmp_path / "voice", VoiceNote(b"OggS two", 7.2))
    assert (first.name, second.name) == ("voice-7s.ogg", "voice-7s-1.ogg")
    assert first.read_bytes() == b"OggS one"
    assert first.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "voice").stat().st_mode & 0o777 == 0o700
