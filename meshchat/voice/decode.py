"""Reading a received voice note: strict checks first, then FFmpeg's Ogg demuxer and Opus
decoder only.

A voice note comes from a peer, so its bytes are hostile until shown otherwise. Before FFmpeg
sees them they must be at most :data:`~meshchat.voice.params.MAX_NOTE_BYTES` and start with an
Ogg page that holds exactly an Opus identification header (RFC 7845 section 5.1: version 1,
one or two channels, channel mapping family 0). FFmpeg is then told the container is Ogg (no
probing of other formats), the one stream must be Opus, and decoding stops as soon as the
sound runs past :data:`~meshchat.voice.params.MAX_SECONDS`. Every failure is a
:class:`VoiceError`: ``NOT_AUDIO`` for what is not an Ogg/Opus note, ``DAMAGED`` for a note
that does not decode, ``TOO_LONG``, ``TOO_LARGE`` and ``EMPTY``.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager

import av
import av.error

from meshchat.errors import VoiceError, VoiceReason
from meshchat.voice.params import DECODE_RATE, MAX_NOTE_BYTES, MAX_SECONDS
from meshchat.voice.pcm import SAMPLE_BYTES, Pcm

__all__ = ["check_header", "decode", "duration_of"]

_PAGE_HEADER = 27  # "OggS", version, flags, granule(8), serial(4), sequence(4), crc(4), count
_OPUS_HEAD = 19  # "OpusHead", version, channels, pre-skip(2), rate(4), gain(2), family
_BEGIN_OF_STREAM = 0x02
#: Slack over the longest note for the last frame and the encoder's padding.
_SLACK_SECONDS = 1


def _not_audio(detail: str) -> VoiceError:
    return VoiceError(VoiceReason.NOT_AUDIO, detail)


def check_header(data: bytes) -> None:
    """Raise :class:`VoiceError` unless ``data`` is of voice-note size and starts with an Ogg
    page holding one Opus identification header."""
    if len(data) > MAX_NOTE_BYTES:
        raise VoiceError(VoiceReason.TOO_LARGE, f"over {MAX_NOTE_BYTES} bytes")
    if len(data) < _PAGE_HEADER or data[:4] != b"OggS" or data[4] != 0:
        raise _not_audio("not an Ogg file")
    if not data[5] & _BEGIN_OF_STREAM:
        raise _not_audio("the first Ogg page does not begin a stream")
    segments = data[26]
    table = data[_PAGE_HEADER : _PAGE_HEADER + segments]
    body = _PAGE_HEADER + segments
    # the identification header is the first page's only packet: one segment under 255
    if segments != 1 or len(table) != 1 or table[0] < _OPUS_HEAD or table[0] == 255:
        raise _not_audio("the first Ogg page is not an Opus header")
    head = data[body : body + table[0]]
    if len(head) != table[0] or head[:8] != b"OpusHead":
        raise _not_audio("not Opus")
    if head[8] >> 4 != 0:
        raise _not_audio(f"Opus header version {head[8]}")
    if head[9] not in (1, 2) or head[18] != 0:
        raise _not_audio("not a mono or stereo Opus stream")


@contextmanager
def _opened(data: bytes) -> Iterator[av.container.InputContainer]:
    check_header(data)
    try:
        container = av.open(io.BytesIO(data), "r", format="ogg")
    except (av.error.FFmpegError, ValueError, OSError) as exc:
        raise VoiceError(VoiceReason.DAMAGED, f"the Ogg container does not open ({exc})") from exc
    with container:
        streams = container.streams
        if len(streams) != 1 or not streams.audio or streams.audio[0].codec_context.name != "opus":
            raise _not_audio("not one Opus stream")
        yield container


def duration_of(data: bytes) -> float:
    """The seconds of sound a voice note says it holds (from the Ogg container's last
    position, without decoding)."""
    with _opened(data) as container:
        stream = container.streams.audio[0]
        if stream.duration is not None and stream.time_base is not None:
            seconds = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            seconds = container.duration / av.time_base
        else:
            raise VoiceError(VoiceReason.DAMAGED, "the container states no duration")
    if not 0 < seconds <= MAX_SECONDS + _SLACK_SECONDS:
        reason = VoiceReason.TOO_LONG if seconds > 0 else VoiceReason.EMPTY
        raise VoiceError(reason, f"a stated duration of {seconds:.1f} s")
    return seconds


def decode(data: bytes) -> Pcm:
    """A voice note's sound as mono 16-bit samples at 48 kHz."""
    limit = (MAX_SECONDS + _SLACK_SECONDS) * DECODE_RATE * SAMPLE_BYTES
    samples = bytearray()
    with _opened(data) as container:
        resampler = av.AudioResampler(format="s16", layout="mono", rate=DECODE_RATE)
        try:
            for frame in container.decode(container.streams.audio[0]):
                for out in resampler.resample(frame):
                    samples += bytes(out.planes[0])[: out.samples * SAMPLE_BYTES]
                if len(samples) > limit:
                    raise VoiceError(VoiceReason.TOO_LONG, f"longer than {MAX_SECONDS} s")
            for out in resampler.resample(None):
                samples += bytes(out.planes[0])[: out.samples * SAMPLE_BYTES]
        except (av.error.FFmpegError, ValueError, OSError) as exc:
            raise VoiceError(
                VoiceReason.DAMAGED, f"the Opus stream does not decode ({exc})"
            ) from exc
    if not samples:
        raise VoiceError(VoiceReason.EMPTY, "no sound in the voice note")
    return Pcm(bytes(samples), DECODE_RATE)
