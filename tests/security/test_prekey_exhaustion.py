"""Strangers' key agreements cannot stop a contact's first message.

The attack, as found on live daemons: about a thousand X3DH key agreements to the signed
prekey printed in a contact's card, from throw-away identities, made the node refuse every
further session on that prekey; the contact who then wrote from the card stayed in "sent" for
good, even after learning the node's new prekey and restarting. Here the same flood comes over
one link, then the contact's first message must be read and acked within seconds; and a
contact whose card names a prekey the node no longer holds must get through once it hears the
node's current prekey (its pending message is encrypted again, also after a restart).
"""

from __future__ import annotations

import hashlib
import os

import pytest
from sealed_mesh import chain, delivered, link, rejected, texts

from meshchat.crypto.admission import Admission
from meshchat.crypto.direct import DirectSuite
from meshchat.crypto.prekeys import MAX_STRANGER_AGREEMENTS
from meshchat.events import PrekeysUpdated
from meshchat.identity import Identity, SignedPrekey
from meshchat.store import MAX_BLOB_BYTES
from meshchat.wire import codec
from meshchat.wire.payloads import MessageBody

STRANGERS = 220
AGREEMENTS_EACH = 5  # 1,100 key agreements in all


def _stranger(n: int) -> Identity:
    def seed(part: str) -> bytes:
        return hashlib.blake2b(f"stranger:{n}:{part}".encode(), digest_size=32).digest()

    return Identity.from_seeds(seed("sign"), seed("box"))


def flood(mesh, target: str, prekey: SignedPrekey, via: str) -> int:  # type: ignore[no-untyped-def]
    """Throw-away identities each start several sessions with ``prekey``; returns how many
    key agreements ``target`` accepted."""
    victim = mesh.engines[target]
    before = len(mesh.received(target))
    for n in range(STRANGERS):
        identity = _stranger(n)
        for _ in range(AGREEMENTS_EACH):
            suite = DirectSuite(identity)  # fresh state: a new key agreement every time
            suite.add_peer(victim.identity.public, prekey)
            body = MessageBody(os.urandom(16), "x").encode()
            packet = suite.build_message(
                victim.identity.public, os.urandom(16), body, mesh.now_ms, 4
            )
            mesh.inject(target, codec.encode(packet), via)
            mesh.run(10)  # 100 key agreements a second, under the link's frame rate limit
    return len(mesh.received(target)) - before


def test_key_agreement_flood_does_not_stop_a_contacts_first_message() -> None:
    mesh = chain("alice", "relay", "bob")
    mesh.introduce("bob", "alice")  # contacts: each holds the other's card
    mesh.introduce("alice", "bob")  # the card alice holds names bob's prekey of today
    card_prekey = mesh.engines["bob"].prekey(mesh.now_ms)
    flood(mesh, "bob", card_prekey, link("bob", "relay"))
    mesh.run(1_000)

    msg_id = mesh.send_direct("alice", "bob", "hello bob, it is alice")
    mesh.run(30_000)
    assert texts(mesh, "bob", "alice") == ["hello bob, it is alice"]
    assert msg_id in delivered(mesh, "alice")

    # Every blob the node stored stayed within the store's limit.
    sizes = [len(o.blob) for o in mesh.outputs["bob"] if isinstance(o, PrekeysUpdated)]
    assert max(sizes) <= MAX_BLOB_BYTES


def test_strangers_who_get_past_the_rates_still_cannot_lock_a_contact_out() -> None:
    mesh = chain("alice", "relay", "bob")
    mesh.introduce("bob", "alice")
    mesh.introduce("alice", "bob")
    bob = mesh.engines["bob"]
    unlimited = (1e6, 1e6)  # as if the strangers came over many links, slowly
    bob.direct.admission = Admission(per_link=unlimited, per_origin=unlimited, overall=unlimited)
    card_prekey = bob.prekey(mesh.now_ms)
    accepted = flood(mesh, "bob", card_prekey, link("bob", "relay"))
    assert accepted == MAX_STRANGER_AGREEMENTS
    assert "too many key agreements from strangers" in rejected(mesh, "bob")
    assert bob.prekey(mesh.now_ms) == card_prekey  # not rotated early

    msg_id = mesh.send_direct("alice", "bob", "still me")
    mesh.run(30_000)
    assert texts(mesh, "bob", "alice") == ["still me"]
    assert msg_id in delivered(mesh, "alice")
    sizes = [len(o.blob) for o in mesh.outputs["bob"] if isinstance(o, PrekeysUpdated)]
    assert max(sizes) <= MAX_BLOB_BYTES


@pytest.mark.parametrize("restart", [False, True])
def test_stuck_first_message_is_encrypted_again_for_the_new_prekey(restart: bool) -> None:
    mesh = chain("alice", "relay", "bob")
    mesh.introduce("bob", "alice")
    bob = mesh.engines["bob"]
    # Alice holds a card of bob's with a prekey bob no longer holds (a stale card).
    stale = bob.identity.sign_prekey(os.urandom(32), mesh.now_ms - 3_600_000)
    alice = mesh.engines["alice"]
    mesh._handle("alice", alice.add_contact(bob.identity.public, stale, mesh.now_ms))
    msg_id = mesh.send_direct("alice", "bob", "are you there?")
    mesh.run(20_000)
    assert texts(mesh, "bob", "alice") == []  # sealed to a prekey bob does not hold

    if restart:
        mesh.restart("alice")
    mesh.announce("bob")  # alice hears bob's current prekey
    mesh.run(120_000)
    assert texts(mesh, "bob", "alice") == ["are you there?"]
    assert msg_id in delivered(mesh, "alice")
    assert "prekey accepts no more sessions" not in rejected(mesh, "bob")
