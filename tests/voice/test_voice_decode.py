"""A received voice note is hostile until checked: anything that is not an Ogg/Opus note of
voice-note size is refused with VoiceError, and FFmpeg never takes the process down."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshchat.errors import VoiceError, VoiceReason
from meshchat.voice import MAX_NOTE_BYTES, Pcm, check_header, decode, duration_of, encode_pcm
from meshchat.voice.params import MAX_SECONDS


@pytest.fixture(scope="module")
def note() -> bytes:
    # half a second of a falling tone: small, so each fuzz example decodes in a millisecond
    samples = b"".join(struct.pack("<h", (i * 37) % 20000 - 10000) for i in range(8000))
    return encode_pcm(Pcm(samples, 16_000)).data


@pytest.fixture(scope="module")
def note_file(note: bytes, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("note") / "note.ogg"
    path.write_bytes(note)
    return path


def _refused(data: bytes) -> VoiceReason:
    with pytest.raises(VoiceError) as caught:
        decode(data)
    return caught.value.reason


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", VoiceReason.NOT_AUDIO),
        (b"#!/bin/sh\nrm -rf ~\n" * 10, VoiceReason.NOT_AUDIO),
        (b"\x89PNG\r\n\x1a\n" + bytes(100), VoiceReason.NOT_AUDIO),
        (b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(100), VoiceReason.NOT_AUDIO),  # WAV, not Opus
        (b"OggS\x00\x02" + bytes(20) + b"\x01\x1e\x01vorbis" + bytes(100), VoiceReason.NOT_AUDIO),
        (b"OggS\x00\x02" + bytes(20) + b"\x01\x2a\x80theora" + bytes(100), VoiceReason.NOT_AUDIO),
        (b"OggS" + bytes(MAX_NOTE_BYTES), VoiceReason.TOO_LARGE),
    ],
)
def test_what_is_not_a_voice_note_is_refused(data: bytes, reason: VoiceReason) -> None:
    assert _refused(data) is reason
    with pytest.raises(VoiceError):
        duration_of(data)


def _crc(page: bytes) -> int:
    """The Ogg page checksum (CRC-32, polynomial 0x04C11DB7, not reflected, start 0)."""
    crc = 0
    for byte in page:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7 if crc & 0x80000000 else crc << 1) & 0xFFFFFFFF
    return crc


def _with_granule(note: bytes, granule: int) -> bytes:
    """``note`` with its last page's granule position set (and its checksum made right)."""
    last = note.rfind(b"OggS")
    page = bytearray(note[last:])
    page[6:14] = struct.pack("<q", granule)
    page[22:26] = bytes(4)
    page[22:26] = struct.pack("<I", _crc(bytes(page)))
    return note[:last] + bytes(page)


def test_a_note_cut_after_its_headers_is_damaged_or_shorter() -> None:
    samples = b"".join(struct.pack("<h", (i * 37) % 20000 - 10000) for i in range(64_000))
    long_note = encode_pcm(Pcm(samples, 16_000)).data
    headers_end = long_note.find(b"OggS", long_note.find(b"OpusTags"))
    assert _refused(long_note[:headers_end]) in {VoiceReason.DAMAGED, VoiceReason.EMPTY}
    assert decode(long_note[: len(long_note) // 2]).duration < decode(long_note).duration


def test_more_than_two_channels_or_a_surround_mapping_is_refused(note: bytes) -> None:
    body = 28  # one segment: the Opus header starts after the 27-byte page header + table
    assert note[body : body + 8] == b"OpusHead"
    for offset, value in ((9, 6), (18, 1), (8, 0x10)):  # channels, mapping family, version
        data = bytearray(note)
        data[body + offset] = value
        with pytest.raises(VoiceError) as caught:
            check_header(bytes(data))
        assert caught.value.reason is VoiceReason.NOT_AUDIO


def test_a_note_claiming_hours_is_refused_unread(note: bytes) -> None:
    """The last page's granule position says how long the note is: a lie is refused by
    duration_of, and decode stops at the real sound (it cannot run past it)."""
    assert _with_granule(note, struct.unpack_from("<q", note, note.rfind(b"OggS") + 6)[0]) == note
    data = _with_granule(note, (MAX_SECONDS + 60) * 48_000)
    with pytest.raises(VoiceError) as caught:
        duration_of(data)
    assert caught.value.reason is VoiceReason.TOO_LONG
    assert decode(data).duration < 1


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=4096))
def test_random_bytes_are_refused(data: bytes) -> None:
    with pytest.raises(VoiceError):
        decode(data)


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_mutated_notes_decode_or_are_refused(note: bytes, data: st.DataObject) -> None:
    """Flipped bytes, cuts and splices anywhere (the headers included): either the note still
    decodes within its bounds or VoiceError says why; nothing else escapes."""
    mutated = bytearray(note)
    for _ in range(data.draw(st.integers(1, 16))):
        where = data.draw(st.integers(0, len(mutated) - 1))
        mutated[where] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        start = data.draw(st.integers(0, len(mutated)))
        mutated[start:] = data.draw(st.binary(max_size=200))
    try:
        pcm = decode(bytes(mutated))
    except VoiceError as exc:
        assert isinstance(exc.reason, VoiceReason)
        return
    assert 0 < pcm.duration <= MAX_SECONDS + 1


def test_the_first_page_is_checked_before_ffmpeg(note: bytes) -> None:
    data = bytearray(note)
    data[5] = 0  # the first page does not begin a stream
    with pytest.raises(VoiceError, match="begin a stream"):
        decode(bytes(data))


def test_a_note_on_disk_decodes(note_file: Path) -> None:
    assert abs(decode(note_file.read_bytes()).duration - 0.5) < 0.05
