"""What send-voice may read: any audio file FFmpeg knows, and nothing that is not audio."""

from __future__ import annotations

import subprocess
import zlib
from pathlib import Path

import pytest

from meshchat.errors import VoiceError, VoiceReason
from meshchat.voice import decode, encode_file, read_audio
from meshchat.voice.params import ENCODE_RATE
from tests.voice.speech import speak


def _png() -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body).to_bytes(4, "big")
        return len(body).to_bytes(4, "big") + kind + body + crc

    header = (8).to_bytes(4, "big") * 2 + b"\x08\x02\x00\x00\x00"
    pixels = zlib.compress(b"".join(b"\x00" + b"\xff\x00\x00" * 8 for _ in range(8)))
    body = chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("notes.txt", b"Shopping list\nmilk\neggs\n" * 50),
        ("photo.png", _png()),
        ("random.wav", bytes(range(256)) * 40),
        ("empty.wav", b""),
    ],
)
def test_a_file_that_is_not_audio_is_refused(tmp_path: Path, name: str, data: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(VoiceError) as caught:
        encode_file(path)
    assert caught.value.reason in {VoiceReason.NOT_AUDIO, VoiceReason.EMPTY}


def test_a_folder_or_a_missing_file_is_refused(tmp_path: Path) -> None:
    for path in (tmp_path, tmp_path / "missing.wav", tmp_path / "nul\x00.wav"):
        with pytest.raises(VoiceError) as caught:
            encode_file(path)
        assert caught.value.reason is VoiceReason.NOT_AUDIO


def test_other_formats_and_rates_are_converted(tmp_path: Path) -> None:
    """espeak-ng speaks 22050 Hz mono; a stereo 44.1 kHz FLAC made from it reads the same."""
    wav = speak(tmp_path / "s.wav", "Meet at the north gate at six.")
    flac = tmp_path / "s.flac"
    import av

    with av.open(str(wav)) as src, av.open(str(flac), "w") as dst:
        stream = dst.add_stream("flac", rate=44_100, layout="stereo")
        resampler = av.AudioResampler(format="s16", layout="stereo", rate=44_100)
        for frame in src.decode(audio=0):
            for out in resampler.resample(frame):
                dst.mux(stream.encode(out))
        dst.mux(stream.encode(None))
    mono, stereo = read_audio(wav), read_audio(flac)
    assert mono.rate == stereo.rate == ENCODE_RATE
    assert abs(mono.duration - stereo.duration) < 0.05
    assert abs(decode(encode_file(flac).data).duration - mono.duration) < 0.05


def test_a_file_too_long_for_a_note_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "long.wav"
    subprocess.run(  # 301 s of silence at 8 kHz, written by the stdlib
        [
            "python3",
            "-c",
            "import wave,sys; w=wave.open(sys.argv[1],'wb'); w.setnchannels(1);"
            "w.setsampwidth(2); w.setframerate(8000); w.writeframes(bytes(301*8000*2))",
            str(path),
        ],
        check=True,
    )
    with pytest.raises(VoiceError) as caught:
        encode_file(path)
    assert caught.value.reason is VoiceReason.TOO_LONG
