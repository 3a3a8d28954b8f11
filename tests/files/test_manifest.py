"""The file announcement: round trips, bounds, and every field's refusals."""

from __future__ import annotations

import contextlib
from dataclasses import replace

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshchat.errors import PacketError, PacketReason
from meshchat.files.manifest import (
    MAX_CAPTION_BYTES,
    MAX_FILE_SIZE,
    MAX_MANIFEST_BYTES,
    MAX_MEDIA_TYPE_BYTES,
    MAX_NAME_BYTES,
    FileKind,
    FileManifest,
)

ROOT = b"\x01" * 32
KEY = b"\x02" * 32
PHOTO = FileManifest(FileKind.IMAGE, "IMG_2041.jpg", 1_000_000, "image/jpeg", 1536, ROOT, KEY)


def _fields(m: FileManifest) -> list[object]:
    return cbor2.loads(m.encode())  # type: ignore[no-any-return]


def _enc(fields: list[object]) -> bytes:
    return cbor2.dumps(fields, canonical=True)


def test_a_photo_announcement_is_small() -> None:
    assert len(PHOTO.encode()) == 103
    assert FileManifest.decode(PHOTO.encode()) == PHOTO


def test_the_largest_announcement_is_the_stated_bound() -> None:
    big = FileManifest(
        FileKind.VOICE,
        "é" * (MAX_NAME_BYTES // 2) + "a",
        MAX_FILE_SIZE,
        "audio/" + "o" * (MAX_MEDIA_TYPE_BYTES - 6),
        1536,
        ROOT,
        KEY,
        "x" * MAX_CAPTION_BYTES,
    )
    assert len(big.encode()) == MAX_MANIFEST_BYTES
    assert FileManifest.decode(big.encode()) == big


texts = st.text(min_size=1, max_size=60)


@settings(max_examples=200)
@given(
    kind=st.sampled_from(list(FileKind)),
    name=texts,
    size=st.integers(0, MAX_FILE_SIZE),
    chunk=st.sampled_from([1024, 1536]),
    caption=st.text(max_size=80),
    subtype=st.from_regex(r"[a-z0-9][a-z0-9.+-]{0,20}", fullmatch=True),
    root=st.binary(min_size=32, max_size=32),
)
def test_round_trip(
    kind: FileKind, name: str, size: int, chunk: int, caption: str, subtype: str, root: bytes
) -> None:
    major = {FileKind.IMAGE: "image", FileKind.VOICE: "audio"}.get(kind, "application")
    m = FileManifest(kind, name, size, f"{major}/{subtype}", chunk, root, KEY, caption)
    assert FileManifest.decode(m.encode()) == m
    assert m.chunk_count * chunk >= size
    last = m.chunk_count - 1
    assert last * chunk + m.chunk_length(last) == size
    assert m.chunk_length(0) == min(size, chunk)


@settings(max_examples=500)
@given(st.binary(max_size=1200))
def test_any_bytes_decode_or_raise_packet_error(data: bytes) -> None:
    try:
        m = FileManifest.decode(data)
    except PacketError:
        return
    assert m.encode() == data  # what decodes is canonical


@settings(max_examples=300)
@given(st.data())
def test_any_mutation_of_a_good_encoding_is_decoded_or_refused(data: st.DataObject) -> None:
    wire = bytearray(PHOTO.encode())
    at = data.draw(st.integers(0, len(wire) - 1))
    wire[at] = data.draw(st.integers(0, 255))
    with contextlib.suppress(PacketError):
        FileManifest.decode(bytes(wire))


@pytest.mark.parametrize("size", [2**63, 2**64 - 1, MAX_FILE_SIZE + 1, -1])
def test_a_claimed_size_of_2_63_is_refused(size: int) -> None:
    fields = _fields(PHOTO)
    fields[3] = size
    with pytest.raises(PacketError) as caught:
        FileManifest.decode(_enc(fields))
    assert caught.value.reason is PacketReason.BAD_FIELD
    with pytest.raises(PacketError):
        replace(PHOTO, size=size)


@pytest.mark.parametrize(
    ("index", "value"),
    [
        (0, 2),  # version
        (1, 7),  # kind
        (1, -1),
        (2, ""),  # empty name
        (2, "n" * (MAX_NAME_BYTES + 1)),
        (2, b"bytes"),
        (4, "image/JPEG"),  # upper case
        (4, "text/plain"),  # not an image
        (4, "image"),
        (4, "image/jpeg; charset=x"),
        (5, 1000),  # not a multiple of 64
        (5, 128),  # below the minimum
        (5, 4096),  # above a frame
        (6, b"\x01" * 31),
        (7, b"\x02" * 33),
        (7, "key"),
    ],
)
def test_bad_fields_are_refused(index: int, value: object) -> None:
    fields = _fields(PHOTO)
    fields[index] = value
    with pytest.raises(PacketError):
        FileManifest.decode(_enc(fields))


def test_an_empty_caption_is_never_sent() -> None:
    with pytest.raises(PacketError):
        FileManifest.decode(_enc([*_fields(PHOTO), ""]))
    assert len(_fields(replace(PHOTO, caption=""))) == 8
    with pytest.raises(PacketError):
        FileManifest.decode(_enc([*_fields(PHOTO), "x" * (MAX_CAPTION_BYTES + 1)]))


def test_too_many_chunks_are_refused() -> None:
    with pytest.raises(PacketError):
        replace(PHOTO, size=MAX_FILE_SIZE, chunk_size=512)  # 2 million chunks
    assert replace(PHOTO, size=MAX_FILE_SIZE, chunk_size=1024).chunk_count == 2**20


def test_non_canonical_and_oversized_encodings_are_refused() -> None:
    wire = PHOTO.encode()
    # the size (1,000,000) as an 8-byte integer instead of 4
    longer = wire.replace(b"\x1a\x00\x0f\x42\x40", b"\x1b" + (1_000_000).to_bytes(8, "big"))
    with pytest.raises(PacketError) as caught:
        FileManifest.decode(longer)
    assert caught.value.reason is PacketReason.NOT_CANONICAL
    with pytest.raises(PacketError) as caught:
        FileManifest.decode(wire + b"\x00")
    assert caught.value.reason is PacketReason.MALFORMED
    with pytest.raises(PacketError) as caught:
        FileManifest.decode(bytes(MAX_MANIFEST_BYTES + 1))
    assert caught.value.reason is PacketReason.OVERSIZED
    with pytest.raises(PacketError):
        FileManifest.decode(cbor2.dumps({"size": 1}))


def test_empty_file_has_one_empty_chunk() -> None:
    m = replace(PHOTO, size=0)
    assert m.chunk_count == 1 and m.chunk_length(0) == 0
    with pytest.raises(IndexError):
        m.chunk_length(1)
