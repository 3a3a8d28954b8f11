"""Live speech over a lossy link, in one process and without sockets: encoded 20 ms at a time,
some frames dropped, the rest sealed and given on time to a real
:class:`~meshchat.talk.listen.Listener` (its jitter buffer and concealer), what it hands out
decoded as the node does. For ``tests/talk/test_talk_conceal.py`` and ``bench/talk_loss.py``.
"""

from __future__ import annotations

import random
from collections.abc import Collection
from dataclasses import dataclass

import numpy as np

from meshchat.talk.listen import Listener
from meshchat.talk.params import DECODE_RATE, FRAME_MS
from meshchat.talk.wire import LiveFrame, TalkOffer, seal_sound
from meshchat.voice import Pcm
from meshchat.voice.live import FRAME_BYTES, LiveDecoder, LiveEncoder
from tests.voice.test_voice_codec import envelope_correlation

__all__ = ["Playout", "dropped", "encoded", "frame_rms", "playout", "score"]

_TALKER = b"t" * 16


def encoded(pcm: Pcm) -> list[bytes]:
    """The Opus packets of ``pcm`` (at the encode rate), one per 20 ms frame."""
    encoder = LiveEncoder()
    return [
        encoder.encode(pcm.samples[i : i + FRAME_BYTES])
        for i in range(0, len(pcm.samples), FRAME_BYTES)
    ]


def dropped(frames: int, share: float, seed: int) -> set[int]:
    """``share`` of ``frames`` frame numbers, drawn at random (seeded)."""
    return set(random.Random(seed).sample(range(frames), round(share * frames)))


@dataclass
class Playout:
    pcm: Pcm
    gaps: int
    concealed: int
    #: gaps played from the next packet's FEC
    recovered: int
    #: the samples played for each frame, in order (the end frame's, empty, left out)
    frames: list[bytes]


def playout(
    packets: list[bytes], lost: Collection[int], conceal_frames: int, *, fec: bool = True
) -> Playout:
    """What a listener plays of ``packets`` when the frames in ``lost`` never come (the others
    come on time, one every 20 ms, then the end frame). ``fec`` False: the decoder goes
    through PyAV (concealment only, no FEC)."""
    listener = Listener(conceal_frames=conceal_frames)
    offer = TalkOffer.new()
    listener.offer(_TALKER, offer, 0)
    talk = listener.talks[offer.talk_id]
    decoder = LiveDecoder(direct=fec)
    assert decoder.fec == fec
    played: list[bytes] = []
    for tick in range(len(packets) + 1 + 10):
        now = tick * FRAME_MS
        if tick <= len(packets) and tick not in lost:
            end = tick == len(packets)
            sound = b"" if end else packets[tick]
            sealed = seal_sound(offer.key, offer.talk_id, tick, sound, end=end)
            listener.frame(_TALKER, LiveFrame(offer.talk_id, tick, sealed, end), now)
        for out in listener.pop(now):
            samples = decoder.play(out.opus, out.conceal)
            if samples:
                played.append(samples)
    assert talk.buffer.finished, "the talk did not play to its end"
    return Playout(
        Pcm(b"".join(played), DECODE_RATE),
        talk.buffer.stats.gaps,
        talk.concealer.concealed,
        decoder.recovered,
        played,
    )


def score(reference: Pcm, heard: Pcm) -> float:
    """Pearson correlation of the 20 ms RMS envelopes of what was heard and of the lossless
    playout."""
    return envelope_correlation(reference, heard)


def frame_rms(samples: bytes) -> float:
    x = np.frombuffer(samples, "<i2").astype(np.float64)
    return float(np.sqrt((x**2).mean())) if len(x) else 0.0
