"""The sound card and the microphone, where there are any (``sounddevice`` over PortAudio).

``sounddevice`` is imported only when sound is played or recorded, and a machine without
PortAudio, without a sound card or without a microphone is not an error to crash on:
:func:`play` then writes a WAV file and says where, and :func:`record` raises
:class:`VoiceError` (``NO_MICROPHONE``) with the plain message "no microphone".
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from meshchat.errors import VoiceError, VoiceReason
from meshchat.voice.params import ENCODE_RATE, MAX_SECONDS
from meshchat.voice.pcm import Pcm, wav_bytes

__all__ = [
    "Played",
    "check_microphone",
    "input_stream",
    "output_stream",
    "play",
    "record",
    "write_wav",
]


@dataclass(frozen=True, slots=True)
class Played:
    """Where a note went: ``device`` names the sound card it played on, or ``wav`` is the file
    it was written to instead (``why`` says why it was not played)."""

    device: str | None = None
    wav: Path | None = None
    why: str = ""


def _sounddevice() -> ModuleType | None:
    """The ``sounddevice`` module, or None where it or PortAudio is missing."""
    if os.environ.get("MESHCHAT_NO_SOUND"):
        return None
    try:
        import sounddevice
    except (ImportError, OSError):  # OSError: "PortAudio library not found"
        return None
    module: ModuleType = sounddevice
    return module


def _device_name(sd: ModuleType, kind: str) -> str | None:
    """The default device of ``kind`` ("input" or "output"), or None when there is none."""
    try:
        info = sd.query_devices(kind=kind)
    except Exception:  # sounddevice.PortAudioError and ValueError when there is none
        return None
    name = info.get("name") if isinstance(info, dict) else None
    return str(name) if name else None


def write_wav(pcm: Pcm, path: Path) -> Path:
    """Write ``pcm`` as a WAV file at ``path``, never over an existing file (mode 0600)."""
    data = wav_bytes(pcm)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    return path


def play(pcm: Pcm, fallback: Path) -> Played:
    """Play ``pcm`` on the default sound card and wait until it ends; without one, write it
    as a WAV file at ``fallback`` instead."""
    sd = _sounddevice()
    name = _device_name(sd, "output") if sd is not None else None
    if sd is None or name is None:
        return Played(wav=write_wav(pcm, fallback), why="no sound card")
    try:
        with sd.RawOutputStream(samplerate=pcm.rate, channels=1, dtype="int16") as stream:
            stream.write(pcm.samples)
    except Exception as exc:  # the card went away or refused the format: keep the sound
        return Played(wav=write_wav(pcm, fallback), why=f"the sound card failed: {exc}")
    return Played(device=name)


def record(seconds: float) -> Pcm:
    """``seconds`` of sound from the default microphone (mono, at the encode rate)."""
    if not 0 < seconds <= MAX_SECONDS:
        raise VoiceError(VoiceReason.TOO_LONG, f"record for 0 to {MAX_SECONDS} seconds")
    sd = _sounddevice()
    if sd is None or _device_name(sd, "input") is None:
        raise VoiceError(VoiceReason.NO_MICROPHONE, "no microphone")
    try:
        with sd.RawInputStream(samplerate=ENCODE_RATE, channels=1, dtype="int16") as stream:
            recording, _overflowed = stream.read(round(seconds * ENCODE_RATE))
    except Exception as exc:  # sounddevice.PortAudioError: the microphone went away
        raise VoiceError(VoiceReason.NO_MICROPHONE, f"the microphone failed: {exc}") from exc
    return Pcm(bytes(recording), ENCODE_RATE)


def output_stream(rate: int) -> tuple[object, str] | None:
    """An open, started output stream of mono 16-bit samples at ``rate`` on the default
    sound card and the card's name (for live sound, written to as it comes); None where
    there is no sound card (or ``MESHCHAT_NO_SOUND`` is set)."""
    sd = _sounddevice()
    name = _device_name(sd, "output") if sd is not None else None
    if sd is None or name is None:
        return None
    try:
        stream = sd.RawOutputStream(samplerate=rate, channels=1, dtype="int16", latency="low")
        stream.start()
    except Exception:  # the card refused the format or went away: the caller writes a WAV
        return None
    return stream, name


def check_microphone() -> None:
    """Raise :class:`VoiceError` (``NO_MICROPHONE``) unless there is a default microphone."""
    sd = _sounddevice()
    if sd is None or _device_name(sd, "input") is None:
        raise VoiceError(VoiceReason.NO_MICROPHONE, "no microphone")


def input_stream(rate: int) -> object:
    """An open, started input stream of mono 16-bit samples at ``rate`` from the default
    microphone; :class:`VoiceError` (``NO_MICROPHONE``) where there is none."""
    sd = _sounddevice()
    if sd is None or _device_name(sd, "input") is None:
        raise VoiceError(VoiceReason.NO_MICROPHONE, "no microphone")
    try:
        stream = sd.RawInputStream(samplerate=rate, channels=1, dtype="int16", latency="low")
        stream.start()
    except Exception as exc:  # sounddevice.PortAudioError: the microphone went away
        raise VoiceError(VoiceReason.NO_MICROPHONE, f"the microphone failed: {exc}") from exc
    return stream
