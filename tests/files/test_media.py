"""Media types against the bytes: a voice note that is not audio, an image that is not one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from files_pair import RECEIVER, Harness
from hypothesis import given, settings
from hypothesis import strategies as st

from meshchat.errors import TransferError, TransferReason
from meshchat.files import Downloads, FileKind, Seeder, SentFile, Sink, new_key, prepare, split
from meshchat.files.effects import KeepHashes, WriteChunk
from meshchat.files.media import KNOWN_TYPES, check_media
from meshchat.files.sink import PARTIAL_DIR

OGG_PAGE = b"OggS\x00\x02" + bytes(20) + b"\x01\x13"
OPUS_PAGE = OGG_PAGE + b"OpusHead\x01\x018\x01\x80>\x00\x00\x00\x00\x00"
VORBIS_PAGE = OGG_PAGE[:-1] + b"\x1e\x01vorbis\x00\x00\x00\x00\x01"
THEORA_PAGE = OGG_PAGE[:-1] + b"\x2a\x80theora\x03\x02\x01"

GOOD = {
    "image/jpeg": b"\xff\xd8\xff\xe0\x00\x10JFIF",
    "image/png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
    "image/gif": b"GIF89a\x01\x00",
    "image/webp": b"RIFF\x24\x00\x00\x00WEBPVP8 ",
    "image/heic": b"\x00\x00\x00\x18ftypheic\x00\x00",
    # the first page of an Opus voice note (meshchat.voice), and of an Ogg Vorbis file
    "audio/ogg": OPUS_PAGE,
    "audio/opus": OPUS_PAGE,
    "audio/wav": b"RIFF\x24\x00\x00\x00WAVEfmt ",
    "audio/mpeg": b"ID3\x04\x00\x00",
    "audio/flac": b"fLaC\x00\x00\x00\x22",
}


@pytest.mark.parametrize(("media_type", "head"), GOOD.items())
def test_right_bytes_pass(media_type: str, head: bytes) -> None:
    kind = FileKind.IMAGE if media_type.startswith("image/") else FileKind.VOICE
    check_media(kind, media_type, head)
    check_media(FileKind.FILE, media_type, head)


@pytest.mark.parametrize(
    ("kind", "media_type", "head"),
    [
        (FileKind.VOICE, "audio/ogg", b"#!/bin/sh\nrm -rf ~"),  # an audio file that is not audio
        (FileKind.VOICE, "audio/wav", b"RIFF\x24\x00\x00\x00WEBPVP8 "),  # a picture
        (FileKind.VOICE, "audio/ogg", b""),
        (FileKind.VOICE, "audio/ogg", b"OggS\x00\x02\x00\x00"),  # no codec header
        (FileKind.VOICE, "audio/ogg", THEORA_PAGE),  # a video in Ogg
        (FileKind.VOICE, "audio/opus", OPUS_PAGE.replace(b"\x02", b"\x00", 1)),  # mid-stream
        (FileKind.VOICE, "audio/ogg", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"),  # a picture
        (FileKind.IMAGE, "image/png", b"\xff\xd8\xff\xe0"),  # a JPEG called PNG
        (FileKind.IMAGE, "image/jpeg", b"MZ\x90\x00"),  # a Windows program
        (FileKind.IMAGE, "image/x-unknown", b"\x89PNG\r\n\x1a\n"),  # no face can show it
        (FileKind.VOICE, "audio/x-unknown", b"OggS"),
        (FileKind.FILE, "image/png", b"not a png"),  # a known type is checked for files too
    ],
)
def test_wrong_bytes_are_refused(kind: FileKind, media_type: str, head: bytes) -> None:
    with pytest.raises(TransferError) as caught:
        check_media(kind, media_type, head)
    assert caught.value.reason is TransferReason.BAD_MEDIA


def test_ogg_holds_any_audio_codec_but_not_video() -> None:
    check_media(FileKind.VOICE, "audio/ogg", VORBIS_PAGE)
    with pytest.raises(TransferError):
        check_media(FileKind.VOICE, "audio/ogg", THEORA_PAGE)


def test_a_plain_file_of_an_unknown_type_is_not_checked() -> None:
    check_media(FileKind.FILE, "application/x-whatever", os.urandom(16))
    assert "audio/ogg" in KNOWN_TYPES


def test_a_voice_note_that_is_not_audio_is_never_saved(tmp_path: Path) -> None:
    data = b"this is a text file pretending to be a voice note" * 100
    manifest, tree = prepare(
        split(data),
        kind=FileKind.VOICE,
        name="voice.ogg",
        size=len(data),
        media_type="audio/ogg",
        key=new_key(),
    )
    h = Harness(Downloads(), data)
    h.seeders["alice"] = Seeder(0)
    h.seeders["alice"].add(SentFile(manifest, tree))
    sink = Sink.open(tmp_path, manifest)
    h.apply(RECEIVER, h.downloads.offer(manifest, "alice", 0))
    h.run()
    for effect in h.effects:
        if isinstance(effect, WriteChunk):
            sink.write(effect.offset, effect.plaintext)
        elif isinstance(effect, KeepHashes):
            sink.keep_hashes(effect.level, effect.index, effect.data)
    with pytest.raises(TransferError) as caught:
        sink.finish()
    assert caught.value.reason is TransferReason.BAD_MEDIA
    assert caught.value.root == manifest.root
    assert sorted(p.name for p in tmp_path.iterdir()) == [PARTIAL_DIR]
    assert list((tmp_path / PARTIAL_DIR).iterdir()) == []


@settings(max_examples=300)
@given(
    kind=st.sampled_from(list(FileKind)),
    media_type=st.sampled_from([*sorted(KNOWN_TYPES), "image/x-new", "application/pdf"]),
    head=st.binary(max_size=16),
)
def test_any_bytes_pass_or_are_refused_with_bad_media(
    kind: FileKind, media_type: str, head: bytes
) -> None:
    try:
        check_media(kind, media_type, head)
    except TransferError as exc:
        assert exc.reason is TransferReason.BAD_MEDIA
