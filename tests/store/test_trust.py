"""Contact cards and key changes: refused loudly, replaced only on request, never by a forgery."""

from __future__ import annotations

import base64
from pathlib import Path

import cbor2
import pytest

from meshchat.errors import IdentityError, UsageError
from meshchat.identity import ContactCard, Identity
from meshchat.store import CardOutcome, Contact, KeyChangeError, Store, Trust
from meshchat.store.trust import fold_name, plan_card

ALICE = Identity.generate()
ALICE_NEW = Identity.generate()
MALLORY = Identity.generate()


def card(identity: Identity, name: str) -> ContactCard:
    return identity.card(name)


def test_a_new_card_is_added_unverified_with_its_card(store: Store) -> None:
    result = store.add_card(card(ALICE, "Alice"), now_ms=5)
    assert result.outcome is CardOutcome.ADDED
    stored = store.get_contact(ALICE.node_id)
    assert stored == result.contact
    assert stored is not None
    assert stored.trust is Trust.UNVERIFIED
    assert stored.card == card(ALICE, "Alice").to_text()
    assert stored.added_ms == 5
    assert ContactCard.from_text(stored.card).identity == ALICE.public


def test_the_same_card_again_keeps_trust_and_updates_the_name(store: Store) -> None:
    store.add_card(card(ALICE, "Alice"), now_ms=5)
    store.set_trust(ALICE.node_id, Trust.VERIFIED)
    assert store.add_card(card(ALICE, "Alice"), now_ms=9).outcome is CardOutcome.UNCHANGED
    result = store.add_card(card(ALICE, "Alice"), name="Ali", now_ms=9)
    assert result.outcome is CardOutcome.UPDATED
    stored = store.get_contact(ALICE.node_id)
    assert stored is not None
    assert (stored.name, stored.trust, stored.added_ms) == ("Ali", Trust.VERIFIED, 5)


@pytest.mark.parametrize("name", ["Alice", "ALICE", " alice "])
def test_a_card_with_a_known_name_and_other_keys_is_refused(store: Store, name: str) -> None:
    store.add_card(card(ALICE, "Alice"), now_ms=5)
    store.set_trust(ALICE.node_id, Trust.VERIFIED)
    with pytest.raises(KeyChangeError, match="KEY CHANGE") as info:
        store.add_card(card(MALLORY, "Mallory"), name=name, now_ms=6)
    assert [c.node_id for c in info.value.conflicts] == [ALICE.node_id]
    assert info.value.new.node_id == MALLORY.node_id
    assert isinstance(info.value, UsageError)
    # Nothing changed.
    assert [(c.node_id, c.trust) for c in store.list_contacts()] == [
        (ALICE.node_id, Trust.VERIFIED)
    ]


def test_replace_marks_the_old_contact_compromised_and_adds_the_new_unverified(
    store: Store,
) -> None:
    store.add_card(card(ALICE, "Alice"), now_ms=5)
    store.set_trust(ALICE.node_id, Trust.VERIFIED)
    result = store.add_card(card(ALICE_NEW, "Alice"), now_ms=6, replace_keys=True)
    assert result.outcome is CardOutcome.REPLACED
    assert [c.node_id for c in result.compromised] == [ALICE.node_id]
    old, new = store.get_contact(ALICE.node_id), store.get_contact(ALICE_NEW.node_id)
    assert old is not None and new is not None
    assert old.trust is Trust.COMPROMISED  # kept, not deleted
    assert new.trust is Trust.UNVERIFIED
    # Both are called Alice; the name now means the active contact.
    assert store.find_contact("alice") == new
    assert store.find_contact(ALICE.node_id.hex()[:8]) == old
    # A second key change is judged against the new contact only.
    with pytest.raises(KeyChangeError) as info:
        store.add_card(card(MALLORY, "Alice"), now_ms=7)
    assert [c.node_id for c in info.value.conflicts] == [ALICE_NEW.node_id]


