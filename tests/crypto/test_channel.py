"""Channels: the public #mesh and private channels keyed by name and passphrase."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshchat.crypto.channel import (
    PUBLIC_CHANNEL,
    ChannelKey,
    derive_channel_key,
    normalise_channel_name,
)
from meshchat.errors import DecryptionError, UsageError


@pytest.fixture(scope="module")
def hikers() -> ChannelKey:
    return derive_channel_key("#hikers", "trail mix")


def test_derivation_is_deterministic(hikers: ChannelKey) -> None:
    again = derive_channel_key("hikers", "trail mix")
    assert again == hikers
    assert hikers.private
    assert hikers.key is not None and len(hikers.key) == 32
    assert len(hikers.channel_id) == 16


def test_different_passphrase_gives_different_channel(hikers: ChannelKey) -> None:
    other = derive_channel_key("#hikers", "trail mix!")
    assert other.channel_id != hikers.channel_id
    assert other.key != hikers.key


def test_different_name_gives_different_channel(hikers: ChannelKey) -> None:
    other = derive_channel_key("#bikers", "trail mix")
    assert other.channel_id != hikers.channel_id
    assert other.key != hikers.key


def test_channel_id_does_not_reveal_the_name(hikers: ChannelKey) -> None:
    assert hikers.channel_id != ChannelKey.public("#hikers").channel_id


def test_seal_open_round_trip(hikers: ChannelKey) -> None:
    sealed = hikers.seal(b"meet at the bridge")
    assert b"meet at the bridge" not in sealed
    assert hikers.open(sealed) == b"meet at the bridge"
    assert hikers.seal(b"x") != hikers.seal(b"x")  # fresh nonces


def test_open_with_wrong_key_fails(hikers: ChannelKey) -> None:
    sealed = hikers.seal(b"secret")
    wrong = derive_channel_key("#hikers", "wrong")
    with pytest.raises(DecryptionError):
        wrong.open(sealed)


def test_tampered_payload_fails(hikers: ChannelKey) -> None:
    sealed = bytearray(hikers.seal(b"secret"))
    sealed[-1] ^= 1
    with pytest.raises(DecryptionError):
        hikers.open(bytes(sealed))
    with pytest.raises(DecryptionError):
        hikers.open(b"short")


def test_public_channel() -> None:
    mesh = ChannelKey.public()
    assert mesh.name == PUBLIC_CHANNEL == "#mesh"
    assert not mesh.private
    assert mesh == ChannelKey.public("MESH")
    assert mesh.channel_id != ChannelKey.public("#other").channel_id
    with pytest.raises(UsageError):
        mesh.seal(b"x")
    with pytest.raises(DecryptionError):
        mesh.open(b"x" * 40)


def test_from_key_matches_derivation(hikers: ChannelKey) -> None:
    assert hikers.key is not None
    assert ChannelKey.from_key("HIKERS", hikers.key) == hikers


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("mesh", "#mesh"),
        ("#Mesh", "#mesh"),
        ("  #HIKERS ", "#hikers"),
        ("#caf\u0065\u0301", "#caf\u00e9"),  # NFC
        ("#a-b_c.d", "#a-b_c.d"),
        ("#x" * 1 + "y" * 30, "#x" + "y" * 30),
    ],
)
def test_name_normalisation(raw: str, expected: str) -> None:
    assert normalise_channel_name(raw) == expected


@pytest.mark.parametrize(
    "raw", ["", "#", "   ", "#with space", "#semi;colon", "#" + "x" * 32, "##double", "#a/b"]
)
def test_bad_names_rejected(raw: str) -> None:
    with pytest.raises(UsageError):
        normalise_channel_name(raw)


def test_empty_passphrase_rejected() -> None:
    with pytest.raises(UsageError):
        derive_channel_key("#hikers", "")


@settings(max_examples=300)
@given(st.text(max_size=40))
def test_normalisation_is_idempotent_or_raises_usage_error(raw: str) -> None:
    try:
        name = normalise_channel_name(raw)
    except UsageError:
        return
    assert name.startswith("#")
    assert len(name.encode()) <= 32
    assert normalise_channel_name(name) == name


def test_surrogate_in_name_raises_usage_error() -> None:
    with pytest.raises(UsageError):
        normalise_channel_name("#a\udcff")
