"""A prekey update not signed by the contact's identity key (or older than the one kept)
does not replace the stored prekey."""

from __future__ import annotations

import pytest
from nacl.public import PrivateKey
from sealed_mesh import chain, link

from meshchat.errors import IdentityError
from meshchat.events import PeerAnnounced, SessionUpdated
from meshchat.identity import ContactCard, Identity, SignedPrekey
from meshchat.router.actions import Drop
from meshchat.wire import codec
from meshchat.wire.packet import BROADCAST, PacketKind, Suite
from meshchat.wire.payloads import AnnounceBody


def _mesh():  # type: ignore[no-untyped-def]
    mesh = chain("alice", "relay", "bob")
    mesh.introduce("alice", "bob")
    return mesh


def _stored(mesh) -> SignedPrekey | None:  # type: ignore[no-untyped-def]
    record = mesh.engines["alice"].direct.records[mesh.engines["bob"].identity.node_id]
    return record.prekey


def _mallory_prekey(mesh, created_ms: int) -> SignedPrekey:  # type: ignore[no-untyped-def]
    """A prekey for Bob's identity, signed by Mallory."""
    mallory = Identity.generate()
    return mallory.sign_prekey(bytes(PrivateKey.generate().public_key), created_ms)


def test_prekey_signed_by_someone_else_is_refused() -> None:
    mesh = _mesh()
    bob = mesh.engines["bob"].identity.public
    kept = _stored(mesh)
    forged = _mallory_prekey(mesh, mesh.now_ms + 1000)
    out = mesh.engines["alice"].add_contact(bob, forged, mesh.now_ms)
    assert not any(isinstance(o, SessionUpdated) for o in out)
    assert mesh.engines["alice"].direct.learn_prekey(bob, forged) is False
    assert _stored(mesh) == kept


def test_announce_with_a_forged_prekey_is_refused() -> None:
    mesh = _mesh()
    bob = mesh.engines["bob"].identity
    kept = _stored(mesh)
    # Mallory cannot sign as Bob: an announce in Bob's name with her signature is dropped ...
    mallory = Identity.generate()
    body = AnnounceBody(bob.public.box_public, "bob", _mallory_prekey(mesh, mesh.now_ms + 1))
    packet = codec.build(
        mallory, PacketKind.ANNOUNCE, BROADCAST, Suite.SIGNED, body.encode(), mesh.now_ms, 4
    )
    frame = bytearray(codec.encode(packet))
    frame = frame.replace(mallory.public.sign_public, bob.public.sign_public)
    out = mesh.inject("alice", bytes(frame), link("alice", "relay"))
    assert [o.reason for o in out if isinstance(o, Drop)] == ["bad-signature"]
    # ... and Bob's own announce carrying a prekey Mallory signed does not take either.
    honest = codec.build(
        bob, PacketKind.ANNOUNCE, BROADCAST, Suite.SIGNED, body.encode(), mesh.now_ms, 4
    )
    out = mesh.inject("alice", codec.encode(honest), link("alice", "relay"))
    assert [type(o) for o in out if isinstance(o, PeerAnnounced)] == [PeerAnnounced]
    assert not any(isinstance(o, SessionUpdated) for o in out)
    assert _stored(mesh) == kept


def test_older_genuine_prekey_does_not_roll_back() -> None:
    mesh = _mesh()
    bob = mesh.engines["bob"]
    old = _stored(mesh)
    assert old is not None
    newer = bob.identity.sign_prekey(bytes(PrivateKey.generate().public_key), old.created_ms + 1)
    alice = mesh.engines["alice"]
    assert alice.direct.learn_prekey(bob.identity.public, newer) is True
    assert alice.direct.learn_prekey(bob.identity.public, old) is False
    assert _stored(mesh) == newer


def test_card_with_a_swapped_prekey_is_refused() -> None:
    mesh = _mesh()
    bob = mesh.engines["bob"]
    card = bob.card(mesh.now_ms)
    assert card.prekey is not None
    forged_prekey = _mallory_prekey(mesh, card.prekey.created_ms + 1)
    swapped = ContactCard(card.identity, card.name, card.signature, forged_prekey)
    with pytest.raises(IdentityError, match="signature does not verify"):
        ContactCard.from_text(swapped.to_text())
    # A card whose own signature holds but whose prekey Bob never signed is refused too.
    tricked = bob.identity.card("bob", forged_prekey)
    with pytest.raises(IdentityError, match="prekey signature"):
        ContactCard.from_text(tricked.to_text())
