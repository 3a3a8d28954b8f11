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
    MAX_CONTACT_AGREEMENTS,
    MAX_PREKEYS,
    MAX_STRANGER_AGREEMENTS,
    REPLAY_HORIZON_MS,
    ROTATE_MS,
    PrekeyState,
)
from meshchat.errors import IdentityError, StoreError
from meshchat.identity import ContactCard, Identity, SignedPrekey
from meshchat.store import MAX_BLOB_BYTES

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


def test_strangers_cannot_fill_the_cache_for_contacts_nor_rotate_the_prekey() -> None:
    state = PrekeyState(ME)
    state.maintain(NOW)
    first = state.current
    assert first is not None
    taken = 0
    for i in range(4 * MAX_STRANGER_AGREEMENTS):
        if state.can_accept(first):
            state.remember_initial(first, os.urandom(32), NOW + i)
            taken += 1
    assert taken == MAX_STRANGER_AGREEMENTS
    assert not state.can_accept(first)
    assert state.maintain(NOW + 1_000) is False
    assert state.current is first  # no early rotation: the card's prekey stays
    assert state.can_accept(first, known=True)
    eph = os.urandom(32)
    state.remember_initial(first, eph, NOW + 2_000, known=True)
    assert state.seen_initial(first, eph)


def test_entries_live_for_the_packet_horizon_after_the_newest_packet() -> None:
    state = PrekeyState(ME)
    state.maintain(NOW)
    first = state.current
    assert first is not None
    old, retried = os.urandom(32), os.urandom(32)
    state.remember_initial(first, old, NOW)
    state.remember_initial(first, retried, NOW)
    assert state.touch_initial(first, retried, NOW + 3_600_000)  # a retry an hour later
    assert not state.touch_initial(first, retried, NOW)
    state.maintain(NOW + REPLAY_HORIZON_MS + 1_000)
    assert not state.seen_initial(first, old)
    assert state.seen_initial(first, retried)
    assert state.can_accept(first)  # the strangers' room came back as entries aged out


def test_contacts_entries_are_bounded_oldest_first() -> None:
    state = PrekeyState(ME)
    state.maintain(NOW)
    first = state.current
    assert first is not None
    ephemerals = [os.urandom(32) for _ in range(MAX_CONTACT_AGREEMENTS + 5)]
    for i, eph in enumerate(ephemerals):
        state.remember_initial(first, eph, NOW + i * 1000, known=True)
    assert len(first.replay) == MAX_CONTACT_AGREEMENTS
    assert not state.seen_initial(first, ephemerals[0])
    assert state.seen_initial(first, ephemerals[-1])


def test_at_most_max_prekeys_are_held() -> None:
    state = PrekeyState(ME)
    state.maintain(NOW)
    for i in range(MAX_PREKEYS + 3):
        state.maintain(NOW + (i + 1) * ROTATE_MS // 4 * 4)
    assert len(state.keys) <= MAX_PREKEYS


def test_blob_stays_within_a_store_row_under_any_flood() -> None:
    state = PrekeyState(ME)
    state.maintain(NOW)
    for week in range(MAX_PREKEYS + 1):
        at = NOW + week * ROTATE_MS
        state.maintain(at)
        for key in state.keys:
            for i in range(MAX_STRANGER_AGREEMENTS + MAX_CONTACT_AGREEMENTS):
                known = i % 2 == 0
                if state.can_accept(key, known):
                    state.remember_initial(key, os.urandom(32), at, known)
        assert len(state.blob()) <= MAX_BLOB_BYTES
    blob = state.blob()
    again = PrekeyState.from_blob(ME, blob)
    assert [k.signed for k in again.keys] == [k.signed for k in state.keys]
    assert [k.replay for k in again.keys] == [k.replay for k in state.keys]
    assert again.blob() == blob


def test_format_1_blob_still_loads_and_its_entries_are_dated() -> None:
    state = PrekeyState(ME)
    state.maintain(NOW)
    key = state.current
    assert key is not None
    eph = os.urandom(32)
    state.remember_initial(key, eph, NOW)
    rid = next(iter(key.replay))
    old = cbor2.dumps(
        [1, [[key.private, key.signed.signature, key.signed.created_ms, None, [rid]]]],
        canonical=True,
    )
    again = PrekeyState.from_blob(ME, old)
    loaded = again.current
    assert loaded is not None and again.seen_initial(loaded, eph)
    assert again.maintain(NOW + 5_000) is True
    assert loaded.replay[rid][0] == (NOW + 5_000) // 1000


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
