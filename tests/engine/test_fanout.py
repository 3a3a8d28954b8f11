"""Fan-out: a direct message to an account goes to each of its live devices, under one id.

The engines are real (sessions, router, outbox) on the in-process mesh; the account book is a
:class:`Accounts` directory that answers as the real book does for fixed lists (the device
lists themselves are :mod:`meshchat.account`'s, tested there)."""

from __future__ import annotations

from collections.abc import Iterable

from meshchat.account.book import AccountBook
from meshchat.account.devicelist import DeviceEntry, DeviceList
from meshchat.engine import Engine, dm_conversation
from meshchat.engine._fanout import LoneDevices, devices_for
from meshchat.events import AttemptMade, MessageDelivered, MessageExpired, MessageSent
from meshchat.identity import PublicIdentity
from tests.mesh import Mesh


class Accounts:
    """A fixed directory: account id -> its devices (the first one founds the account)."""

    def __init__(self, me: bytes, accounts: Iterable[tuple[PublicIdentity, ...]]) -> None:
        self.me = me
        self.lists = {devices[0].node_id: devices for devices in accounts}

    def account_of(self, node_id: bytes) -> bytes:
        for account, devices in self.lists.items():
            if any(d.node_id == node_id for d in devices):
                return account
        return node_id

    def devices_of(self, account_id: bytes) -> tuple[PublicIdentity, ...]:
        return self.lists.get(account_id, ())

    def own_devices(self) -> tuple[PublicIdentity, ...]:
        mine = self.lists.get(self.account_of(self.me), ())
        return tuple(d for d in mine if d.node_id != self.me)

    def held(self, account_id: bytes) -> DeviceList | None:
        return None

    def accounts(self) -> tuple[bytes, ...]:
        return ()


def _mesh(*, bob_devices: tuple[str, ...] = ("b1", "b2")) -> Mesh:
    """alice - hub - each of bob's devices; everyone knows everyone's card."""
    mesh = Mesh(cards=True)
    names = ["alice", "hub", "b1", "b2", "b3"]
    mesh.add_many(names)
    for name in names[2:]:
        mesh.connect("hub", name)
    mesh.connect("alice", "hub")
    for a in names:
        for b in names:
            if a != b:
                mesh.introduce(a, b)
    bob = tuple(mesh.engines[n].identity.public for n in bob_devices)
    for name in names:
        engine: Engine = mesh.engines[name]
        engine.directory = Accounts(engine.identity.node_id, [bob])
    return mesh


def test_one_copy_per_live_device_under_one_id_in_one_conversation() -> None:
    mesh = _mesh()
    msg_id = mesh.send_direct("alice", "b2", "hello bob")  # any device of the account names it
    mesh.run(10_000)
    account = mesh.engines["b1"].identity.node_id
    alice = mesh.engines["alice"].identity.public
    for device in ("b1", "b2"):
        [got] = mesh.received(device)
        assert (got.msg_id, got.text, got.sender) == (msg_id, "hello bob", alice)
    # Both devices file it under the same conversation: alice's account (one device).
    assert {m.conversation for n in ("b1", "b2") for m in mesh.received(n)} == {
        dm_conversation(alice.node_id)
    }
    assert mesh.received("b3") == []  # not on the list: nothing, not even a copy it can't read
    [one, two] = mesh.events("alice", MessageDelivered)
    assert {one.device, two.device} == {
        mesh.engines["b1"].identity.node_id,
        mesh.engines["b2"].identity.node_id,
    }
    assert (one.last, two.last) == (False, True)  # the outbox row ends with the last copy
    assert not mesh.engines["alice"].outbox.copies(msg_id)
    assert account == mesh.engines["alice"].directory.account_of(two.device)


def test_same_body_and_parents_in_every_copy() -> None:
    mesh = _mesh()
    engine = mesh.engines["alice"]
    parents = (b"\x07" * 16,)
    out = engine.send_direct(
        mesh.engines["b1"].identity.public, b"\x42" * 16, "p", mesh.now_ms, parents=parents
    )
    mesh._handle("alice", out)
    mesh.run(10_000)
    got = [m for n in ("b1", "b2") for m in mesh.received(n)]
    assert len(got) == 2
    assert {(m.msg_id, m.text, m.parents, m.sent_ms) for m in got} == {
        (b"\x42" * 16, "p", parents, got[0].sent_ms)
    }


