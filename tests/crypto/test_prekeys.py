"""Signed prekeys: signatures, cards, rotation, the grace period and the replay cache."""

from __future__ import annotations

import contextlib
import os

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshchat.crypto.prekeys import (
    GRACE_MS,
    MAX_PREKEYS,
    REPLAY_CAPACITY,
    ROTATE_MS,
    PrekeyState,
)
from meshchat.errors import IdentityError, StoreError
from meshchat.identity import ContactCard, Identity, SignedPrekey

NOW = 1_700_000_000_000
ME = Identity.from_seeds(b"\x01" * 32, b"\x02" * 32)


def test_signed_prekey_verifies_only_under_its_owner() -> None:
    state = PrekeyState(ME)
    state.maintain(NOW)
    signed = state.current.signed  # type: ignore[union-attr]
    assert signed.verify(ME.public)
    assert not signed.verify(Identity.generate().public)
    assert not SignedPrekey(signed.public, bytes(64), signed.created_ms).verify(ME.public)
    with pytest.raises(IdentityError):
        SignedPrekey(b"short", signed.signature, 0)


def test_card_v2_round_trip_and_v1_still_read() -> None:
    state = PrekeyState(ME)
    state.maintain(NOW)
    card = ME.card("Me", state.current.signed)  # type: ignore[union-attr]
    assert card.version == 2
    parsed = ContactCard.from_text(card.to_text())
    assert parsed == card and parsed.prekey == card.prekey
    old = ContactCard.from_text(ME.card("Me").to_text())
    assert old.version == 1 and old.prekey is None


def test_rotation_grace_and_deletion() -> None:
    state = PrekeyState(ME)
    assert state.maintain(NOW) is True
    first = state.current
    assert first is not None
    assert state.maintain(NOW + ROTATE_MS - 1) is False
    assert state.maintain(NOW + ROTATE_MS) is True
    assert state.current is not first and state.get(first.public) is first
    assert first.retired_ms == NOW + ROTATE_MS
    # kept through its grace period, then deleted
    state.maintain(NOW + ROTATE_MS + GRACE_MS - 1)
    assert state.get(first.public) is first
    state.maintain(NOW + ROTATE_MS + GRACE_MS)
    assert state.get(first.public) is None


def test_a_node_off_for_weeks_does_not_stretch_the_grace_period() -> None:
    state = PrekeyState(ME)
    state.maintain(NOW)
    first = state.current
    assert first is not None
    state.maintain(NOW + ROTATE_MS + GRACE_MS + 1)  # nothing ran in between
    assert state.get(first.public) is None
    assert len(state.keys) == 1


def test_full_replay_cache_rotates_early_and_old_key_accepts_no_more() -> None:
    state = PrekeyState(ME)
    state.maintain(NOW)
    first = state.current
    assert first is not None
    for _ in range(REPLAY_CAPACITY):
        state.remember_initial(first, os.urandom(32))
    assert not state.can_accept(first)
    assert state.maintain(NOW + 1) is True
    assert state.current is not first and state.get(first.public) is first
    eph = os.urandom(32)
    assert not state.seen_initial(first, eph)
    state.remember_initial(state.current, eph)  # type: ignore[arg-type]
    assert state.seen_initial(state.current, eph)  # type: ignore[arg-type]


def test_at_most_max_prekeys_are_held() -> None:
    state = PrekeyState(ME)
    state.maintain(NOW)
    for i in range(MAX_PREKEYS + 3):
        current = state.current
        assert current is not None
        for _ in range(REPLAY_CAPACITY):
            current.replay.add(os.urandom(12))
        state.maintain(NOW + i + 1)
    assert len(state.keys) == MAX_PREKEYS


def test_blob_round_trip_fits_a_store_row() -> None:
    state = PrekeyState(ME)
    state.maintain(NOW)
    for i in range(MAX_PREKEYS):
        for _ in range(REPLAY_CAPACITY - 1):
            state.remember_initial(state.current, os.urandom(32))  # type: ignore[arg-type]
        state.maintain(NOW + (i + 1) * ROTATE_MS)
    blob = state.blob()
    assert len(blob) < 72 * 1024
    again = PrekeyState.from_blob(ME, blob)
    assert [k.signed for k in again.keys] == [k.signed for k in state.keys]
    assert [k.replay for k in again.keys] == [k.replay for k in state.keys]
    assert again.blob() == blob


def test_blob_of_another_identity_is_refused() -> None:
    state = PrekeyState(ME)
    state.maintain(NOW)
    with pytest.raises(StoreError):
        PrekeyState.from_blob(Identity.generate(), state.blob())


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_garbage_blob_raises_store_error(data: bytes) -> None:
    with pytest.raises(StoreError):
        PrekeyState.from_blob(ME, cbor2.dumps([1, [[data, data, 0, None, []]]]))
    with contextlib.suppress(StoreError):
        PrekeyState.from_blob(ME, data)
