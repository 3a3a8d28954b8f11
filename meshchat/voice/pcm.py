"""Raw audio between the codec and the sound card or a WAV file: mono 16-bit little-endian
samples at one rate. Pure (the WAV bytes are built and parsed in memory)."""

from __future__ import annotations

import io
import wave
from dataclasses import dataclass

from meshchat.errors import VoiceError, VoiceReason

__all__ = ["SAMPLE_BYTES", "Pcm", "pcm_from_wav", "wav_bytes"]

SAMPLE_BYTES = 2


@dataclass(frozen=True, slots=True)
class Pcm:
    """Mono signed 16-bit little-endian samples at ``rate`` samples per second."""

    samples: bytes
    rate: int

    def __post_init__(self) -> None:
        if type(self.rate) is not int or not 8_000 <= self.rate <= 192_000:
            raise ValueError(f"sample rate {self.rate!r} not within 8000..192000")
        if len(self.samples) % SAMPLE_BYTES:
            raise ValueError("a partial sample")

    @property
    def frames(self) -> int:
        return len(self.samples) // SAMPLE_BYTES

    @property
    def duration(self) -> float:
        """Seconds of sound."""
        return self.frames / self.rate


def wav_bytes(pcm: Pcm) -> bytes:
    """``pcm`` as a WAV file (RIFF, PCM 16-bit mono)."""
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(SAMPLE_BYTES)
        wav.setframerate(pcm.rate)
        wav.writeframes(pcm.samples)
    return out.getvalue()


def pcm_from_wav(data: bytes) -> Pcm:
    """The samples of a mono 16-bit WAV file such as :func:`wav_bytes` writes; anything else
    raises :class:`VoiceError` (``NOT_AUDIO``). Other WAV files go through the encoder's
    reader, which converts."""
    try:
        with wave.open(io.BytesIO(data), "rb") as wav:
            if wav.getnchannels() != 1 or wav.getsampwidth() != SAMPLE_BYTES:
                raise VoiceError(VoiceReason.NOT_AUDIO, "not a mono 16-bit WAV file")
            return Pcm(wav.readframes(wav.getnframes()), wav.getframerate())
    except (wave.Error, EOFError, ValueError) as exc:
        raise VoiceError(VoiceReason.NOT_AUDIO, f"not a WAV file: {exc}") from exc
