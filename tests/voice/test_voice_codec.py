"""Encode speech to an Ogg/Opus note and back: the length and the sound survive.

The measures (stated in docs/protocol.md): the decoded duration is within 5% of the source's,
and the sound correlates with the source, by two measures computed here:

* the Pearson correlation of the RMS envelopes in 20 ms windows (each signal windowed at its
  own rate, so no resampling is involved), >= 0.9;
* the peak of the normalized cross-correlation of the waveforms, the decoded 48 kHz signal
  resampled to the source's 22050 Hz, >= 0.8, at a lag under 5 ms.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.signal import correlate, resample_poly

from meshchat.errors import VoiceError, VoiceReason
from meshchat.files.manifest import FileKind
from meshchat.files.media import HEAD_BYTES, check_media
from meshchat.voice import (
    MAX_NOTE_BYTES,
    MEDIA_TYPE,
    Pcm,
    decode,
    duration_of,
    encode_file,
    encode_pcm,
    pcm_from_wav,
)
from meshchat.voice.params import BITRATE, DECODE_RATE, MAX_SECONDS


def _samples(pcm: Pcm) -> np.ndarray:
    return np.frombuffer(pcm.samples, "<i2").astype(np.float64)


def envelope(pcm: Pcm) -> np.ndarray:
    """RMS of each 20 ms window."""
    x = _samples(pcm)
    width = pcm.rate // 50
    n = len(x) // width
    return np.sqrt((x[: n * width].reshape(n, width) ** 2).mean(axis=1))


def envelope_correlation(a: Pcm, b: Pcm) -> float:
    ea, eb = envelope(a), envelope(b)
    n = min(len(ea), len(eb))
    return float(np.corrcoef(ea[:n], eb[:n])[0, 1])


def waveform_correlation(source: Pcm, decoded: Pcm) -> tuple[float, float]:
    """The peak normalized cross-correlation and its lag in seconds."""
    a = _samples(source)
    b = resample_poly(_samples(decoded), source.rate, decoded.rate)
    n = min(len(a), len(b))
    a, b = a[:n], b[:n]
    c = correlate(b, a, mode="full", method="fft")
    peak = int(np.argmax(c))
    return float(c[peak] / np.sqrt((a**2).sum() * (b**2).sum())), (peak - (n - 1)) / source.rate


def test_round_trip_keeps_duration_and_sound(speech: Path) -> None:
    source = pcm_from_wav(speech.read_bytes())
    note = encode_file(speech)
    decoded = decode(note.data)

    assert decoded.rate == DECODE_RATE
    assert abs(decoded.duration - source.duration) <= 0.05 * source.duration
    assert abs(duration_of(note.data) - source.duration) <= 0.05 * source.duration
    assert abs(note.duration - source.duration) <= 0.05 * source.duration

    r = envelope_correlation(source, decoded)
    peak, lag = waveform_correlation(source, decoded)
    print(f"envelope r={r:.4f} waveform peak={peak:.4f} lag={lag * 1000:.2f} ms")
    assert r >= 0.9
    assert peak >= 0.8
    assert abs(lag) < 0.005

    # low bit rate: at most the target plus a quarter for the container and the encoder's
    # variation, and well under what a note may weigh
    assert len(note.data) * 8 / note.duration <= BITRATE * 1.25
    assert note.data[:4] == b"OggS"
    check_media(FileKind.VOICE, MEDIA_TYPE, note.data[:HEAD_BYTES])


def test_silence_does_not_correlate_with_speech(speech: Path) -> None:
    """The measure can fail: a note of silence as long as the speech scores near zero."""
    source = pcm_from_wav(speech.read_bytes())
    silence = decode(encode_pcm(Pcm(bytes(len(source.samples)), source.rate)).data)
    noise = np.random.default_rng(7).normal(0, 3000, source.frames).astype("<i2").tobytes()
    other = decode(encode_pcm(Pcm(noise, source.rate)).data)
    assert abs(silence.duration - source.duration) <= 0.05 * source.duration
    assert envelope_correlation(source, other) < 0.5
    assert waveform_correlation(source, other)[0] < 0.3


def test_the_same_sound_gives_the_same_bytes(speech: Path) -> None:
    """No encoder version, random serial or time in the note (bitexact)."""
    first, second = encode_file(speech), encode_file(speech)
    assert first.data == second.data
    assert b"Lavf" not in first.data


def test_recorded_samples_at_any_rate_encode(speech: Path) -> None:
    tone = (np.sin(np.arange(48_000) * 2 * np.pi * 440 / 48_000) * 8000).astype("<i2")
    note = encode_pcm(Pcm(tone.tobytes(), 48_000))
    assert abs(decode(note.data).duration - 1.0) <= 0.05


def test_a_longest_note_fits_its_byte_limit() -> None:
    """Five minutes of loud noise (the encoder's worst case) stays under MAX_NOTE_BYTES."""
    noise = np.random.default_rng(1).normal(0, 8000, MAX_SECONDS * 16_000)
    note = encode_pcm(Pcm(noise.clip(-32768, 32767).astype("<i2").tobytes(), 16_000))
    assert len(note.data) <= MAX_NOTE_BYTES
    assert abs(duration_of(note.data) - MAX_SECONDS) < 1


def test_over_the_longest_is_refused() -> None:
    with pytest.raises(VoiceError) as caught:
        encode_pcm(Pcm(bytes((MAX_SECONDS + 1) * 8_000 * 2), 8_000))
    assert caught.value.reason is VoiceReason.TOO_LONG


def test_nothing_is_refused() -> None:
    with pytest.raises(VoiceError) as caught:
        encode_pcm(Pcm(b"", 16_000))
    assert caught.value.reason is VoiceReason.EMPTY
