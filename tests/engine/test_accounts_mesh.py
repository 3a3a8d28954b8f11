"""Device lists between real engines on the in-process mesh: shared, asked for, revoked, and
account control blobs dispatched by kind (own-device kinds refused from anyone else)."""

from __future__ import annotations

import cbor2
from mesh import Mesh

from meshchat.account.devicelist import DeviceEntry
from meshchat.account.wire import DeviceListShare
from meshchat.engine import Engine, Output
from meshchat.events import DeviceListChanged, DeviceListUpdated, MessageExpired, MessageRejected
from meshchat.identity import Identity, PublicIdentity
from meshchat.wire.packet import MAX_AGE_MS


def pair() -> Mesh:
    """a1 and a2 (to become one account) and bob, all linked; bob and a1 hold each other's
    cards, and so do a1 and a2."""
    mesh = Mesh(cards=True)
    mesh.add_many(["a1", "a2", "bob"])
    mesh.connect_all([("a1", "a2"), ("a1", "bob"), ("a2", "bob")])
    for x, y in [("a1", "bob"), ("bob", "a1"), ("a1", "a2"), ("a2", "a1")]:
        mesh.introduce(x, y)
    return mesh


def pub(mesh: Mesh, name: str) -> PublicIdentity:
    return mesh.engines[name].identity.public


def link(mesh: Mesh) -> None:
    """a2 joins a1's account (what linking ends with)."""
    a1, a2 = mesh.engines["a1"], mesh.engines["a2"]
    mesh._handle(
        "a1", a1.account_glue.add_device(DeviceEntry.of(pub(mesh, "a2"), "phone"), mesh.now_ms)
    )
    a1_pub = pub(mesh, "a1")
    mesh._handle(
        "a2", a2.account_glue.apply(a2.accounts.adopt(a1.accounts.own, a1_pub), mesh.now_ms)
    )


def test_a_contact_learns_the_new_device_and_drops_it_when_revoked() -> None:
    mesh = pair()
    link(mesh)
    mesh.run(20_000)
    bob = mesh.engines["bob"]
    a1_id, a2_id = (mesh.engines[n].identity.node_id for n in ("a1", "a2"))
    assert bob.accounts.account_of(a2_id) == a1_id
    assert bob.accounts.held(a1_id) == mesh.engines["a1"].accounts.own
    changes = mesh.events("bob", DeviceListChanged)
    assert [c.change.added for c in changes] == [(pub(mesh, "a2"),)]
    assert not changes[0].loud  # signed by a1, the device bob held
    assert bob.direct.knows(a2_id)
    assert any(u.account_id == a1_id for u in mesh.events("bob", DeviceListUpdated))
    # a2's announce carries its account; bob learns a2's prekey from it
    mesh.announce("a2")
    mesh.run(5_000)
    assert bob.direct.can_seal(pub(mesh, "a2"))
    # a1 revokes a2: bob drops a2's keys; a2 itself takes the list that drops it
    mesh._handle("a1", mesh.engines["a1"].revoke_device(a2_id, mesh.now_ms))
    mesh.run(20_000)
    assert bob.accounts.account_of(a2_id) == a2_id
    assert not bob.direct.knows(a2_id) and a2_id not in bob.direct.records
    assert a2_id not in bob.router.contacts
    assert mesh.events("bob", DeviceListChanged)[-1].change.revoked == (a2_id,)


def test_an_announce_of_a_newer_list_makes_the_viewer_ask_for_it() -> None:
    mesh = pair()
    link(mesh)
    mesh.run(20_000)
    a1 = mesh.engines["a1"]
    bob = mesh.engines["bob"]
    a1_id = a1.identity.node_id
    # a1's list changes without telling anyone (say bob was away then)
    a1.accounts.rename("laptop", a1.identity)
    assert bob.accounts.held(a1_id).version == 2  # type: ignore[union-attr]
    mesh.announce("a1")
    mesh.run(20_000)
    assert bob.accounts.held(a1_id) == a1.accounts.own
    # a second announce within the minute does not ask again
    sent_before = mesh.transmissions
    mesh.announce("a1")
    mesh.run(1_000)
    assert mesh.transmissions - sent_before <= 4  # the announce flooding only


def test_own_device_kinds_are_refused_from_anyone_else() -> None:
    mesh = pair()
    link(mesh)
    mesh.run(20_000)
    seen: list[tuple[bytes, bytes]] = []

    def carbon(sender: PublicIdentity, blob: bytes, now_ms: int) -> list[Output]:
        seen.append((sender.node_id, blob))
        return []

    a1: Engine = mesh.engines["a1"]
    a1.account_glue._handlers[18] = carbon  # in place of the carbons' (a kind has one handler)
    blob = cbor2.dumps([18, b"x"])
    for sender in ("bob", "a2"):
        engine = mesh.engines[sender]
        mesh._handle(sender, engine.account_glue.send(pub(mesh, "a1"), blob, mesh.now_ms))
    mesh.run(20_000)
    assert seen == [(mesh.engines["a2"].identity.node_id, blob)]
    reasons = [r.reason for r in mesh.events("a1", MessageRejected)]
    assert any("not one of mine" in r for r in reasons)
    # and the refused blob was acked all the same: nothing left in bob's outbox
    assert not any(i.is_control for i in mesh.engines["bob"].outbox._items.values())


