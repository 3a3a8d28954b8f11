"""Carbons between real engines: what a1 sends to bob reaches a2 (a1's other device) as a
carbon, also when a2 was offline (carried); what a1 receives from a sender that does not hold
alice's list reaches a2 as a received carbon; a carbon from a device not on my list is refused."""

from __future__ import annotations

from test_accounts_mesh import link, pair, pub

from meshchat.account.carbon import Carbon, Direction
from meshchat.engine._account import HOLDS_MARGIN_MS
from meshchat.events import CarbonReceived, MessageRejected
from meshchat.wire.payloads import MessageBody


def test_a_sent_message_reaches_my_other_device_as_a_carbon() -> None:
    mesh = pair()
    link(mesh)
    mesh.run(20_000)
    msg_id = mesh.send_direct("a1", "bob", "hello bob")
    mesh.run(20_000)
    [got] = mesh.events("a2", CarbonReceived)
    a1, bob = mesh.engines["a1"], mesh.engines["bob"]
    assert got.device == a1.identity.public
    carbon = got.carbon
    assert (carbon.direction, carbon.sender, carbon.peer_account) == (
        Direction.SENT,
        a1.identity.node_id,
        bob.identity.node_id,
    )
    [received] = mesh.received("bob")
    assert carbon.body.msg_id == received.msg_id == msg_id
    assert (carbon.body.text, carbon.body.parents, carbon.body.sent_ms) == (
        received.text,
        received.parents,
        received.sent_ms,
    )
    assert carbon.conversation == "dm:" + bob.identity.node_id.hex()
    assert mesh.received("a2") == []  # a copy of mine, not a message to me
    assert mesh.events("bob", CarbonReceived) == []  # bob is not one of a1's devices


def test_the_carbon_is_carried_to_my_device_that_was_offline() -> None:
    mesh = pair()
    link(mesh)
    mesh.run(20_000)
    mesh.disconnect("a1", "a2")
    mesh.disconnect("a2", "bob")
    mesh.send_direct("a1", "bob", "while a2 sleeps")
    mesh.run(10_000)
    assert mesh.events("a2", CarbonReceived) == []
    mesh.disconnect("a1", "bob")  # a1 leaves; bob carries what a1 sent for a2
    mesh.connect("a2", "bob")
    mesh.run(20_000)
    [got] = mesh.events("a2", CarbonReceived)
    assert got.carbon.body.text == "while a2 sleeps"


def test_no_carbon_without_another_device_and_none_for_a_reload() -> None:
    mesh = pair()  # not linked: a1 is an account of one device
    mesh.send_direct("a1", "bob", "just me")
    mesh.run(10_000)
    assert mesh.events("a2", CarbonReceived) == []
    link(mesh)
    mesh.run(20_000)
    a1 = mesh.engines["a1"]
    before = len(a1.outbox)
    out = a1.send_direct(
        pub(mesh, "bob"), b"\x55" * 16, "reloaded", mesh.now_ms, devices=[pub(mesh, "bob")]
    )
    mesh._handle("a1", out)
    assert len(a1.outbox) == before + 1  # the copy only: no carbon parts queued


def test_a_carbon_from_a_device_not_on_my_list_is_refused() -> None:
    mesh = pair()
    link(mesh)
    mesh.run(20_000)
    bob, a2 = mesh.engines["bob"], mesh.engines["a2"]
    mesh.announce("a2")  # bob learns a2's prekey: it can seal to a2
    mesh.run(5_000)
    forged = Carbon(
        bob.identity.node_id, Direction.SENT, bob.identity.node_id, MessageBody(b"\x66" * 16, "x")
    )
    mesh._handle("bob", bob.account_glue.send(a2.identity.public, forged.encode(), mesh.now_ms))
    mesh.run(20_000)
    assert mesh.events("a2", CarbonReceived) == []
    assert any("not one of mine" in r.reason for r in mesh.events("a2", MessageRejected))


def test_a_sent_carbon_naming_another_sender_is_refused() -> None:
    mesh = pair()
    link(mesh)
    mesh.run(20_000)
    a1, a2, bob = (mesh.engines[n] for n in ("a1", "a2", "bob"))
    lie = Carbon(
        bob.identity.node_id, Direction.SENT, bob.identity.node_id, MessageBody(b"\x67" * 16, "y")
    )
    mesh._handle("a1", a1.account_glue.send(a2.identity.public, lie.encode(), mesh.now_ms))
    mesh.run(20_000)
    assert mesh.events("a2", CarbonReceived) == []
    assert any("another device" in r.reason for r in mesh.events("a2", MessageRejected))


def test_what_i_receive_from_a_sender_without_my_list_reaches_my_other_device() -> None:
    mesh = pair()
    mesh.disconnect("a1", "bob")
    mesh.disconnect("a2", "bob")
    link(mesh)  # bob is away: he does not hear of a2
    mesh.run(20_000)
    a1, a2, bob = (mesh.engines[n] for n in ("a1", "a2", "bob"))
    assert bob.accounts.account_of(a2.identity.node_id) == a2.identity.node_id
    msg_id = mesh.send_direct("bob", "a1", "to alice, from an old list")  # one copy: a1's
    mesh.connect("a1", "bob")
    mesh.run(30_000)
    [got] = mesh.events("a2", CarbonReceived)
    carbon = got.carbon
    assert got.device == a1.identity.public
    assert (carbon.direction, carbon.sender, carbon.peer_account) == (
        Direction.RECEIVED,
        bob.identity.node_id,
        bob.identity.node_id,
    )
    assert (carbon.body.msg_id, carbon.body.text) == (msg_id, "to alice, from an old list")
    assert carbon.conversation == "dm:" + bob.identity.node_id.hex()
    assert mesh.received("a2") == []  # bob sealed nothing to a2
    # bob took alice's list on the way; a while later his messages fan out to a2 themselves
    # and a1 copies them no more
    assert bob.accounts.account_of(a2.identity.node_id) == a1.identity.node_id
    mesh.connect("a2", "bob")
    mesh.announce("a2")
    mesh.run(HOLDS_MARGIN_MS + 5_000)
    second = mesh.send_direct("bob", "a1", "fanned out")
    mesh.run(20_000)
    assert [r.msg_id for r in mesh.received("a2")] == [second]
    assert [r.msg_id for r in mesh.received("a1")] == [msg_id, second]
    assert len(mesh.events("a2", CarbonReceived)) == 1
