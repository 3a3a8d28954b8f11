"""Key substitution on first contact: Mallory hands Alice a card in Bob's name with her own
keys. Everything then works, for Mallory; what gives her away is the safety number, which no
longer matches the one Bob reads out."""

from __future__ import annotations

from sealed_mesh import chain, texts

from meshchat.identity import ContactCard
from meshchat.safety import safety_number


def test_substituted_card_changes_the_safety_number() -> None:
    mesh = chain("alice", "mallory", "bob")
    alice = mesh.engines["alice"]
    bob = mesh.engines["bob"]
    mallory = mesh.engines["mallory"]
    genuine = bob.card(mesh.now_ms)
    forged = ContactCard.from_text(  # a valid card: Mallory's keys, Bob's name
        mallory.identity.card("bob", mallory.prekey(mesh.now_ms)).to_text()
    )
    assert forged.name == genuine.name == "bob"

    # The numbers Alice and Bob compare aloud: equal for the genuine pair ...
    assert safety_number(alice.identity.public, genuine.identity) == safety_number(
        bob.identity.public, alice.identity.public
    )
    # ... and different as soon as Alice holds the substituted card.
    assert safety_number(alice.identity.public, forged.identity) != safety_number(
        bob.identity.public, alice.identity.public
    )

    # What the substitution buys Mallory: messages meant for Bob open at her node only.
    mesh._handle("alice", alice.add_contact(forged.identity, forged.prekey, mesh.now_ms))
    mesh.send_direct("alice", "mallory", "for bob's eyes only")
    mesh.run(5_000)
    assert texts(mesh, "mallory", "alice") == ["for bob's eyes only"]
    assert texts(mesh, "bob", "alice") == []