def test_a_strangers_list_claiming_a_contacts_account_is_refused() -> None:
    mesh = pair()
    mesh.add("mallory")
    mesh.connect("mallory", "bob")
    mesh.introduce("mallory", "bob")
    mallory = mesh.engines["mallory"]
    a1_id = mesh.engines["a1"].identity.node_id
    from meshchat.account.devicelist import DeviceList
    from meshchat.account.wire import DeviceListShare

    forged = DeviceList._signed(
        mallory.identity,
        a1_id,
        2,
        [DeviceEntry.of(pub(mesh, "a1"), "x"), DeviceEntry.of(pub(mesh, "mallory"), "y")],
        [],
        bytes(16),
    )
    blob = DeviceListShare(forged).encode()
    mesh._handle("mallory", mallory.account_glue.send(pub(mesh, "bob"), blob, mesh.now_ms))
    mesh.run(20_000)
    bob = mesh.engines["bob"]
    assert bob.accounts.account_of(mallory.identity.node_id) == mallory.identity.node_id
    assert mesh.events("bob", DeviceListChanged) == []
    assert any("signer-not-on-list" in r.reason for r in mesh.events("bob", MessageRejected))


def test_a_revocation_ends_only_the_copies_to_the_revoked_device() -> None:
    mesh = pair()
    link(mesh)
    mesh.run(20_000)
    bob = mesh.engines["bob"]
    a1_id, a2_id = (mesh.engines[n].identity.node_id for n in ("a1", "a2"))
    mesh.disconnect("a1", "bob")
    mesh.disconnect("a2", "bob")
    msg_id = mesh.send_direct("bob", "a1", "hello both")
    assert {i.device for i in bob.outbox.copies(msg_id)} == {a1_id, a2_id}
    revoked = mesh.engines["a1"].accounts.revoke(a2_id, mesh.engines["a1"].identity)
    mesh._handle("bob", bob.account_glue.offer(revoked, pub(mesh, "a1"), mesh.now_ms))
    assert {i.device for i in bob.outbox.copies(msg_id)} == {a1_id}
    expired = [e for e in mesh.events("bob", MessageExpired) if e.msg_id == msg_id]
    assert [(e.device, e.last) for e in expired] == [(a2_id, False)]


def test_an_announced_claim_makes_no_stranger_a_peer() -> None:
    mesh = pair()
    link(mesh)
    mesh.run(20_000)
    mesh.add("mallory")
    mesh.connect("mallory", "bob")
    mallory = mesh.engines["mallory"]
    bob = mesh.engines["bob"]
    a1 = mesh.engines["a1"]
    # mallory announces that she is on alice's account at a newer version
    from meshchat.account.wire import AccountItem

    claim = AccountItem(a1.account_id, 99, bytes(16))
    mallory.account_glue.announce_item = lambda: claim  # type: ignore[method-assign]
    mesh.announce("mallory")
    mesh.run(5_000)
    assert not bob.direct.knows(mallory.identity.node_id)
    assert mallory.identity.node_id not in bob.direct.records
    assert bob.accounts.account_of(mallory.identity.node_id) == mallory.identity.node_id


def test_a_list_that_overtook_the_one_before_it_is_taken_once_that_one_came() -> None:
    mesh = pair()
    link(mesh)
    mesh.run(20_000)
    a1, bob = mesh.engines["a1"], mesh.engines["bob"]
    a2_id = mesh.engines["a2"].identity.node_id
    a3 = Identity.generate()
    held = bob.accounts.held(a1.account_id)
    assert held is not None and held.version == 2
    v3 = held.successor(a1.identity, add=[DeviceEntry.of(a3.public, "pi")])
    v4 = v3.successor(a3, revoke=[a2_id])  # signed by a3, which bob does not know yet
    mesh._handle(
        "a1", a1.account_glue.send(pub(mesh, "bob"), DeviceListShare(v4).encode(), mesh.now_ms)
    )
    mesh.run(2_000)
    assert bob.accounts.held(a1.account_id) == held  # refused for now, kept for later
    mesh._handle(
        "a1", a1.account_glue.send(pub(mesh, "bob"), DeviceListShare(v3).encode(), mesh.now_ms)
    )
    mesh.run(5_000)  # v3 taken, then the v4 kept for it
    assert bob.accounts.held(a1.account_id) == v4
    assert bob.accounts.account_of(a2_id) == a2_id


