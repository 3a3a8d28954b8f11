"""Whether a received file's first bytes are what its announced media type says.

A picture or a voice note is shown or played by the receiving face, so its bytes must be of the
announced type: :func:`check_media` compares the file's first bytes with the signatures of the
types below and raises :class:`TransferError` (``BAD_MEDIA``) on a mismatch ("an audio file
that is not audio"). For kind ``image`` and ``voice`` the media type must be one of them (a
face cannot show what it does not know); a plain ``file`` is checked only when its type is
one of them, and saved as it is otherwise.

An Ogg file (``audio/ogg``, ``audio/opus``) must also begin with the header of an audio codec
(Opus, Vorbis, FLAC or Speex) as the first packet of its first page: Ogg also carries video
(Theora), which is not a voice note. A voice note made here is Opus in Ogg
(:mod:`meshchat.voice`), whose receiver checks it again, strictly, before decoding.

This is a check of the container, not of the whole content: a file that starts right and is
damaged later is still refused by the decoder that opens it, not here.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Callable

from meshchat.errors import TransferError, TransferReason
from meshchat.files.manifest import FileKind

__all__ = ["HEAD_BYTES", "KNOWN_TYPES", "announced_name", "check_media", "media_type_of"]

#: How many of a file's first bytes the check reads.
HEAD_BYTES = 64


def _starts(*prefixes: bytes) -> Callable[[bytes], bool]:
    return lambda head: head.startswith(prefixes)


def _riff(form: bytes) -> Callable[[bytes], bool]:
    return lambda head: head[:4] == b"RIFF" and head[8:12] == form


def _ftyp(*brands: bytes) -> Callable[[bytes], bool]:
    return lambda head: head[4:8] == b"ftyp" and (not brands or head[8:12] in brands)


def _mpeg_audio(head: bytes) -> bool:
    return head[:3] == b"ID3" or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0)


#: The first bytes of an Ogg stream's first packet, for the audio codecs Ogg carries.
_OGG_AUDIO = (b"OpusHead", b"\x01vorbis", b"\x7fFLAC", b"Speex   ")
_OGG_PAGE_HEADER = 27  # "OggS", version, flags, granule, serial, sequence, crc, segment count


def _ogg_audio(head: bytes) -> bool:
    """An Ogg page that begins a stream, whose first packet is an audio codec's header."""
    if len(head) < _OGG_PAGE_HEADER or head[:5] != b"OggS\x00" or not head[5] & 0x02:
        return False
    body = _OGG_PAGE_HEADER + head[26]
    return head[body:].startswith(_OGG_AUDIO)


_HEIF = (b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1", b"avif")
_SIGNATURES: dict[str, Callable[[bytes], bool]] = {
    "image/jpeg": _starts(b"\xff\xd8\xff"),
    "image/png": _starts(b"\x89PNG\r\n\x1a\n"),
    "image/gif": _starts(b"GIF87a", b"GIF89a"),
    "image/webp": _riff(b"WEBP"),
    "image/bmp": _starts(b"BM"),
    "image/tiff": _starts(b"II*\x00", b"MM\x00*"),
    "image/heic": _ftyp(*_HEIF),
    "image/heif": _ftyp(*_HEIF),
    "image/avif": _ftyp(*_HEIF),
    "audio/ogg": _ogg_audio,
    "audio/opus": _ogg_audio,
    "audio/wav": _riff(b"WAVE"),
    "audio/x-wav": _riff(b"WAVE"),
    "audio/wave": _riff(b"WAVE"),
    "audio/flac": _starts(b"fLaC"),
    "audio/mpeg": _mpeg_audio,
    "audio/mp4": _ftyp(),
    "audio/x-m4a": _ftyp(),
    "audio/webm": _starts(b"\x1a\x45\xdf\xa3"),
}
#: Media types whose bytes are checked.
KNOWN_TYPES = frozenset(_SIGNATURES)


def check_media(kind: FileKind, media_type: str, head: bytes) -> None:
    """Raise :class:`TransferError` (``BAD_MEDIA``) unless ``head`` (the file's first
    :data:`HEAD_BYTES` bytes, or all of a shorter file) fits the announcement."""
    signature = _SIGNATURES.get(media_type)
    if signature is None:
        if kind is FileKind.FILE:
            return
        raise TransferError(
            TransferReason.BAD_MEDIA, f"a {kind.name.lower()} of unknown type {media_type}"
        )
    if not signature(head):
        raise TransferError(TransferReason.BAD_MEDIA, f"the bytes are not {media_type}")


#: bytes of the sender's file name announced (the saved name is shorter still)
_NAME_KEEP = 120


def media_type_of(name: str, kind: FileKind) -> str:
    """The media type a file is announced with, from its name (``image/...`` for a picture,
    ``audio/ogg`` for a voice note unless the name says another audio type)."""
    guessed, _ = mimetypes.guess_type(name)
    guessed = (guessed or "").lower()
    if kind is FileKind.IMAGE:
        return guessed if guessed.startswith("image/") else "image/jpeg"
    if kind is FileKind.VOICE:
        return guessed if guessed.startswith("audio/") else "audio/ogg"
    return guessed or "application/octet-stream"


def announced_name(name: str) -> str:
    """The first ``_NAME_KEEP`` bytes of a file's name, as announced (never empty)."""
    encoded = name.encode()[:_NAME_KEEP]
    return encoded.decode(errors="ignore") or "file"
