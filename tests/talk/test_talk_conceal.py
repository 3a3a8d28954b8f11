"""Loss concealment: the plan for each gap, and what it does to speech over a lossy link.

The speech measures: espeak-ng speech (7.5 s, 377 frames) encoded live, 5 % and 10 % of its
frames dropped at random (five seeds each), played through a real Listener and the live
decoder, compared with the same talk played without loss by the Pearson correlation of the
20 ms RMS envelopes (as tests/voice/test_voice_codec.py). Concealed (libopus's PLC, no FEC),
the lossy playout must correlate clearly better than with gaps played as silence (its
shortfall from 1 at most 0.65 times the silent one's, mean over the seeds; each seed better);
with FEC as well, better again (at most half the concealed shortfall); all exactly as long.
A burst of 5 lost frames must fade to silence, not repeat (with FEC, its last frame comes
back from the packet after it).
"""

from __future__ import annotations

import statistics

import pytest

from meshchat.talk.conceal import Conceal, Concealer
from meshchat.talk.listen import Listener
from meshchat.talk.params import CONCEAL_FRAMES
from meshchat.talk.wire import LiveFrame, TalkOffer, seal_sound
from meshchat.voice import read_audio
from tests.talk.lossy import dropped, encoded, frame_rms, playout, score
from tests.voice.speech import speak

SEEDS = range(5)


