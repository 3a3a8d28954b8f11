"""Making a voice note: audio in (any file FFmpeg reads, or recorded samples), Ogg/Opus out.

The source is a local file the person chose (or the microphone), so FFmpeg may probe it as any
format it knows; what is not audio is refused with :class:`VoiceError` (``NOT_AUDIO``), and so
is a file over :data:`~meshchat.voice.params.MAX_SOURCE_BYTES` or longer than
:data:`~meshchat.voice.params.MAX_SECONDS` (``TOO_LARGE``, ``TOO_LONG``): a note is never cut
short without saying so. FFmpeg's errors are translated here, at the boundary.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import av.error

from meshchat.errors import VoiceError, VoiceReason
from meshchat.voice.params import (
    BITRATE,
    ENCODE_RATE,
    FRAME_MS,
    MAX_SECONDS,
    MAX_SOURCE_BYTES,
)
from meshchat.voice.pcm import SAMPLE_BYTES, Pcm

__all__ = ["VoiceNote", "encode_file", "encode_pcm", "read_audio"]

#: Samples per frame handed to the encoder (one Opus frame).
_FRAME_SAMPLES = ENCODE_RATE * FRAME_MS // 1000


@dataclass(frozen=True, slots=True)
class VoiceNote:
    """An encoded voice note: the Ogg/Opus bytes and the seconds of sound they hold."""

    data: bytes
    duration: float

    @property
    def bytes_per_second(self) -> float:
        return len(self.data) / self.duration if self.duration else 0.0


def _too_long() -> VoiceError:
    return VoiceError(VoiceReason.TOO_LONG, f"longer than {MAX_SECONDS} s")


def _resampled(container: av.container.InputContainer, path: Path) -> Iterator[bytes]:
    """The first audio stream of ``container`` as mono 16-bit samples at the encode rate."""
    if not container.streams.audio:
        raise VoiceError(VoiceReason.NOT_AUDIO, f"{path} is not audio (no sound in it)")
    stream = container.streams.audio[0]
    resampler = av.AudioResampler(format="s16", layout="mono", rate=ENCODE_RATE)
    for frame in container.decode(stream):
        for out in resampler.resample(frame):
            yield bytes(out.planes[0])[: out.samples * SAMPLE_BYTES]
    for out in resampler.resample(None):
        yield bytes(out.planes[0])[: out.samples * SAMPLE_BYTES]


def read_audio(path: Path) -> Pcm:
    """The sound of the audio file at ``path``, as mono samples at the encode rate."""
    try:
        size = path.stat().st_size
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the name
        why = exc.strerror if isinstance(exc, OSError) else exc
        raise VoiceError(VoiceReason.NOT_AUDIO, f"cannot read {path}: {why}") from exc
    if not path.is_file():
        raise VoiceError(VoiceReason.NOT_AUDIO, f"{path} is not a file")
    if size > MAX_SOURCE_BYTES:
        raise VoiceError(VoiceReason.TOO_LARGE, f"{path} is over {MAX_SOURCE_BYTES} bytes")
    limit = (MAX_SECONDS * ENCODE_RATE + _FRAME_SAMPLES) * SAMPLE_BYTES
    samples = bytearray()
    try:
        with av.open(os.fspath(path), "r") as container:
            for chunk in _resampled(container, path):
                samples += chunk
                if len(samples) > limit:
                    raise _too_long()
    except (av.error.FFmpegError, ValueError, OSError) as exc:
        raise VoiceError(VoiceReason.NOT_AUDIO, f"{path} is not audio ({exc})") from exc
    if not samples:
        raise VoiceError(VoiceReason.EMPTY, f"{path} holds no sound")
    return Pcm(bytes(samples), ENCODE_RATE)


def _frames(pcm: Pcm) -> Iterator[av.AudioFrame]:
    step = _FRAME_SAMPLES * SAMPLE_BYTES
    resampler = av.AudioResampler(format="s16", layout="mono", rate=ENCODE_RATE)
    for start in range(0, len(pcm.samples), step):
        part = pcm.samples[start : start + step]
        frame = av.AudioFrame(format="s16", layout="mono", samples=len(part) // SAMPLE_BYTES)
        frame.planes[0].update(part)
        frame.rate = pcm.rate
        frame.pts = start // SAMPLE_BYTES
        yield from resampler.resample(frame)
    yield from resampler.resample(None)


def encode_pcm(pcm: Pcm) -> VoiceNote:
    """Encode samples (any rate; resampled to the encode rate) as an Ogg/Opus voice note."""
    if pcm.duration > MAX_SECONDS + FRAME_MS / 1000:
        raise _too_long()
    if not pcm.frames:
        raise VoiceError(VoiceReason.EMPTY, "no sound to encode")
    out = io.BytesIO()
    # bitexact: no encoder version in the tags and a stream serial of 0, so a note says
    # nothing about the sender's FFmpeg build and the same sound gives the same bytes
    with av.open(out, "w", format="ogg", options={"fflags": "+bitexact"}) as container:
        stream = container.add_stream(
            "libopus",
            rate=ENCODE_RATE,
            layout="mono",
            options={"application": "voip", "frame_duration": str(FRAME_MS), "vbr": "on"},
        )
        stream.bit_rate = BITRATE
        pts = 0
        for frame in _frames(pcm):
            frame.pts = pts
            pts += frame.samples
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return VoiceNote(out.getvalue(), pcm.duration)


def encode_file(path: Path) -> VoiceNote:
    """Encode the audio file at ``path`` (WAV, FLAC, MP3, Ogg, ... whatever FFmpeg reads)."""
    return encode_pcm(read_audio(path))
