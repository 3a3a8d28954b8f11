"""The pure gateway policy: envelopes, names and where frames go (meshchat.gateway)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshchat.errors import DecryptionError, PacketError
from meshchat.gateway import (
    MAX_BATCH_ENVELOPE,
    MAX_BATCH_FRAMES,
    MAX_ENVELOPE,
    PAD_BUCKET,
    RouteKind,
    channel_key,
    channel_tag,
    mailbox_key,
    mailbox_tag,
    open_batch,
    open_envelope,
    route,
    seal_batch,
    seal_envelope,
)
from meshchat.identity import Identity
from meshchat.wire import BROADCAST, Destination, PacketKind, Suite, build, encode
from meshchat.wire.packet import MAX_AGE_MS, MAX_PACKET_SIZE

SENDER = Identity.generate()
NODE = bytes(range(16))
CHANNEL = bytes(range(16, 32))


def frame_to(
    destination: Destination, payload: bytes = b"hi", kind: PacketKind = PacketKind.MESSAGE
) -> bytes:
    return encode(build(SENDER, kind, destination, Suite.SIGNED, payload, 1_000_000, 4))


def test_names_and_keys_are_distinct_and_never_the_id_itself() -> None:
    values = [mailbox_tag(NODE), mailbox_key(NODE), channel_tag(NODE), channel_key(NODE)]
    assert len({bytes(v) for v in values}) == 4
    assert all(NODE not in v and NODE.hex() not in v.hex() for v in values)
    assert len(mailbox_tag(NODE)) == 16 and len(mailbox_key(NODE)) == 32
    assert mailbox_tag(NODE) == mailbox_tag(bytes(NODE))  # deterministic


@pytest.mark.parametrize("size", [1, 200, 1000, MAX_PACKET_SIZE])
def test_envelope_round_trip_and_padding(size: int) -> None:
    frame = bytes([7]) * size
    sealed = seal_envelope(mailbox_key(NODE), frame, 1234)
    assert (len(sealed) - 43) % PAD_BUCKET == 0
    assert len(sealed) <= MAX_ENVELOPE
    assert open_envelope(mailbox_key(NODE), sealed) == (frame, 1234)


def test_envelope_sizes_fall_in_buckets() -> None:
    sizes = {len(seal_envelope(mailbox_key(NODE), bytes(n), 0)) for n in range(1, 240)}
    assert len(sizes) == 1


def test_a_batch_round_trips_and_a_single_opener_refuses_it() -> None:
    key = mailbox_key(NODE)
    frames = [bytes([i + 1]) * (100 * i + 1) for i in range(MAX_BATCH_FRAMES)]
    sealed = seal_batch(key, frames, 77)
    assert (len(sealed) - 43) % PAD_BUCKET == 0 and len(sealed) <= MAX_BATCH_ENVELOPE
    assert open_batch(key, sealed) == (frames, 77)
    with pytest.raises(PacketError):
        open_envelope(key, sealed)
    single = seal_envelope(key, b"one", 5)
    assert open_batch(key, single) == ([b"one"], 5)
    for bad in ([], [b""], [b"x"] * (MAX_BATCH_FRAMES + 1), [bytes(MAX_PACKET_SIZE)] * 9):
        with pytest.raises(PacketError):
            seal_batch(key, bad, 0)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=300), min_size=1, max_size=MAX_BATCH_FRAMES))
def test_any_batch_round_trips(frames: list[bytes]) -> None:
    key = mailbox_key(NODE)
    assert open_batch(key, seal_batch(key, frames, 9)) == (frames, 9)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=4000))
def test_opening_any_inner_bytes_raises_only_typed_errors(inner: bytes) -> None:
    import nacl.secret
    import nacl.utils

    key = mailbox_key(NODE)
    padded = inner + bytes(-len(inner) % PAD_BUCKET)
    sealed = b"MC\x01" + bytes(nacl.secret.SecretBox(key).encrypt(padded, nacl.utils.random(24)))
    with contextlib.suppress(PacketError):
        open_batch(key, sealed)


def test_envelope_hides_the_frame() -> None:
    frame = frame_to(Destination.node(NODE), b"a secret plaintext")
    sealed = seal_envelope(mailbox_key(NODE), frame, 99)
    for secret in (b"a secret plaintext", NODE, SENDER.public.sign_public):
        assert secret not in sealed


def test_wrong_key_and_tampering_raise_decryption_error() -> None:
    sealed = seal_envelope(mailbox_key(NODE), b"frame", 5)
    with pytest.raises(DecryptionError):
        open_envelope(mailbox_key(CHANNEL), sealed)
    tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(DecryptionError):
        open_envelope(mailbox_key(NODE), tampered)


def test_bad_envelopes_raise_packet_errors() -> None:
    key = mailbox_key(NODE)
    with pytest.raises(PacketError):
        open_envelope(key, b"MC\x01" + bytes(MAX_ENVELOPE))
    with pytest.raises(PacketError):
        open_envelope(key, b"XX\x01" + bytes(400))
    with pytest.raises(PacketError):
        seal_envelope(key, bytes(MAX_PACKET_SIZE + 1), 0)


@given(st.binary(max_size=3000))
def test_open_envelope_only_raises_typed_errors(data: bytes) -> None:
    with contextlib.suppress(PacketError, DecryptionError):
        open_envelope(mailbox_key(NODE), data)


@given(st.binary(max_size=2200))
def test_route_never_crashes_on_garbage(data: bytes) -> None:
    assert route(data, set(), {CHANNEL}) is None or isinstance(data, bytes)


def test_route_sends_remote_direct_messages_to_the_mailbox() -> None:
    frame = frame_to(Destination.node(NODE))
    target = route(frame, set(), set())
    assert target is not None and target.kind is RouteKind.MAILBOX and target.target == NODE
    assert target.tag == mailbox_tag(NODE) and target.key == mailbox_key(NODE)
    assert target.expires_ms == 1_000_000 + MAX_AGE_MS


def test_route_keeps_local_recipients_announces_and_unbridged_channels() -> None:
    assert route(frame_to(Destination.node(NODE)), {NODE}, set()) is None
    assert route(frame_to(BROADCAST, kind=PacketKind.ANNOUNCE), set(), set()) is None
    assert route(frame_to(Destination.channel(CHANNEL)), set(), set()) is None
    bridged = route(frame_to(Destination.channel(CHANNEL)), set(), {CHANNEL})
    assert bridged is not None and bridged.kind is RouteKind.CHANNEL
    assert bridged.tag == channel_tag(CHANNEL) and bridged.key == channel_key(CHANNEL)
    assert route(b"not a frame", set(), set()) is None
