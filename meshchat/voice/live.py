"""Opus frame by frame, for push-to-talk: 20 ms of samples in, one raw Opus packet out; one
packet in, its samples out (FFmpeg's libopus encoder and Opus decoder through PyAV).

No container: each packet travels alone in a live frame (:mod:`meshchat.talk.wire`). The
encoder is set as for voice notes (16 kHz mono, 16 kbit/s VBR, ``voip``) but with 20 ms
frames, and hands out each frame's packet as soon as the frame is in (Opus's own look-ahead
is 6.5 ms, inside the packet). A packet that does not decode is a gap, not an error: the
sound keeps its length and the talk goes on.
"""

from __future__ import annotations

import av
import av.error

from meshchat.errors import VoiceError, VoiceReason
from meshchat.talk.params import (
    BITRATE,
    DECODE_RATE,
    ENCODE_RATE,
    FRAME_MS,
    FRAME_SAMPLES,
    MAX_OPUS_BYTES,
)
from meshchat.voice.pcm import SAMPLE_BYTES

__all__ = ["FRAME_BYTES", "GAP", "LiveDecoder", "LiveEncoder"]

#: Bytes of one frame of samples given to the encoder.
FRAME_BYTES = FRAME_SAMPLES * SAMPLE_BYTES
#: A gap as it plays: one frame of silence at the decode rate.
GAP = bytes(DECODE_RATE * FRAME_MS // 1000 * SAMPLE_BYTES)


class LiveEncoder:
    """16 kHz mono 16-bit samples, one frame (:data:`FRAME_BYTES`) at a time, to Opus."""

    def __init__(self) -> None:
        try:
            codec = av.CodecContext.create("libopus", "w")
        except (av.error.FFmpegError, ValueError) as exc:
            raise VoiceError(VoiceReason.NOT_AUDIO, f"no Opus encoder ({exc})") from exc
        codec.sample_rate = ENCODE_RATE
        codec.layout = "mono"
        codec.format = av.AudioFormat("s16")
        codec.bit_rate = BITRATE
        codec.options = {"application": "voip", "frame_duration": str(FRAME_MS), "vbr": "on"}
        codec.open()
        self._codec = codec
        self._pts = 0

    def encode(self, samples: bytes) -> bytes:
        """One frame of samples (a short last frame is padded with silence) as one packet."""
        if len(samples) > FRAME_BYTES or len(samples) % SAMPLE_BYTES:
            raise VoiceError(VoiceReason.DAMAGED, f"a live frame is {FRAME_BYTES} bytes")
        samples = samples.ljust(FRAME_BYTES, b"\0")
        frame = av.AudioFrame(format="s16", layout="mono", samples=FRAME_SAMPLES)
        frame.planes[0].update(samples)
        frame.rate = ENCODE_RATE
        frame.pts = self._pts
        self._pts += FRAME_SAMPLES
        try:
            packets = self._codec.encode(frame)
        except av.error.FFmpegError as exc:
            raise VoiceError(VoiceReason.DAMAGED, f"the encoder failed ({exc})") from exc
        data = b"".join(bytes(p) for p in packets)
        if len(data) > MAX_OPUS_BYTES:
            raise VoiceError(VoiceReason.TOO_LARGE, f"an Opus packet of {len(data)} bytes")
        return data


class LiveDecoder:
    """Opus packets, one at a time, to 48 kHz mono 16-bit samples."""

    def __init__(self) -> None:
        codec = av.CodecContext.create("opus", "r")
        codec.sample_rate = DECODE_RATE
        codec.layout = "mono"
        codec.open()
        self._codec = codec
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=DECODE_RATE)
        self.failed = 0

    def decode(self, opus: bytes | None) -> bytes:
        """The samples of one packet; a frame of silence for a gap or a packet that does not
        decode; nothing for an empty packet (an end frame without sound)."""
        if opus is None:
            return GAP
        if not opus:
            return b""
        out = bytearray()
        try:
            for frame in self._codec.decode(av.Packet(opus)):
                for converted in self._resampler.resample(frame):
                    out += bytes(converted.planes[0])[: converted.samples * SAMPLE_BYTES]
        except (av.error.FFmpegError, ValueError):
            self.failed += 1
            return GAP
        return bytes(out) if out else GAP
