"""The live decoder's loss handling: a lost frame recovered from the next packet's in-band
FEC, else libopus's own estimate of it, one frame long, under the planned fade; silence where
there is nothing to extend. Both ways: libopus called directly, and through PyAV."""

from __future__ import annotations

import math
import struct
from array import array
from pathlib import Path

import pytest

from meshchat.talk.conceal import Conceal
from meshchat.voice import read_audio
from meshchat.voice.live import FRAME_BYTES, GAP, LiveDecoder, LiveEncoder
from tests.talk.lossy import encoded, frame_rms

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


@pytest.fixture(params=[True, False], ids=["direct", "pyav"])
def warm(request: pytest.FixtureRequest) -> tuple[LiveDecoder, bytes]:
    """A decoder that has heard 20 frames of a tone, and the last frame it played."""
    encoder, decoder = LiveEncoder(), LiveDecoder(direct=request.param)
    assert decoder.fec is request.param  # libopus loads here (the copy PyAV ships)
    last = b""
    for samples in tone(20):
        last = decoder.decode(encoder.encode(samples))
    return decoder, last


def test_a_lost_frame_comes_back_from_the_next_packets_fec(speech: Path) -> None:
    packets = encoded(read_audio(speech))
    lossless = LiveDecoder()
    want = [lossless.decode(p) for p in packets]
    lost = max(range(10, len(packets) - 10), key=lambda i: frame_rms(want[i]))  # the loudest
    fec, plc = LiveDecoder(), LiveDecoder()
    for p in packets[:lost]:
        fec.decode(p)
        plc.decode(p)
    got = fec.conceal(Conceal(1, 1.0, 1.0, packets[lost + 1]))
    assert fec.recovered == 1 and len(got) == len(GAP)
    guessed = plc.conceal(Conceal(1, 1.0, 1.0))
    assert abs(frame_rms(got) - frame_rms(want[lost])) < 0.5 * frame_rms(want[lost])
    # FEC is closer to the lost frame itself than concealment is
    error = [frame_rms(bytes_diff(x, want[lost])) for x in (got, guessed)]
    print(f"error of the FEC frame {error[0]:.0f}, of the concealed one {error[1]:.0f}")
    assert error[0] < 0.9 * error[1]


def test_a_decoder_without_fec_conceals_a_plan_that_names_the_next_packet() -> None:
    encoder = LiveEncoder()
    packets = [encoder.encode(samples) for samples in tone(10)]
    decoder = LiveDecoder(direct=False)
    for p in packets[:5]:
        decoder.decode(p)
    faded = decoder.conceal(Conceal(3, 0.5, 0.0, packets[6]))  # no FEC here: the gains apply
    assert decoder.recovered == 0 and len(faded) == len(GAP)
    assert frame_rms(faded[-480:]) < 0.15 * frame_rms(faded[:480])


def bytes_diff(a: bytes, b: bytes) -> bytes:
    x, y = array("h", a), array("h", b)
    return array("h", (max(-32768, min(32767, p - q)) for p, q in zip(x, y, strict=True))).tobytes()


def test_libopus_conceals_a_lost_frame_with_sound_like_the_last(
    warm: tuple[LiveDecoder, bytes],
) -> None:
    decoder, last = warm
    assert decoder.plc  # libopus conceals (directly, or FFmpeg's libopus decoder)
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


@pytest.mark.parametrize("direct", [True, False])
def test_nothing_heard_yet_is_silence_and_a_gap_without_plan_too(direct: bool) -> None:
    decoder = LiveDecoder(direct=direct)
    assert decoder.conceal(Conceal(1, 1.0, 1.0)) == GAP
    assert decoder.play(None, None) == GAP
    assert decoder.play(b"", None) == b""  # the end frame: no sound


def test_without_libopus_the_last_frame_is_repeated_under_the_fade() -> None:
    encoder, decoder = LiveEncoder(), LiveDecoder(direct=False)
    last = b""
    for samples in tone(20):
        last = decoder.decode(encoder.encode(samples))
    decoder.plc = False  # as on an FFmpeg build without the libopus decoder
    assert decoder.conceal(Conceal(1, 1.0, 1.0)) == last
    assert frame_rms(decoder.conceal(Conceal(3, 0.5, 0.0))) < 0.5 * frame_rms(last)