def test_each_copy_is_retried_and_expires_on_its_own() -> None:
    mesh = _mesh()
    mesh.disconnect("hub", "b2")  # b2 is offline: only b1 acks
    msg_id = mesh.send_direct("alice", "b1", "only b1 is up", expires_ms=mesh.now_ms + 60_000)
    mesh.run(20_000)
    b1, b2 = (mesh.engines[n].identity.node_id for n in ("b1", "b2"))
    [delivered] = mesh.events("alice", MessageDelivered)
    assert (delivered.device, delivered.last) == (b1, False)
    [left] = mesh.engines["alice"].outbox.copies(msg_id)
    assert left.device == b2  # b2's copy goes on being tried
    tries = [a for a in mesh.events("alice", AttemptMade) if a.device == b2]
    assert len(tries) >= 2
    assert {s.device for s in mesh.events("alice", MessageSent)} == {b1, b2}
    mesh.run(60_000)
    [expired] = mesh.events("alice", MessageExpired)
    assert (expired.device, expired.last) == (b2, True)


def test_b2_gets_its_copy_when_it_comes_online() -> None:
    mesh = _mesh()
    mesh.disconnect("hub", "b2")
    msg_id = mesh.send_direct("alice", "b1", "later for b2")
    mesh.run(5_000)
    assert mesh.received("b2") == []
    mesh.connect("hub", "b2")  # alice's next retry of b2's copy reaches it
    mesh.run(400_000)
    [got] = mesh.received("b2")
    assert got.msg_id == msg_id
    assert not mesh.engines["alice"].outbox.copies(msg_id)


def test_lone_devices_and_unknown_lists_send_to_the_device_named() -> None:
    mesh = _mesh()
    carol = mesh.engines["b3"].identity.public
    me = mesh.engines["alice"].identity.node_id
    assert devices_for(LoneDevices(), carol, me) == (carol,)
    assert devices_for(mesh.engines["alice"].directory, carol, me) == (carol,)
    # A device dropped from its account's list (revoked) gets nothing, even when named: the
    # message goes to the account's live devices.
    b1, b2 = (mesh.engines[n].identity.public for n in ("b1", "b2"))
    bob = Accounts(me, [(b1,)])
    bob.account_of = lambda node_id: b1.node_id  # type: ignore[method-assign]
    assert devices_for(bob, b2, me) == (b1,)
    # never to itself
    assert devices_for(LoneDevices(), mesh.engines["alice"].identity.public, me) == ()


def test_a_revoked_device_named_directly_gets_nothing_with_the_real_book() -> None:
    """The account book (real signed lists): bob's b1 revokes b2; alice holds the new list.
    A message addressed to b2 by name goes to b1 only."""
    mesh = _mesh()
    b1, b2, alice = (mesh.engines[n].identity for n in ("b1", "b2", "alice"))
    listed = DeviceList.genesis(b1, "b1").successor(b1, add=[DeviceEntry.of(b2.public, "b2")])
    book = AccountBook(alice)
    book.know(b1.public)
    assert book.offer(listed, b1.public, mesh.now_ms) is not None
    assert set(devices_for(book, b2.public, alice.node_id)) == {b1.public, b2.public}
    revoked = listed.successor(b1, revoke=[b2.node_id])
    assert book.offer(revoked, b1.public, mesh.now_ms) is not None
    assert book.account_of(b2.node_id) == b2.node_id  # the book no longer places b2 ...
    assert devices_for(book, b2.public, alice.node_id) == (b1.public,)  # ... fan-out does
    assert devices_for(book, b1.public, alice.node_id) == (b1.public,)


def test_a_new_message_resends_only_the_earlier_copies_of_the_device_still_owed() -> None:
    """b1 acked message 1, b2 (offline) did not: message 2 resends message 1 to b2 alone,
    at once, before b2's copy of message 2 (resend-earlier works per device)."""
    mesh = _mesh()
    mesh.disconnect("hub", "b2")
    first = mesh.send_direct("alice", "b1", "one")
    mesh.run(5_000)
    b1, b2 = (mesh.engines[n].identity.node_id for n in ("b1", "b2"))
    assert [d.device for d in mesh.events("alice", MessageDelivered)] == [b1]
    alice = mesh.engines["alice"]
    out = alice.send_direct(
        mesh.engines["b1"].identity.public, b"\x77" * 16, "two", mesh.now_ms, parents=(first,)
    )
    tries = [(o.msg_id, o.device) for o in out if isinstance(o, AttemptMade)]
    second = b"\x77" * 16
    assert sorted(tries) == sorted([(first, b2), (second, b1), (second, b2)])
    assert tries.index((first, b2)) < tries.index((second, b2))  # what b2 lacks, first
    assert (first, b1) not in tries  # b1 has it: not sent again