def test_a_new_device_gets_the_lists_my_other_devices_hold() -> None:
    mesh = pair()
    mesh.add("bob2")
    mesh.connect_all([("bob2", "bob"), ("bob2", "a1")])
    mesh.introduce("bob", "bob2")
    mesh.introduce("bob2", "bob")
    bob, bob2 = mesh.engines["bob"], mesh.engines["bob2"]
    # bob links bob2 first: a1 (bob's contact) takes bob's list of two devices
    mesh._handle(
        "bob", bob.account_glue.add_device(DeviceEntry.of(pub(mesh, "bob2"), "b2"), mesh.now_ms)
    )
    mesh._handle(
        "bob2",
        bob2.account_glue.apply(
            bob2.accounts.adopt(bob.accounts.own, pub(mesh, "bob")), mesh.now_ms
        ),
    )
    mesh.run(20_000)
    a1, a2 = mesh.engines["a1"], mesh.engines["a2"]
    assert a1.accounts.held(bob.account_id) == bob.accounts.own
    # then a2 joins alice's account: it asks a1 for every list a1 holds, and takes bob's
    assert a2.accounts.held(bob.account_id) is None
    link(mesh)
    mesh.run(20_000)
    assert a2.accounts.held(bob.account_id) == bob.accounts.own
    assert a2.accounts.account_of(bob2.identity.node_id) == bob.account_id


def away_at_the_revocation() -> tuple[Mesh, bytes, bytes, bytes]:
    """bob is away (a1 and a2 out of reach) when a1 revokes a2, and sends alice a message
    meanwhile; returns the mesh, a1's and a2's node ids and that message's id."""
    mesh = pair()
    link(mesh)
    mesh.run(20_000)
    mesh.announce("a2")  # bob can seal to a2
    mesh.run(5_000)
    a1, bob = mesh.engines["a1"], mesh.engines["bob"]
    a1_id, a2_id = a1.identity.node_id, mesh.engines["a2"].identity.node_id
    mesh.disconnect("a1", "bob")
    mesh.disconnect("a2", "bob")
    mesh._handle("a1", a1.revoke_device(a2_id, mesh.now_ms))
    mesh.run(60_000)
    # bob still seals to a2: he has not seen the list that revokes it
    before = mesh.send_direct("bob", "a1", "sent while away")
    assert {i.device for i in bob.outbox.copies(before)} == {a1_id, a2_id}
    return mesh, a1_id, a2_id, before


def took_the_revocation(mesh: Mesh, a1_id: bytes, a2_id: bytes, before: bytes) -> None:
    bob = mesh.engines["bob"]
    assert bob.accounts.held(a1_id) == mesh.engines["a1"].accounts.own
    assert a2_id not in bob.direct.records
    assert {i.device for i in bob.outbox.copies(before)} <= {a1_id}  # a2's copy ended
    after = mesh.send_direct("bob", "a1", "after the revocation")
    assert {i.device for i in bob.outbox.copies(after)} == {a1_id}


def test_a_contact_away_at_the_revocation_is_pushed_the_list_when_they_meet() -> None:
    mesh, a1_id, a2_id, before = away_at_the_revocation()
    mesh.connect("a1", "bob")  # no announce: the share a1 keeps retrying gets through
    mesh.run(2_000)
    took_the_revocation(mesh, a1_id, a2_id, before)


def test_a_contact_away_past_the_shares_life_pulls_the_list_from_an_announce() -> None:
    mesh, a1_id, a2_id, before = away_at_the_revocation()
    mesh.run(MAX_AGE_MS + 3_600_000)  # the share to bob expired: a1 sends it no more
    bob = mesh.engines["bob"]
    assert bob.accounts.held(a1_id).version < mesh.engines["a1"].accounts.own.version  # type: ignore[union-attr]
    mesh.connect("a1", "bob")
    mesh.run(2_000)
    assert bob.accounts.held(a1_id).version < mesh.engines["a1"].accounts.own.version  # type: ignore[union-attr]
    mesh.announce("a1")  # its account item: a newer list than bob holds; bob asks for it
    mesh.run(2_000)
    took_the_revocation(mesh, a1_id, a2_id, before)


def test_a_revoked_device_is_refused_by_a_contact_who_took_the_list() -> None:
    mesh = pair()
    link(mesh)
    mesh.run(20_000)
    mesh.announce("a2")
    mesh.run(5_000)
    a2, bob = mesh.engines["a2"], mesh.engines["bob"]
    a2_id, bob_id = a2.identity.node_id, bob.identity.node_id
    mesh.disconnect("a1", "a2")
    mesh.disconnect("a2", "bob")
    mesh._handle("a1", mesh.engines["a1"].revoke_device(a2_id, mesh.now_ms))
    mesh.run(20_000)
    assert a2_id not in bob.direct.records
    # the stolen a2, which never finished a session with bob, opens one from his prekey
    a2.direct.drop_peer(bob_id)
    a2.direct.add_peer(bob.identity.public, bob.prekey(mesh.now_ms))
    mesh.connect("a2", "bob")
    mesh.send_direct("a2", "bob", "it is me, really")
    mesh.run(20_000)
    assert mesh.received("bob") == []
    assert a2_id not in bob.direct.records and not bob.direct.knows(a2_id)
    assert any("revoked" in r.reason for r in mesh.events("bob", MessageRejected))
