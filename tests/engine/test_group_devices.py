"""Group memberships between the devices of one account, on real engines in the in-process mesh:
a group a1 is in becomes usable on a2 (a2 joins as a member device of its own, by the group's
re-key); an admin adds the new devices of a member account; a stranger's join is refused."""

from __future__ import annotations

from mesh import Mesh
from test_accounts_mesh import link, pub

from meshchat.account.groupsync import GroupHeld, GroupJoin
from meshchat.events import MessageRejected
from meshchat.group.book import group_conversation


def three() -> Mesh:
    """a1, a2 (to become one account), bob (a group admin) and carol (a stranger to alice)."""
    mesh = Mesh(cards=True)
    mesh.add_many(["a1", "a2", "bob", "carol"])
    mesh.connect_all([("a1", "a2"), ("a1", "bob"), ("a2", "bob"), ("bob", "carol")])
    for x, y in [("a1", "bob"), ("bob", "a1"), ("a1", "a2"), ("a2", "a1")]:
        mesh.introduce(x, y)
    return mesh


def texts(mesh: Mesh, node: str, group_id: bytes) -> list[str]:
    conversation = group_conversation(group_id)
    return sorted(r.text for r in mesh.received(node) if r.conversation == conversation)


def usable_on_a2(mesh: Mesh, group_id: bytes) -> None:
    """a2 reads what bob and a1 send in the group, and bob and a1 read what a2 sends."""
    a2 = mesh.engines["a2"]
    assert a2.groups.groups[group_id].roster.member(a2.identity.node_id) is not None
    mesh.send_group("bob", group_id, "from bob")
    mesh.send_group("a1", group_id, "from a1")
    mesh.send_group("a2", group_id, "from a2")
    mesh.run(20_000)
    assert texts(mesh, "a2", group_id) == ["from a1", "from bob"]
    assert texts(mesh, "bob", group_id) == ["from a1", "from a2"]
    assert texts(mesh, "a1", group_id) == ["from a2", "from bob"]


def test_a_group_a1_joined_before_linking_is_usable_on_a2() -> None:
    mesh = three()
    group_id = mesh.create_group("bob", "friends", ["a1"])
    mesh.run(20_000)
    assert group_id not in mesh.engines["a2"].groups.groups
    mesh.introduce("a2", "bob")  # what the history sync of contacts brings a2 (a group from
    # someone who is not a contact is refused)
    link(mesh)  # bob takes alice's new list and adds a2 to the group he runs (a re-key)
    mesh.run(20_000)
    mesh.announce("a2")  # its prekey: the group keys waiting for a2 leave
    mesh.run(30_000)
    usable_on_a2(mesh, group_id)


def test_a_group_held_told_by_sync_makes_a2_ask_the_admin() -> None:
    mesh = three()
    link(mesh)
    mesh.run(20_000)
    mesh.announce("a2")
    mesh.run(5_000)
    # bob makes a group with a1 alone (he picked one device): a2 is not on it
    group_id = mesh.create_group("bob", "later", ["a1"])
    mesh.run(20_000)
    a1, a2 = mesh.engines["a1"], mesh.engines["a2"]
    assert a2.groups.groups.get(group_id) is None
    # a1 tells a2 the groups it is in, as each history sync does; a2 asks bob to add it
    mesh._handle("a1", a1.group_sync.share(pub(mesh, "a2"), mesh.now_ms))
    mesh.run(5_000)
    mesh.announce("bob")  # bob's prekey: a2's request waits for it like any control part
    mesh.run(30_000)
    usable_on_a2(mesh, group_id)
    # told again: nothing more happens (a2 is a member)
    before = mesh.engines["bob"].groups.groups[group_id].roster.epoch
    mesh._handle("a1", a1.group_sync.share(pub(mesh, "a2"), mesh.now_ms + 120_000))
    mesh.run(30_000)
    assert mesh.engines["bob"].groups.groups[group_id].roster.epoch == before