@pytest.fixture(scope="module")
def packets(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    return encoded(read_audio(speak(tmp_path_factory.mktemp("conceal") / "speech.wav")))


# -- the plan --------------------------------------------------------------------------------


def test_a_run_of_gaps_fades_out_then_is_silence() -> None:
    concealer = Concealer(3)
    assert concealer.plan(b"frame") is None
    plans = [concealer.plan(None) for _ in range(5)]
    assert plans == [
        Conceal(1, 1.0, 1.0), Conceal(2, 1.0, 0.5), Conceal(3, 0.5, 0.0),
        Conceal(4, 0.0, 0.0), Conceal(5, 0.0, 0.0),
    ]  # fmt: skip
    assert [p.silent for p in plans if p] == [False, False, False, True, True]
    assert concealer.plan(b"frame") is None  # a frame that came starts the next run afresh
    assert concealer.plan(None) == Conceal(1, 1.0, 1.0)
    assert (concealer.concealed, concealer.silent) == (4, 2)


def test_nothing_is_concealed_before_the_first_frame_or_when_turned_off() -> None:
    assert Concealer(3).plan(None) == Conceal(1, 0.0, 0.0)
    off = Concealer(0)
    off.plan(b"frame")
    assert off.plan(None) == Conceal(1, 0.0, 0.0)
    assert off.concealed == 0
    with pytest.raises(ValueError):
        Concealer(-1)
    with pytest.raises(ValueError):
        Conceal(0, 1.0, 1.0)


@pytest.mark.parametrize("frames", [1, 2, 3, 5])
def test_every_fade_starts_whole_and_ends_at_zero(frames: int) -> None:
    concealer = Concealer(frames)
    concealer.plan(b"frame")
    plans = [concealer.plan(None) for _ in range(frames + 1)]
    assert plans[0] is not None and plans[0].start == 1.0
    assert plans[frames - 1] is not None and plans[frames - 1].end == 0.0
    assert plans[frames] is not None and plans[frames].silent
    gains = [g for p in plans if p is not None for g in (p.start, p.end)]
    assert gains == sorted(gains, reverse=True)


def test_the_listener_hands_out_each_gap_with_its_plan() -> None:
    listener, offer, talker = Listener(), TalkOffer.new(), b"a" * 16
    listener.offer(talker, offer, 0)
    for seq in (0, 3):
        sealed = seal_sound(offer.key, offer.talk_id, seq, b"x", end=seq == 3)
        listener.frame(talker, LiveFrame(offer.talk_id, seq, sealed, seq == 3), 0)
    outs = listener.pop(1000)
    assert [(o.seq, o.opus is None, o.conceal) for o in outs] == [
        (0, False, None), (1, True, Conceal(1, 1.0, 1.0)),
        (2, True, Conceal(2, 1.0, 0.5, b"x")),  # the next frame is in: recover from it
        (3, False, None),
    ]  # fmt: skip


def test_a_gap_names_the_next_packet_when_it_is_in() -> None:
    concealer = Concealer(3)
    first = concealer.plan(None, b"next")  # even before any frame came
    assert first == Conceal(1, 0.0, 0.0, b"next") and not first.silent
    concealer.plan(b"frame")
    for _ in range(4):
        concealer.plan(None)
    assert concealer.plan(None, b"next") == Conceal(5, 0.0, 0.0, b"next")  # past the fade
    assert concealer.plan(None, b"") == Conceal(6, 0.0, 0.0)  # the end frame has no sound
    assert Concealer(0).plan(None, b"next") == Conceal(1, 0.0, 0.0)  # turned off


# -- speech over a lossy link ----------------------------------------------------------------


@pytest.mark.parametrize("share", [0.05, 0.10])
def test_concealment_keeps_lossy_speech_closer_to_the_lossless(
    packets: list[bytes], share: float
) -> None:
    reference = playout(packets, (), CONCEAL_FRAMES)
    assert reference.gaps == 0
    recovered, concealed, silent = [], [], []
    for seed in SEEDS:
        lost = dropped(len(packets), share, seed)
        with_fec = playout(packets, lost, CONCEAL_FRAMES)
        with_plc = playout(packets, lost, CONCEAL_FRAMES, fec=False)
        without = playout(packets, lost, 0)
        assert with_fec.gaps == with_plc.gaps == without.gaps == len(lost)
        assert with_plc.concealed > 0.9 * len(lost) and without.concealed == 0
        # FEC recovers every lost frame whose next one came
        recoverable = [s for s in lost if s + 1 not in lost and s + 1 < len(packets)]
        assert with_fec.recovered == len(recoverable) and with_plc.recovered == 0
        # the sound keeps its length, to the sample
        lengths = {len(p.pcm.samples) for p in (reference, with_fec, with_plc, without)}
        assert len(lengths) == 1
        recovered.append(score(reference.pcm, with_fec.pcm))
        concealed.append(score(reference.pcm, with_plc.pcm))
        silent.append(score(reference.pcm, without.pcm))
    print(
        f"{share:.0%} lost: envelope r with FEC {statistics.mean(recovered):.4f}, concealed "
        f"{statistics.mean(concealed):.4f} {[round(r, 3) for r in concealed]}, gaps as "
        f"silence {statistics.mean(silent):.4f} {[round(r, 3) for r in silent]}"
    )
    assert all(c > s for c, s in zip(concealed, silent, strict=True))
    shortfall = 1 - statistics.mean(concealed)
    assert shortfall <= 0.65 * (1 - statistics.mean(silent))
    assert all(f > c for f, c in zip(recovered, concealed, strict=True))
    assert 1 - statistics.mean(recovered) <= 0.5 * shortfall


@pytest.mark.parametrize("fec", [False, True])
def test_a_burst_of_lost_frames_fades_to_silence(packets: list[bytes], fec: bool) -> None:
    reference = playout(packets, (), CONCEAL_FRAMES)
    loud = [frame_rms(f) for f in reference.frames]
    # the loudest place where 7 frames in a row are all voiced: the burst is its frames 1-5
    start = max(range(1, len(loud) - 7), key=lambda i: min(loud[i - 1 : i + 6]))
    burst = range(start, start + 5)
    heard = playout(packets, set(burst), CONCEAL_FRAMES, fec=fec)
    assert len(heard.frames) == len(reference.frames)
    rms = [frame_rms(heard.frames[i]) for i in burst]
    print(f"burst at frame {start} (FEC {fec}): before {loud[start - 1]:.0f}, heard {rms}")
    assert rms[0] > 0.25 * loud[start - 1]  # the first lost frame is bridged
    assert rms[0] >= rms[1] >= rms[2] > 0  # fading
    assert heard.frames[start + 3] == bytes(len(heard.frames[0]))  # then silence
    if fec:  # the burst's last frame comes back from the next packet's FEC
        assert heard.recovered == 1 and rms[4] > 0.1 * loud[start + 4]
    else:
        assert heard.frames[start + 4] == bytes(len(heard.frames[0]))
    assert frame_rms(heard.frames[start + 6]) > 0  # and the talk goes on after the burst


def test_a_gap_names_the_next_frame_still_waiting_in_the_buffer() -> None:
    listener, offer, talker = Listener(), TalkOffer.new(), b"a" * 16
    listener.offer(talker, offer, 0)
    for seq in (0, 2):
        sealed = seal_sound(offer.key, offer.talk_id, seq, bytes([seq]), end=False)
        listener.frame(talker, LiveFrame(offer.talk_id, seq, sealed, False), 0)
    talk = next(iter(listener.talks.values()))
    assert talk.buffer.held(2) == b"\x02" and talk.buffer.held(1) is None
    outs = listener.pop(50)  # frames 0 and 1 are due (at 20 and 40 ms), frame 2 at 60
    assert [(o.seq, o.conceal) for o in outs] == [(0, None), (1, Conceal(1, 1.0, 1.0, b"\x02"))]
    assert talk.buffer.held(2) == b"\x02"  # still there, to play in its turn
    assert [(o.seq, o.opus) for o in listener.pop(60)] == [(2, b"\x02")]