def test_compromised_keys_cannot_come_back(store: Store) -> None:
    store.add_card(card(ALICE, "Alice"), now_ms=5)
    store.add_card(card(ALICE_NEW, "Alice"), now_ms=6, replace_keys=True)
    for replace_keys in (False, True):
        with pytest.raises(UsageError, match="marked compromised"):
            store.add_card(card(ALICE, "Alice"), now_ms=7, replace_keys=replace_keys)
    old = store.get_contact(ALICE.node_id)
    assert old is not None and old.trust is Trust.COMPROMISED


def test_a_forged_card_never_replaces_a_key(store: Store) -> None:
    """A card carrying Alice's signing key and Mallory's box key, not signed by Alice."""
    store.add_card(card(ALICE, "Alice"), now_ms=5)
    genuine = card(MALLORY, "Alice")
    forged = ContactCard(
        type(ALICE.public)(ALICE.public.sign_public, MALLORY.public.box_public),
        "Alice",
        genuine.signature,
    )
    with pytest.raises(IdentityError, match="signature"):
        store.add_card(forged, now_ms=6, replace_keys=True)
    raw = cbor2.dumps(
        [1, ALICE.public.sign_public, MALLORY.public.box_public, "Alice", genuine.signature],
        canonical=True,
    )
    text = "mc1:" + base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    with pytest.raises(IdentityError, match="signature"):
        ContactCard.from_text(text)
    assert [c.node_id for c in store.list_contacts()] == [ALICE.node_id]
    assert store.list_contacts()[0].trust is Trust.UNVERIFIED


def test_a_card_reusing_one_known_key_is_a_key_change(store: Store) -> None:
    """Same signing key, new box key (signed by that signing key): still needs --replace."""
    store.add_card(card(ALICE, "Alice"), now_ms=5)
    rotated = Identity.from_seeds(ALICE.private_bytes()[0], MALLORY.private_bytes()[1])
    with pytest.raises(KeyChangeError):
        store.add_card(card(rotated, "Someone else"), now_ms=6)
    store.add_card(card(rotated, "Someone else"), now_ms=6, replace_keys=True)
    # Messages signed by that key are attributed to the active contact, not the retired one.
    found = store.contact_by_sign_key(ALICE.public.sign_public)
    assert found is not None
    assert (found.node_id, found.trust) == (rotated.node_id, Trust.UNVERIFIED)


def test_a_shared_card_is_unverified_for_whoever_adds_it(store: Store, tmp_path: Path) -> None:
    """Bob verified Alice and shares her stored card; Carol's store gets her unverified."""
    store.add_card(card(ALICE, "Alice"), now_ms=5)
    store.set_trust(ALICE.node_id, Trust.VERIFIED)
    shared = store.get_contact(ALICE.node_id)
    assert shared is not None
    with Store.open(tmp_path / "carol.db", key=bytes(32)) as carol:
        result = carol.add_card(ContactCard.from_text(shared.card), now_ms=9)
        assert result.contact.trust is Trust.UNVERIFIED


def test_plan_card_refuses_a_card_claiming_trust() -> None:
    new = Contact(ALICE.node_id, b"s", b"b", "A", Trust.VERIFIED, 0, "mc1:x")
    with pytest.raises(UsageError, match="unverified"):
        plan_card([], new)


def test_fold_name() -> None:
    assert fold_name("  ÉCOLE ") == fold_name("école") == fold_name("e\u0301cole")
    assert fold_name("Straße") == fold_name("STRASSE")


def test_an_older_prekey_card_never_replaces_a_newer_one(store: Store) -> None:
    old_prekey = ALICE.sign_prekey(b"\x01" * 32, 1000)
    new_prekey = ALICE.sign_prekey(b"\x02" * 32, 2000)
    store.add_card(ALICE.card("Alice", new_prekey), now_ms=5)
    for replayed in (ALICE.card("Alice", old_prekey), ALICE.card("Alice")):
        store.add_card(replayed, now_ms=6)
        stored = store.get_contact(ALICE.node_id)
        assert stored is not None
        assert stored.card == ALICE.card("Alice", new_prekey).to_text()
    newest = ALICE.card("Alice", ALICE.sign_prekey(b"\x03" * 32, 3000))
    assert store.add_card(newest, now_ms=7).outcome is CardOutcome.UPDATED
    stored = store.get_contact(ALICE.node_id)
    assert stored is not None and stored.card == newest.to_text()