def test_a_strangers_join_and_a_forged_held_roster_change_nothing() -> None:
    mesh = three()
    link(mesh)
    mesh.run(20_000)
    group_id = mesh.create_group("bob", "g", ["a1"])
    mesh.run(20_000)
    bob = mesh.engines["bob"]
    epoch = bob.groups.groups[group_id].roster.epoch
    # carol, a contact of bob's whose account has no device in the group, asks to join
    mesh.introduce("carol", "bob")
    mesh.introduce("bob", "carol")
    carol = mesh.engines["carol"]
    blob = GroupJoin(group_id).encode()
    mesh._handle("carol", carol.account_glue.send(pub(mesh, "bob"), blob, mesh.now_ms))
    mesh.run(20_000)
    assert bob.groups.groups[group_id].roster.epoch == epoch
    assert bob.groups.groups[group_id].roster.member(carol.identity.node_id) is None
    assert any("not-in-group" in r.reason for r in mesh.events("bob", MessageRejected))
    # carol sends a2 the group's roster as if she were one of alice's devices: refused
    roster = bob.groups.groups[group_id].roster
    mesh.connect("carol", "a2")
    mesh.introduce("carol", "a2")
    mesh.introduce("a2", "carol")
    held = GroupHeld(roster).encode()
    mesh._handle("carol", carol.account_glue.send(pub(mesh, "a2"), held, mesh.now_ms))
    mesh.run(20_000)
    reasons = [r.reason for r in mesh.events("a2", MessageRejected)]
    assert any("not one of mine" in r for r in reasons)
    assert bob.groups.groups[group_id].roster.epoch == epoch


def a2_joined() -> tuple[Mesh, bytes]:
    """bob runs a group a1 joined before linking; a2 is in it too (as in the first test)."""
    mesh = three()
    group_id = mesh.create_group("bob", "friends", ["a1"])
    mesh.run(20_000)
    mesh.introduce("a2", "bob")
    link(mesh)
    mesh.run(20_000)
    mesh.announce("a2")
    mesh.run(30_000)
    a2 = mesh.engines["a2"]
    assert a2.groups.groups[group_id].current is not None
    return mesh, group_id


def test_leaving_on_one_device_leaves_on_the_other() -> None:
    mesh, group_id = a2_joined()
    a1, a2, bob = (mesh.engines[n] for n in ("a1", "a2", "bob"))
    mesh._handle("a1", a1.leave_group(group_id, mesh.now_ms))
    mesh.run(30_000)
    assert a2.groups.groups[group_id].current is None
    roster = bob.groups.groups[group_id].roster
    assert roster.member(a1.identity.node_id) is None
    assert roster.member(a2.identity.node_id) is None
    # a sync later does not bring a2 back
    mesh._handle("a1", a1.group_sync.share(pub(mesh, "a2"), mesh.now_ms))
    mesh.run(70_000)
    assert bob.groups.groups[group_id].roster.member(a2.identity.node_id) is None


def test_a_device_the_admin_removed_is_not_brought_back_by_my_other_device() -> None:
    mesh, group_id = a2_joined()
    a1, a2, bob = (mesh.engines[n] for n in ("a1", "a2", "bob"))
    a2_id = a2.identity.node_id
    mesh._handle("bob", bob.change_group(group_id, mesh.now_ms, remove=[a2_id]))
    mesh.run(30_000)
    assert a2.groups.groups[group_id].current is None
    epoch = bob.groups.groups[group_id].roster.epoch
    # a1 is still in: its sync tells a2, which does not ask back
    mesh._handle("a1", a1.group_sync.share(pub(mesh, "a2"), mesh.now_ms))
    mesh.run(70_000)
    assert bob.groups.groups[group_id].roster.epoch == epoch
    assert not any("was removed" in r.reason for r in mesh.events("bob", MessageRejected))
    # and if a2 asks all the same, bob refuses: he removed it
    join = GroupJoin(group_id).encode()
    mesh._handle("a2", a2.account_glue.send(pub(mesh, "bob"), join, mesh.now_ms))
    mesh.run(20_000)
    assert bob.groups.groups[group_id].roster.member(a2_id) is None
    assert any("was removed" in r.reason for r in mesh.events("bob", MessageRejected))
