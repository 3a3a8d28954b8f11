"""File announcements as message texts: round trips, bounds, and any text in (hypothesis)."""

from __future__ import annotations

import base64
import contextlib
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshchat.errors import PacketError, PacketReason
from meshchat.files.announce import (
    MAX_ANNOUNCED_BYTES,
    PREFIX,
    announce_text,
    describe,
    parse_text,
    shown_text,
)
from meshchat.files.manifest import FileKind, FileManifest
from meshchat.wire.payloads import MAX_TEXT_BYTES


def _manifest(name: str = "map.png", caption: str = "") -> FileManifest:
    return FileManifest(
        FileKind.IMAGE, name, 70_000, "image/png", 1536, os.urandom(32), os.urandom(32), caption
    )


def test_round_trip_and_what_faces_show() -> None:
    manifest, sender = _manifest(caption="the route"), os.urandom(16)
    text = announce_text(manifest, sender)
    assert text.startswith(PREFIX) and len(text.encode()) <= MAX_TEXT_BYTES
    announced = parse_text(text)
    assert announced is not None
    assert announced.manifest == manifest and announced.sender == sender
    assert describe(manifest) == "[picture] map.png (70.0 kB) the route"
    assert shown_text(text) == describe(manifest)


def test_an_announcement_too_long_for_a_message_is_refused_at_the_sender() -> None:
    long = _manifest(name="n" * 255, caption="c" * 500)
    assert len(long.encode()) > MAX_ANNOUNCED_BYTES
    with pytest.raises(PacketError) as caught:
        announce_text(long, bytes(16))
    assert caught.value.reason is PacketReason.OVERSIZED
    # the largest that fits is a whole message text, no more
    fits = _manifest(name="n" * 120, caption="c" * 400)
    assert len(announce_text(fits, bytes(16)).encode()) <= MAX_TEXT_BYTES


def test_texts_that_only_look_like_announcements_are_typed_errors() -> None:
    for bad in (PREFIX, PREFIX + "!!!", PREFIX + "AAAA", PREFIX + "A" * 1100):
        with pytest.raises(PacketError):
            parse_text(bad)
        assert shown_text(bad) == bad  # shown as the text it is (escaped by the face)
    assert parse_text("hello") is None and parse_text("F1:" + "A" * 40) is None


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_any_text_is_read_or_refused_never_a_crash(text: str) -> None:
    for candidate in (text, PREFIX + text):
        with contextlib.suppress(PacketError):
            parse_text(candidate)


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=0, max_size=700))
def test_any_payload_after_the_prefix_is_read_or_refused(blob: bytes) -> None:
    text = PREFIX + base64.urlsafe_b64encode(blob).decode().rstrip("=")
    try:
        announced = parse_text(text)
    except PacketError:
        return
    assert announced is not None and len(announced.sender) == 16
