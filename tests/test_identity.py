"""Identity: keys, node id, fingerprint, contact cards and the sealed keystore."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import re

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshchat.errors import IdentityError, KeystoreError
from meshchat.identity import (
    CARD_PREFIX,
    NODE_ID_SIZE,
    ContactCard,
    Identity,
    KdfProfile,
    PublicIdentity,
    node_id_of,
    open_keystore,
    seal_keystore,
)

FAST = KdfProfile.INTERACTIVE


def _fixed_identity(n: int) -> Identity:
    return Identity.from_seeds(bytes([n]) * 32, bytes([n + 100]) * 32)


@pytest.fixture(scope="module")
def alice() -> Identity:
    return _fixed_identity(1)


@pytest.fixture(scope="module")
def sealed(alice: Identity) -> bytes:
    return seal_keystore(alice, "Alice", "correct horse", FAST)


# -- keys, node id, fingerprint ---------------------------------------------------------------


def test_generate_gives_distinct_identities_with_32_byte_keys() -> None:
    a, b = Identity.generate(), Identity.generate()
    assert len(a.public.sign_public) == 32
    assert len(a.public.box_public) == 32
    assert a.public != b.public
    assert a.node_id != b.node_id


def test_node_id_is_a_hash_of_both_public_keys(alice: Identity) -> None:
    pub = alice.public
    expected = hashlib.blake2b(
        pub.sign_public + pub.box_public, digest_size=NODE_ID_SIZE, person=b"meshchat-nodeid"
    ).digest()
    assert alice.node_id == expected == pub.node_id == node_id_of(pub.sign_public, pub.box_public)
    assert len(alice.node_id) == NODE_ID_SIZE
    assert pub.short_id == expected.hex()[:8]


def test_node_id_depends_on_each_key(alice: Identity) -> None:
    pub = alice.public
    other = Identity.generate().public
    assert node_id_of(other.sign_public, pub.box_public) != pub.node_id
    assert node_id_of(pub.sign_public, other.box_public) != pub.node_id


def test_fingerprint_is_twelve_groups_of_five_digits_and_stable(alice: Identity) -> None:
    fp = alice.public.fingerprint()
    assert re.fullmatch(r"\d{5}( \d{5}){11}", fp)
    assert fp == alice.public.fingerprint()
    assert fp == _fixed_identity(1).public.fingerprint()
    assert fp != _fixed_identity(2).public.fingerprint()


def test_from_seeds_round_trips_private_bytes(alice: Identity) -> None:
    again = Identity.from_seeds(*alice.private_bytes())
    assert again.public == alice.public


def test_from_seeds_rejects_wrong_sizes() -> None:
    with pytest.raises(IdentityError):
        Identity.from_seeds(b"\x01" * 31, b"\x02" * 32)
    with pytest.raises(IdentityError):
        Identity.from_seeds(b"\x01" * 32, b"\x02" * 33)


def test_public_identity_rejects_wrong_key_sizes() -> None:
    with pytest.raises(IdentityError):
        PublicIdentity(b"\x00" * 31, b"\x00" * 32)


def test_sign_and_verify(alice: Identity) -> None:
    sig = alice.sign(b"hello")
    assert len(sig) == 64
    assert alice.public.verify(b"hello", sig)
    assert not alice.public.verify(b"hellO", sig)
    assert not alice.public.verify(b"hello", sig[:-1] + bytes([sig[-1] ^ 1]))
    assert not alice.public.verify(b"hello", b"short")
    assert not _fixed_identity(2).public.verify(b"hello", sig)


# -- contact cards ----------------------------------------------------------------------------


def _card_fields(text: str) -> list[object]:
    body = text[len(CARD_PREFIX) :]
    fields = cbor2.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    assert isinstance(fields, list)
    return fields


def _card_text(fields: list[object]) -> str:
    raw = cbor2.dumps(fields, canonical=True)
    return CARD_PREFIX + base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_card_round_trip(alice: Identity) -> None:
    card = alice.card("Alice")
    text = card.to_text()
    assert text.startswith(CARD_PREFIX)
    assert "=" not in text
    parsed = ContactCard.from_text("  " + text + "\n")
    assert parsed == card
    assert parsed.identity == alice.public
    assert parsed.name == "Alice"


def test_card_name_is_normalised(alice: Identity) -> None:
    card = alice.card("  Ame\u0301lie\x07 ")
    assert card.name == "Am\u00e9lie"
    assert ContactCard.from_text(card.to_text()).name == "Am\u00e9lie"


def test_card_name_too_long_rejected(alice: Identity) -> None:
    with pytest.raises(IdentityError):
        alice.card("x" * 65)


@pytest.mark.parametrize(
    ("index", "replacement"),
    [
        (1, b"\x07" * 32),  # another signing key
        (2, b"\x08" * 32),  # another box key
        (3, "Mallory"),  # another name
        (4, b"\x00" * 64),  # a zero signature
    ],
)
def test_card_with_altered_field_rejected(alice: Identity, index: int, replacement: object) -> None:
    fields = _card_fields(alice.card("Alice").to_text())
    fields[index] = replacement
    with pytest.raises(IdentityError):
        ContactCard.from_text(_card_text(fields))


def test_card_with_flipped_signature_bit_rejected(alice: Identity) -> None:
    fields = _card_fields(alice.card("Alice").to_text())
    sig = fields[4]
    assert isinstance(sig, bytes)
    fields[4] = sig[:10] + bytes([sig[10] ^ 0x20]) + sig[11:]
    with pytest.raises(IdentityError):
        ContactCard.from_text(_card_text(fields))


def test_card_signed_by_someone_else_rejected(alice: Identity) -> None:
    mallory = _fixed_identity(3)
    fields = _card_fields(alice.card("Alice").to_text())
    fields[4] = _card_fields(mallory.card("Alice").to_text())[4]
    with pytest.raises(IdentityError):
        ContactCard.from_text(_card_text(fields))


def test_card_with_unnormalised_name_rejected(alice: Identity) -> None:
    # A correctly signed card whose name is not in normal form is still refused.
    name = "Ame\u0301lie"
    from meshchat.identity import _card_signed_bytes

    sig = alice.sign(_card_signed_bytes(alice.public, name))
    text = _card_text([1, alice.public.sign_public, alice.public.box_public, name, sig])
    with pytest.raises(IdentityError):
        ContactCard.from_text(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "mc2:AAAA",
        "mc1:",
        "mc1:!!!!",
        "mc1:" + "A" * 2000,
        "mc1:\u00e9\u00e9\u00e9\u00e9",
        _card_text([1, b"a", b"b"]),
        _card_text([2, b"\x01" * 32, b"\x02" * 32, "x", b"\x00" * 64]),
        _card_text([1, b"\x01" * 32, b"\x02" * 32, "x", b"\x00" * 63]),
        _card_text([1, b"\x01" * 31, b"\x02" * 32, "x", b"\x00" * 64]),
        _card_text([1, "k", b"\x02" * 32, "x", b"\x00" * 64]),
        CARD_PREFIX + base64.urlsafe_b64encode(b"\xc1\x00").decode(),  # a CBOR tag
    ],
)
def test_malformed_card_text_rejected(text: str) -> None:
    with pytest.raises(IdentityError):
        ContactCard.from_text(text)


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_mutated_card_text_parses_to_same_card_or_raises_identity_error(
    alice: Identity, data: st.DataObject
) -> None:
    card = alice.card("Alice")
    text = card.to_text()
    pos = data.draw(st.integers(0, len(text) - 1))
    char = data.draw(st.characters(codec="utf-8"))
    mutated = text[:pos] + char + text[pos + 1 :]
    try:
        parsed = ContactCard.from_text(mutated)
    except IdentityError:
        return
    # Some base64 changes only touch padding bits and decode to the same bytes.
    assert parsed == card


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_random_card_text_raises_identity_error_only(text: str) -> None:
    with contextlib.suppress(IdentityError):
        ContactCard.from_text(text)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_random_card_bytes_raise_identity_error_only(raw: bytes) -> None:
    text = CARD_PREFIX + base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    with pytest.raises(IdentityError):
        ContactCard.from_text(text)


# -- keystore ---------------------------------------------------------------------------------


def test_keystore_round_trip(alice: Identity, sealed: bytes) -> None:
    identity, name = open_keystore(sealed, "correct horse")
    assert identity.public == alice.public
    assert identity.private_bytes() == alice.private_bytes()
    assert name == "Alice"


def test_keystore_is_salted(alice: Identity, sealed: bytes) -> None:
    again = seal_keystore(alice, "Alice", "correct horse", FAST)
    assert again != sealed
    assert alice.private_bytes()[0] not in sealed
    assert alice.private_bytes()[1] not in sealed


def test_keystore_wrong_passphrase(sealed: bytes) -> None:
    with pytest.raises(KeystoreError):
        open_keystore(sealed, "correct horsE")
    with pytest.raises(KeystoreError):
        open_keystore(sealed, "")


@pytest.mark.parametrize("cut", [0, 1, 10, 40, 100, -1, -17])
def test_truncated_keystore_rejected(sealed: bytes, cut: int) -> None:
    with pytest.raises(KeystoreError):
        open_keystore(sealed[:cut], "correct horse")


def test_extended_keystore_rejected(sealed: bytes) -> None:
    with pytest.raises(KeystoreError):
        open_keystore(sealed + b"\x00", "correct horse")


def test_corrupted_ciphertext_rejected(sealed: bytes) -> None:
    bad = bytearray(sealed)
    bad[-5] ^= 0x01
    with pytest.raises(KeystoreError):
        open_keystore(bytes(bad), "correct horse")


@pytest.mark.parametrize(
    "fields",
    [
        ["not-a-keystore", 1, b"\x00" * 16, 2, 67108864, b"x" * 80],
        ["meshchat-keystore", 2, b"\x00" * 16, 2, 67108864, b"x" * 80],
        ["meshchat-keystore", 1, b"\x00" * 15, 2, 67108864, b"x" * 80],
        ["meshchat-keystore", 1, b"\x00" * 16, 0, 67108864, b"x" * 80],
        ["meshchat-keystore", 1, b"\x00" * 16, 2, 2**40, b"x" * 80],
        ["meshchat-keystore", 1, b"\x00" * 16, 2**20, 67108864, b"x" * 80],
        ["meshchat-keystore", 1, b"\x00" * 16, 2, 67108864, "x"],
        ["meshchat-keystore", 1, b"\x00" * 16, 2, 67108864],
        {"a": 1},
    ],
)
def test_keystore_with_bad_header_rejected_before_kdf(fields: object) -> None:
    with pytest.raises(KeystoreError):
        open_keystore(cbor2.dumps(fields, canonical=True), "pw")


def test_keystore_bigger_than_limit_rejected() -> None:
    with pytest.raises(KeystoreError):
        open_keystore(b"\x00" * 5000, "pw")


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_mutated_keystore_opens_to_same_identity_or_raises_keystore_error(
    alice: Identity, sealed: bytes, data: st.DataObject
) -> None:
    kind = data.draw(st.sampled_from(["flip", "truncate", "extend", "splice"]))
    if kind == "flip":
        pos = data.draw(st.integers(0, len(sealed) - 1))
        mask = data.draw(st.integers(1, 255))
        mutated = sealed[:pos] + bytes([sealed[pos] ^ mask]) + sealed[pos + 1 :]
    elif kind == "truncate":
        mutated = sealed[: data.draw(st.integers(0, len(sealed) - 1))]
    elif kind == "extend":
        mutated = sealed + data.draw(st.binary(min_size=1, max_size=8))
    else:
        pos = data.draw(st.integers(0, len(sealed)))
        mutated = sealed[:pos] + data.draw(st.binary(max_size=8)) + sealed[pos + 3 :]
    try:
        identity, name = open_keystore(mutated, "correct horse")
    except KeystoreError:
        return
    assert identity.public == alice.public
    assert name == "Alice"


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_random_keystore_bytes_raise_keystore_error(raw: bytes) -> None:
    with pytest.raises(KeystoreError):
        open_keystore(raw, "pw")


def test_a_version_3_card_carries_the_account_and_is_signed_over_it() -> None:
    me = Identity.generate()
    prekey = me.sign_prekey(Identity.generate().public.box_public, 1_700_000_000_000)
    account = (Identity.generate().node_id, 7)
    card = me.card("alice", prekey, account)
    assert card.version == 3
    parsed = ContactCard.from_text(card.to_text())
    assert parsed == card and parsed.account == account and parsed.prekey == prekey
    # another account (or version) under the same signature does not verify
    forged = ContactCard(card.identity, card.name, card.signature, prekey, (bytes(16), 7))
    with pytest.raises(IdentityError):
        ContactCard.from_text(forged.to_text())
    # an account needs a prekey (a version 3 card is a version 2 card plus the account)
    with pytest.raises(IdentityError):
        me.card("alice", None, account)
    # version 2 and 1 cards are unchanged
    assert me.card("alice", prekey).version == 2 and me.card("alice").version == 1
