"""Opus frame by frame, for push-to-talk: 20 ms of samples in, one raw Opus packet out; one
packet in, its samples out (FFmpeg's libopus encoder through PyAV; libopus's decoder).

No container: each packet travels alone in a live frame (:mod:`meshchat.talk.wire`). The
encoder is set as for voice notes (16 kHz mono, VBR, ``voip``) but with 20 ms frames, a target
of 24 kbit/s and in-band FEC (below), and hands out each frame's packet as soon as the frame is
in (Opus's own look-ahead is 6.5 ms, inside the packet). A packet that does not decode is a
gap, not an error: the sound keeps its length and the talk goes on.

Lost frames, the way Opus means them to be handled (the plan for each gap is
:class:`~meshchat.talk.conceal.Concealer`'s; :meth:`LiveDecoder.conceal` carries it out):

* **In-band FEC.** The encoder is told to expect :data:`~meshchat.talk.params.EXPECTED_LOSS`
  percent of loss and to add LBRR data: each packet carries a coarse copy of the frame
  before it. When a frame is lost and the next one is already in, the decoder plays the lost
  frame from that copy (``opus_decode`` with ``decode_fec = 1``). libopus adds LBRR only above
  a bit rate: at the voice notes' 16 kbit/s it added none (measured: no gain at all), so live
  speech targets 24 kbit/s (about 20 kbit/s of Opus measured on speech, with the FEC, against
  14 before; on the wire, where each 20 ms frame carries about 180 bytes of header, signature
  and sealing, that is about 7 % more).
* **Concealment** (PLC) where there is nothing to recover from: libopus makes up the frame
  (for SILK speech, the pitch and spectral envelope of the last frames over a decaying
  excitation), under the planned fade.

FFmpeg's ``libopus`` decoder always calls libopus with ``decode_fec = 0``, and PyAV has no
call for "decode a missing packet" (an empty packet means the end of the stream), so the
decoder calls libopus directly (:mod:`meshchat.voice._libopus`: the copy PyAV ships, else the
system's). Where there is no libopus to call, the decoder goes through PyAV and conceals
without FEC: FFmpeg's ``libopus`` decoder is given the last packet's table-of-contents byte
with no frame data (RFC 6716 lets a frame be empty; libopus conceals an empty frame as a lost
one, exactly one frame of the length the byte states); without that decoder either (FFmpeg's
own ``opus`` decoder conceals nothing: measured, one frame of overlap tail, then zeros), the
last decoded frame is repeated under the same fade, the well-known simple way.
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
    EXPECTED_LOSS,
    FRAME_MS,
    FRAME_SAMPLES,
    MAX_OPUS_BYTES,
)
from meshchat.voice import _libopus
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
        codec.options = {
            "application": "voip",
            "frame_duration": str(FRAME_MS),
            "vbr": "on",
            "fec": "1",
            "packet_loss": str(EXPECTED_LOSS),
        }
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


#: Samples of one frame at the decode rate.
_FRAME_OUT = DECODE_RATE * FRAME_MS // 1000


class LiveDecoder:
    """Opus packets, one at a time, to 48 kHz mono 16-bit samples; a lost packet recovered or
    concealed (see the module's docstring). ``direct``: call libopus itself where it can be
    loaded (FEC and concealment); False: through PyAV only. ``fec``: whether this decoder
    recovers lost frames from the next packet; ``plc``: whether the codec conceals (else the
    last frame is repeated)."""

    def __init__(self, *, direct: bool = True) -> None:
        lib = _libopus.load() if direct else None
        self._opus = _libopus.OpusDecoder(lib) if lib is not None else None
        self.fec = self.plc = self._opus is not None
        if self._opus is None:
            try:
                codec = av.CodecContext.create("libopus", "r")
                self.plc = True
            except (av.error.FFmpegError, ValueError):  # an FFmpeg built without libopus
                codec = av.CodecContext.create("opus", "r")
            codec.sample_rate = DECODE_RATE
            codec.layout = "mono"
            codec.open()
            self._codec = codec
            self._resampler = av.AudioResampler(format="s16", layout="mono", rate=DECODE_RATE)
        self.failed = 0
        #: lost frames played from the next packet's FEC
        self.recovered = 0
        #: the table-of-contents byte of the last packet decoded (None: none yet)
        self._toc: int | None = None
        self._last = GAP

    def _decoded(self, opus: bytes) -> bytes:
        if self._opus is not None:
            return self._opus.decode(opus, _libopus.MAX_FRAME_SAMPLES)
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
        except (av.error.FFmpegError, ValueError, VoiceError):
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

    def _estimate(self, plan: Conceal) -> bytes:
        """The codec's estimate of the lost frame (the recovered one where FEC can)."""
        if self._opus is not None:
            if plan.recover_from is not None:
                return self._opus.decode(plan.recover_from, _FRAME_OUT, fec=True)
            return self._opus.decode(None, _FRAME_OUT)
        if self.plc and self._toc is not None:
            # the last packet's TOC byte with code 0 and no frame data: one lost frame
            return self._decoded(bytes([self._toc & 0xFC]))
        return self._last

    def conceal(self, plan: Conceal) -> bytes:
        """One frame in place of a lost one, as ``plan`` says (always one frame long)."""
        recover = self.fec and plan.recover_from is not None
        if self._toc is None and not recover:
            return GAP  # nothing heard yet: nothing to extend
        try:
            estimate = self._estimate(plan)
        except (av.error.FFmpegError, ValueError, VoiceError):
            self.failed += 1
            return GAP
        if recover:
            self.recovered += 1
            return _fit(estimate)  # the frame's own sound, at full gain
        if plan.start == plan.end == 0.0:
            return GAP  # (libopus was still told of the loss: its state stays in step)
        return _faded(_fit(estimate), plan.start, plan.end)
