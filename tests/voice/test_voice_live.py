"""The live decoder's loss concealment: libopus's own estimate of a lost frame, one frame
long, under the planned fade; silence where there is nothing to extend."""

from __future__ import annotations

import math
import struct

import pytest

from meshchat.talk.conceal import Conceal
from meshchat.voice.live import FRAME_BYTES, GAP, LiveDecoder, LiveEncoder
from tests.talk.lossy import frame_rms

FRAME_SAMPLES = FRAME_BYTES // 2


def tone(frames: int, hz: float = 220.0, amplitude: int = 8000) -> list[bytes]:
    """A steady tone in 20 ms frames at 16 kHz."""
    return [
        struct.pack(
            f"<{FRAME_SAMPLES}h",
            *(
                round(amplitude * math.sin(2 * math.pi * hz * (i * FRAME_SAMPLES + n) / 16_000))
                for n in range(FRAME_SAMPLES)
            ),
        )
        for i in range(frames)
    ]


@pytest.fixture
def warm() -> tuple[LiveDecoder, bytes]:
    """A decoder that has heard 20 frames of a tone, and the last frame it played."""
    encoder, decoder = LiveEncoder(), LiveDecoder()
    last = b""
    for samples in tone(20):
        last = decoder.decode(encoder.encode(samples))
    return decoder, last


def test_libopus_conceals_a_lost_frame_with_sound_like_the_last(
    warm: tuple[LiveDecoder, bytes],
) -> None:
    decoder, last = warm
    assert decoder.plc  # this FFmpeg build has the libopus decoder
    estimate = decoder.conceal(Conceal(1, 1.0, 1.0))
    assert len(estimate) == len(GAP)
    assert frame_rms(estimate) > 0.5 * frame_rms(last)
    assert estimate != last  # the codec's estimate, not a copy


def test_the_fade_is_applied_and_a_silent_plan_is_silence(
    warm: tuple[LiveDecoder, bytes],
) -> None:
    decoder, _ = warm
    faded = decoder.conceal(Conceal(2, 1.0, 0.0))
    assert len(faded) == len(GAP)
    head, tail = faded[:480], faded[-480:]  # the first and last 5 ms
    assert frame_rms(tail) < 0.15 * frame_rms(head)
    assert decoder.conceal(Conceal(4, 0.0, 0.0)) == GAP
    assert decoder.failed == 0


def test_nothing_heard_yet_is_silence_and_a_gap_without_plan_too() -> None:
    decoder = LiveDecoder()
    assert decoder.conceal(Conceal(1, 1.0, 1.0)) == GAP
    assert decoder.play(None, None) == GAP
    assert decoder.play(b"", None) == b""  # the end frame: no sound


def test_without_libopus_the_last_frame_is_repeated_under_the_fade(
    warm: tuple[LiveDecoder, bytes],
) -> None:
    decoder, last = warm
    decoder.plc = False  # as on an FFmpeg build without the libopus decoder
    assert decoder.conceal(Conceal(1, 1.0, 1.0)) == last
    assert frame_rms(decoder.conceal(Conceal(3, 0.5, 0.0))) < 0.5 * frame_rms(last)
