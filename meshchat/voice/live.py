"""Opus frame by frame, for push-to-talk: 20 ms of samples in, one raw Opus packet out; one
packet in, its samples out (FFmpeg's libopus encoder and Opus decoder through PyAV).

No container: each packet travels alone in a live frame (:mod:`meshchat.talk.wire`). The
encoder is set as for voice notes (16 kHz mono, 16 kbit/s VBR, ``voip``) but with 20 ms
frames, and hands out each frame's packet as soon as the frame is in (Opus's own look-ahead
is 6.5 ms, inside the packet). A packet that does not decode is a gap, not an error: the
sound keeps its length and the talk goes on.

Loss concealment: Opus's own, through libopus. :meth:`LiveDecoder.conceal` plays a lost frame
as libopus's packet-loss concealment (PLC: for SILK speech, the pitch and the spectral envelope
of the last frames extended with a decaying excitation; for CELT, the last pitch period
repeated and faded), then applies the fade the :class:`~meshchat.talk.conceal.Concealer`
planned. PyAV has no call for "decode a missing packet" (sending it an empty packet means the
end of the stream), and FFmpeg's own Opus decoder (``opus``) conceals nothing (measured: one
frame of its overlap tail, then zeros), so the decoder is FFmpeg's ``libopus`` wrapper, given a
packet of one byte: the last packet's table-of-contents byte with no frame data. RFC 6716
(section 3.2.1) lets a frame be empty, and libopus treats an empty frame as a lost one and
conceals exactly one frame of the length the byte states (20 ms). Where an FFmpeg build has no
``libopus`` decoder, the decoder falls back to FFmpeg's own and conceals the well-known simple
way: the last decoded frame repeated under the same fade.

In-band FEC (Opus's LBRR: the encoder's ``fec`` and ``packet_loss`` options put a coarse copy
of frame N in packet N+1, and a decoder recovers frame N from packet N+1) is not used: FFmpeg's
``libopus`` decoder always calls ``opus_multistream_decode`` with ``decode_fec = 0`` and has no
option to change it, so the redundancy would cost bits that no decoder here can use.
"""

from __future__ import annotations

from array import array

import av
import av.error

from meshchat.errors import VoiceError, VoiceReason
from meshchat.talk.conceal import Conceal
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


def _fit(samples: bytes) -> bytes:
    """Exactly one frame of samples: cut, or padded with silence."""
    return samples[: len(GAP)].ljust(len(GAP), b"\0")


def _faded(samples: bytes, start: float, end: float) -> bytes:
    """``samples`` under a gain ramped linearly from ``start`` to ``end``."""
    values = array("h", samples)
    n = len(values)
    if n == 0 or (start == 1.0 and end == 1.0):
        return samples
    step = (end - start) / n
    for i in range(n):
        values[i] = int(values[i] * (start + step * i))
    return values.tobytes()


class LiveDecoder:
    """Opus packets, one at a time, to 48 kHz mono 16-bit samples; a lost packet concealed
    (see the module's docstring). ``plc``: whether libopus conceals (else the last frame is
    repeated)."""

    def __init__(self) -> None:
        try:
            codec = av.CodecContext.create("libopus", "r")
            self.plc = True
        except (av.error.FFmpegError, ValueError):  # an FFmpeg built without libopus
            codec = av.CodecContext.create("opus", "r")
            self.plc = False
        codec.sample_rate = DECODE_RATE
        codec.layout = "mono"
        codec.open()
        self._codec = codec
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=DECODE_RATE)
        self.failed = 0
        #: the table-of-contents byte of the last packet decoded (None: none yet)
        self._toc: int | None = None
        self._last = GAP

    def _decoded(self, opus: bytes) -> bytes:
        out = bytearray()
        for frame in self._codec.decode(av.Packet(opus)):
            for converted in self._resampler.resample(frame):
                out += bytes(converted.planes[0])[: converted.samples * SAMPLE_BYTES]
        return bytes(out)

    def decode(self, opus: bytes | None) -> bytes:
        """The samples of one packet; a frame of silence for a gap or a packet that does not
        decode; nothing for an empty packet (an end frame without sound)."""
        if opus is None:
            return GAP
        if not opus:
            return b""
        try:
            out = self._decoded(opus)
        except (av.error.FFmpegError, ValueError):
            self.failed += 1
            return GAP
        if not out:
            return GAP
        self._toc, self._last = opus[0], out
        return out

    def play(self, opus: bytes | None, conceal: Conceal | None) -> bytes:
        """The samples of a frame out of the jitter buffer: its packet decoded, or its gap
        as ``conceal`` plans (silence without a plan)."""
        if opus is None and conceal is not None:
            return self.conceal(conceal)
        return self.decode(opus)

    def conceal(self, plan: Conceal) -> bytes:
        """One frame in place of a lost one, as ``plan`` says (always one frame long)."""
        if self._toc is None:
            return GAP  # nothing heard yet: nothing to extend
        if self.plc:
            try:
                # the last packet's TOC byte with code 0 and no frame data: one lost frame
                estimate = self._decoded(bytes([self._toc & 0xFC]))
            except (av.error.FFmpegError, ValueError):
                self.failed += 1
                return GAP
        else:
            estimate = self._last
        if plan.silent:
            return GAP  # (libopus was still told of the loss: its state stays in step)
        return _faded(_fit(estimate), plan.start, plan.end)
