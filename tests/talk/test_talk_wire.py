"""The live frame and the talk offer on the wire: round trips, strict decoding (also of any
bytes at all, by hypothesis), sealing."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshchat.errors import DecryptionError, PacketError
from meshchat.talk.wire import (
    HEADER_SIZE,
    MAX_BODY,
    TAG_SIZE,
    LiveFrame,
    TalkOffer,
    open_sound,
    seal_sound,
)

TALK_ID = bytes(range(16))
KEY = bytes(32)


def test_a_frame_round_trips_and_opens() -> None:
    sealed = seal_sound(KEY, TALK_ID, 7, b"opus packet")
    frame = LiveFrame(TALK_ID, 7, sealed)
    body = frame.encode()
    assert len(body) == HEADER_SIZE + TAG_SIZE + len(b"opus packet")
    back = LiveFrame.decode(body)
    assert back == frame
    assert open_sound(KEY, back) == b"opus packet"


def test_the_end_flag_is_sealed_with_the_sound() -> None:
    sealed = seal_sound(KEY, TALK_ID, 3, b"last", end=True)
    assert open_sound(KEY, LiveFrame(TALK_ID, 3, sealed, end=True)) == b"last"
    with pytest.raises(DecryptionError):  # dropping the flag does not open
        open_sound(KEY, LiveFrame(TALK_ID, 3, sealed, end=False))


@pytest.mark.parametrize(
    "change",
    [
        lambda f: LiveFrame(f.talk_id, f.seq + 1, f.sealed),  # another place in the talk
        lambda f: LiveFrame(bytes(16), f.seq, f.sealed),  # another talk
        lambda f: LiveFrame(f.talk_id, f.seq, f.sealed[:-1] + bytes([f.sealed[-1] ^ 1])),
    ],
)
def test_a_moved_or_altered_frame_does_not_open(change: object) -> None:
    frame = LiveFrame(TALK_ID, 9, seal_sound(KEY, TALK_ID, 9, b"sound"))
    with pytest.raises(DecryptionError):
        open_sound(KEY, change(frame))  # type: ignore[operator]
    with pytest.raises(DecryptionError):  # and never under another key
        open_sound(os.urandom(32), frame)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        bytes(HEADER_SIZE + TAG_SIZE - 1),  # no room for the tag
        bytes(MAX_BODY + 1),  # over the largest sound
        b"\x02" + bytes(HEADER_SIZE + TAG_SIZE - 1),  # an unknown flag
        b"\x80" + bytes(HEADER_SIZE + TAG_SIZE - 1),
    ],
)
def test_bad_frames_are_refused(body: bytes) -> None:
    with pytest.raises(PacketError):
        LiveFrame.decode(body)


@given(st.binary(max_size=MAX_BODY + 40))
def test_any_bytes_decode_to_a_frame_that_encodes_back_or_raise(body: bytes) -> None:
    try:
        frame = LiveFrame.decode(body)
    except PacketError:
        return
    assert frame.encode() == body
    assert HEADER_SIZE + TAG_SIZE <= len(body) <= MAX_BODY


def test_an_offer_round_trips() -> None:
    offer = TalkOffer.new()
    assert TalkOffer.decode(offer.encode()) == offer
    assert TalkOffer.new().key != offer.key


@pytest.mark.parametrize(
    "blob",
    [
        b"",
        b"\x84\x18\x28",  # cut short
        TalkOffer(TALK_ID, KEY).encode()[:-1] + b"\x15",  # 21 ms frames
        bytes(200),
    ],
)
def test_bad_offers_are_refused(blob: bytes) -> None:
    with pytest.raises(PacketError):
        TalkOffer.decode(blob)


@given(st.binary(max_size=200))
def test_any_bytes_decode_to_an_offer_or_raise(blob: bytes) -> None:
    try:
        offer = TalkOffer.decode(blob)
    except PacketError:
        return
    assert offer.encode() == blob
