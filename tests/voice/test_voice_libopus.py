"""libopus called directly: it loads here, decodes what the live encoder makes, and refuses
anything else with a VoiceError (any bytes: a property test), never a crash."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshchat.errors import VoiceError
from meshchat.voice import _libopus
from meshchat.voice.live import LiveEncoder

LIB = _libopus.load()


def decoder() -> _libopus.OpusDecoder:
    assert LIB is not None, "no libopus (PyAV's wheels ship one)"
    return _libopus.OpusDecoder(LIB)


def test_it_decodes_a_live_packet_and_conceals_a_lost_one() -> None:
    d = decoder()
    packet = LiveEncoder().encode(bytes(640))
    assert len(d.decode(packet, _libopus.MAX_FRAME_SAMPLES)) == 960 * 2  # 20 ms at 48 kHz
    assert len(d.decode(None, 960)) == 960 * 2
    assert len(d.decode(packet, 960, fec=True)) == 960 * 2


def test_bad_packets_and_sizes_are_refused() -> None:
    d = decoder()
    with pytest.raises(VoiceError, match="libopus"):
        d.decode(b"\x03", 960)  # code 3 without its frame count byte
    for size in (0, _libopus.MAX_FRAME_SAMPLES + 1):
        with pytest.raises(ValueError):
            d.decode(None, size)


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=1, max_size=1500), st.booleans())
def test_any_bytes_decode_or_are_refused(data: bytes, fec: bool) -> None:
    d = decoder()
    try:
        out = d.decode(data, _libopus.MAX_FRAME_SAMPLES if not fec else 960, fec=fec)
    except VoiceError:
        return
    assert len(out) <= _libopus.MAX_FRAME_SAMPLES * 2 and len(out) % 2 == 0
