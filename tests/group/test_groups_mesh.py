"""Private groups between real engines on the in-process mesh: join, talk, re-key, restart."""

from __future__ import annotations

import itertools

import pytest
from mesh import Mesh

from meshchat.errors import UsageError
from meshchat.events import GroupChanged, GroupStateUpdated, MessageReceived, MessageRejected
from meshchat.group.book import group_conversation
from meshchat.router.actions import Transmit
from meshchat.wire import codec
from meshchat.wire.packet import Suite


def chain(names: str = "abcd") -> Mesh:
    mesh = Mesh(cards=True)
    mesh.add_many(names)
    mesh.connect_all(itertools.pairwise(names))
    return mesh


def texts(mesh: Mesh, node: str, group_id: bytes) -> list[str]:
    conversation = group_conversation(group_id)
    return [r.text for r in mesh.received(node) if r.conversation == conversation]


def test_members_join_and_every_member_reads_every_other() -> None:
    mesh = chain()
    group_id = mesh.create_group("a", "friends", "bcd")
    mesh.run(20_000)
    for node in "bcd":
        joined = mesh.events(node, GroupChanged)
        assert [(g.group_id, g.name, g.what) for g in joined] == [(group_id, "friends", "joined")]
    for sender in "abcd":
        mesh.send_group(sender, group_id, f"hi from {sender}")
    mesh.run(5_000)
    for node in "abcd":
        expected = sorted(f"hi from {s}" for s in "abcd" if s != node)
        assert sorted(texts(mesh, node, group_id)) == expected
    # The sender is authenticated inside: each message names the member who wrote it.
    got = [r for r in mesh.received("d") if r.text == "hi from b"]
    assert got[0].sender == mesh.engines["b"].identity.public


def test_members_who_are_not_contacts_get_each_others_prekeys_from_the_roster() -> None:
    mesh = chain()
    b = mesh.engines["b"].identity.public
    # Only a holds cards; b, c, d never exchanged any.
    assert not mesh.engines["d"].direct.can_seal(b)
    group_id = mesh.create_group("a", "g", "bcd")
    mesh.run(20_000)
    assert mesh.engines["d"].direct.can_seal(b)
    mesh.send_group("d", group_id, "from d")
    mesh.run(5_000)
    assert texts(mesh, "b", group_id) == ["from d"]


def test_group_packets_show_no_sender_and_change_address_at_each_epoch() -> None:
    mesh = chain()
    group_id = mesh.create_group("a", "g", "bcd")
    mesh.run(20_000)
    before = len(mesh.outputs["b"])
    mesh.send_group("b", group_id, "first")
    first = _group_packets(mesh.outputs["b"][before:])
    b = mesh.engines["b"].identity.public
    for packet in first:
        assert packet.origin != b.sign_public
        assert b.sign_public not in packet.payload and b.node_id not in packet.payload
        assert b"first" not in codec.encode(packet)
    mesh.run(5_000)
    _remove(mesh, "a", group_id, "d")
    mesh.run(20_000)
    before = len(mesh.outputs["b"])
    mesh.send_group("b", group_id, "second")
    second = _group_packets(mesh.outputs["b"][before:])
    assert first and second
    assert first[0].destination != second[0].destination
    assert len(first[0].payload) in (256, 512, 1024, 1800)


def test_removed_member_receives_the_packets_and_cannot_read_them() -> None:
    mesh = chain()
    group_id = mesh.create_group("a", "g", "bcd")
    mesh.run(20_000)
    mesh.send_group("b", group_id, "before removal")
    mesh.run(5_000)
    assert texts(mesh, "d", group_id) == ["before removal"]
    old_state = mesh.engines["d"].groups.groups[group_id]
    old_epoch = old_state.epochs[-1]
    old_keys = old_epoch.keys

    _remove(mesh, "a", group_id, "d")
    mesh.run(20_000)
    notices = mesh.events("d", GroupChanged)
    assert notices[-1].what == "removed"
    assert mesh.engines["d"].groups.groups[group_id].epochs == []  # keys erased

    frames_at_d: list[bytes] = []
    mesh.filter = lambda node, link, frame: (node != "d" or frames_at_d.append(frame)) or True
    mesh.send_group("b", group_id, "after removal")
    mesh.send_group("a", group_id, "admin after removal")
    mesh.run(5_000)
    # The others read them; d relayed packets but shows nothing.
    assert "after removal" in texts(mesh, "c", group_id)
    assert "admin after removal" in texts(mesh, "c", group_id)
    assert texts(mesh, "d", group_id) == ["before removal"]
    group_frames = [f for f in frames_at_d if codec.parse(f).suite is Suite.GROUP]
    assert group_frames, "d's node must have received the group packets"
    # Even with the keys d held before (a copy kept by a removed member), nothing opens.
    from meshchat.errors import DecryptionError
    from meshchat.group.sender_keys import open_header

    for frame in group_frames:
        packet = codec.parse(frame)
        assert packet.destination.value != old_keys.address
        with pytest.raises(DecryptionError):
            open_header(old_keys, packet.origin, packet.payload)


def test_only_an_admin_can_change_the_group() -> None:
    mesh = chain()
    group_id = mesh.create_group("a", "g", "bcd")
    mesh.run(20_000)
    with pytest.raises(UsageError):
        mesh.engines["b"].change_group(group_id, mesh.now_ms, remove=[_id(mesh, "c")])


def test_a_roster_from_a_member_who_is_not_admin_is_refused() -> None:
    mesh = chain()
    group_id = mesh.create_group("a", "g", "bcd")
    mesh.run(20_000)
    # b forges admin rights in its own book and pushes a roster that drops c.
    b_group = mesh.engines["b"].groups.groups[group_id]
    b_group.roster = _with_admin(b_group.roster, mesh, "b")
    outputs = mesh.engines["b"].change_group(group_id, mesh.now_ms, remove=[_id(mesh, "c")])
    mesh._handle("b", outputs)
    mesh.run(20_000)
    rejected = [r.reason for r in mesh.events("d", MessageRejected)]
    assert any("not an admin" in r for r in rejected)
    d_group = mesh.engines["d"].groups.groups[group_id]
    assert d_group.roster.epoch == 1
    assert d_group.roster.member(_id(mesh, "c")) is not None


def test_added_member_reads_new_messages_but_not_history() -> None:
    mesh = chain("abcde")
    group_id = mesh.create_group("a", "g", "bc")
    mesh.run(20_000)
    mesh.send_group("b", group_id, "old news")
    mesh.run(5_000)
    mesh.introduce("a", "e")
    mesh.introduce("e", "a")
    outputs = mesh.engines["a"].change_group(
        group_id, mesh.now_ms, add=[mesh.engines["e"].identity.public]
    )
    mesh._handle("a", outputs)
    mesh.run(20_000)
    mesh.send_group("b", group_id, "welcome e")
    mesh.run(5_000)
    assert texts(mesh, "e", group_id) == ["welcome e"]
    # The old epoch's keys were never sent to e.
    e_group = mesh.engines["e"].groups.groups[group_id]
    assert [epoch.roster.epoch for epoch in e_group.epochs] == [2]


def test_a_message_that_arrives_before_its_sender_key_is_held_then_shown() -> None:
    mesh = chain("abc")
    group_id = mesh.create_group("a", "g", "bc")
    mesh.run(20_000)
    # Re-key, but hold back everything b sends to c's node until b's group message is out.
    held: list[tuple[str, str, bytes]] = []

    def hold(node: str, link: str, frame: bytes) -> bool:
        if node == "c" and codec.parse(frame).suite is Suite.RATCHET:
            held.append((node, link, frame))
            return False
        return True

    mesh.filter = hold
    _remove(mesh, "a", group_id, None)  # a new epoch with the same members
    mesh.run(2_000)
    mesh.filter = None
    mesh.run(30_000)  # retries bring the keys; anything sent meanwhile waits at c
    mesh.filter = hold
    mesh.send_group("a", group_id, "early")
    mesh.run(1_000)
    pending = [r.reason for r in mesh.events("c", MessageRejected)]
    assert "early" in texts(mesh, "c", group_id) or any("held" in r for r in pending)
    mesh.filter = None
    mesh.run(60_000)
    assert texts(mesh, "c", group_id).count("early") == 1


def test_group_survives_a_restart_and_a_replayed_packet_is_refused() -> None:
    mesh = chain("abc")
    group_id = mesh.create_group("a", "g", "bc")
    mesh.run(20_000)
    before = len(mesh.outputs["a"])
    mesh.send_group("a", group_id, "one")
    mesh.run(5_000)
    frame = next(
        o.frame
        for o in mesh.outputs["a"][before:]
        if isinstance(o, Transmit) and codec.parse(o.frame).suite is Suite.GROUP
    )
    for node in "abc":
        mesh.restart(node)
    mesh.run(5_000)
    mesh.send_group("a", group_id, "two")
    mesh.send_group("c", group_id, "three")
    mesh.run(5_000)
    assert texts(mesh, "b", group_id) == ["one", "two", "three"]
    # The same packet again (long after its id left every seen-set) opens nothing new.
    mesh.run(3_700_000)  # past the seen-set's hour: the router forgot the packet id
    mesh.tick("b")
    outputs = mesh.inject("b", frame)
    assert not [o for o in outputs if isinstance(o, MessageReceived)]
    assert any(isinstance(o, MessageRejected) and "already used" in o.reason for o in outputs)


def test_state_changes_are_output_before_the_packet_that_depends_on_them() -> None:
    mesh = chain("ab")
    group_id = mesh.create_group("a", "g", "b")
    mesh.run(20_000)
    outputs = mesh.engines["a"].send_group(group_id, mesh.new_msg_id(), "x", mesh.now_ms)
    kinds = [type(o).__name__ for o in outputs]
    assert kinds.index("GroupStateUpdated") < kinds.index("Transmit")
    assert any(isinstance(o, GroupStateUpdated) and o.key == group_id for o in outputs)


def test_an_invitation_from_someone_who_is_not_a_contact_is_refused() -> None:
    mesh = chain("ab")
    mesh.introduce("a", "b")  # a holds b's card; b never took a's
    group, outputs = mesh.engines["a"].create_group(
        "spam", [mesh.engines["b"].identity.public], mesh.now_ms
    )
    mesh._handle("a", outputs)
    mesh.run(20_000)
    assert group.group_id not in mesh.engines["b"].groups.groups
    refused = [g for g in mesh.events("b", GroupChanged) if g.what == "refused"]
    assert refused and refused[0].by == mesh.engines["a"].identity.public
    assert refused[0].name == "spam"


def test_a_removed_member_cannot_post_in_the_old_epoch() -> None:
    mesh = chain()
    group_id = mesh.create_group("a", "g", "bcd")
    mesh.run(20_000)
    # d keeps a copy of its state from before the removal...
    d = mesh.engines["d"]
    _remove(mesh, "a", group_id, "d")
    before_removal = d.groups.groups[group_id]
    mesh.run(20_000)
    assert before_removal.current is None
    # ...and writes with its old chain at the old address: nobody shows it.
    from meshchat.group.book import GroupBook

    forger = GroupBook(d.identity)
    stale = next(
        o for o in mesh.outputs["d"] if isinstance(o, GroupStateUpdated) and o.key == group_id
    )
    forger.load({group_id: stale.blob})
    packet = forger.seal(group_id, b"\x82" + b"\x50" + bytes(16) + b"\x63bad", mesh.now_ms, 8)
    outputs = mesh.inject("c", codec.encode(packet))
    assert any(isinstance(o, MessageRejected) and "not a member" in o.reason for o in outputs)
    mesh.run(5_000)
    assert "bad" not in texts(mesh, "c", group_id)
    assert "bad" not in texts(mesh, "b", group_id)


def test_a_member_who_leaves_is_removed_by_the_admin_and_the_group_re_keys() -> None:
    mesh = chain()
    group_id = mesh.create_group("a", "g", "bcd")
    mesh.run(20_000)
    mesh._handle("c", mesh.engines["c"].leave_group(group_id, mesh.now_ms))
    assert mesh.engines["c"].groups.groups[group_id].current is None
    mesh.run(30_000)
    for node in "abd":
        roster = mesh.engines[node].groups.groups[group_id].roster
        assert roster.epoch == 2 and roster.member(_id(mesh, "c")) is None
    mesh.send_group("b", group_id, "without c")
    mesh.run(5_000)
    assert texts(mesh, "d", group_id) == ["without c"]
    assert texts(mesh, "c", group_id) == []


# -- helpers -------------------------------------------------------------------------------


def _id(mesh: Mesh, name: str) -> bytes:
    return mesh.engines[name].identity.node_id


def _remove(mesh: Mesh, admin: str, group_id: bytes, who: str | None) -> None:
    remove = [] if who is None else [_id(mesh, who)]
    outputs = mesh.engines[admin].change_group(group_id, mesh.now_ms, remove=remove)
    mesh._handle(admin, outputs)


def _group_packets(outputs: list[object]) -> list[codec.Packet]:
    packets = []
    for o in outputs:
        if isinstance(o, Transmit):
            packet = codec.parse(o.frame)
            if packet.suite is Suite.GROUP:
                packets.append(packet)
    return packets


def _with_admin(roster, mesh: Mesh, name: str):  # type: ignore[no-untyped-def]
    from dataclasses import replace

    return replace(roster, admins=roster.admins | {_id(mesh, name)})


def test_no_group_keys_go_to_keys_the_user_marked_compromised() -> None:
    mesh = chain("abc")
    group_id = mesh.create_group("a", "g", "bc")
    mesh.run(20_000)
    mesh._handle("a", mesh.engines["a"].distrust(_id(mesh, "c")))
    _remove(mesh, "a", group_id, None)  # a re-key that still lists c
    mesh.run(30_000)
    assert mesh.engines["b"].groups.groups[group_id].roster.epoch == 2
    assert mesh.engines["c"].groups.groups[group_id].roster.epoch == 1


def test_a_member_back_in_range_within_the_hour_still_gets_the_message() -> None:
    mesh = chain("abcd")
    group_id = mesh.create_group("a", "g", "bcd")
    mesh.run(20_000)
    mesh.disconnect("c", "d")
    mesh.send_group("a", group_id, "while d was away")
    mesh.run(5_000)
    assert texts(mesh, "d", group_id) == []
    mesh.run(20 * 60_000)
    mesh.connect("c", "d")  # c carried the packet: it offers it to the new neighbour
    mesh.run(5_000)
    assert texts(mesh, "d", group_id) == ["while d was away"]
    # Past the hour nobody offers it again; a node that forgot its id sees no new flood.
    mesh.disconnect("c", "d")
    mesh.run(3_700_000)
    before = {n: len(mesh.outputs[n]) for n in "cd"}
    mesh.connect("c", "d")
    mesh.run(5_000)
    assert not [p for n in "cd" for p in _group_packets(mesh.outputs[n][before[n] :])]
    assert texts(mesh, "d", group_id) == ["while d was away"]


# -- two admins at once ----------------------------------------------------------------------


def _roster(mesh: Mesh, node: str, group_id: bytes):  # type: ignore[no-untyped-def]
    return mesh.engines[node].groups.groups[group_id].roster


def _two_admins(mesh: Mesh) -> bytes:
    group_id = mesh.create_group("a", "g", "bcd")
    mesh.run(20_000)
    admins = {_id(mesh, "a"), _id(mesh, "b")}
    mesh._handle("a", mesh.engines["a"].change_group(group_id, mesh.now_ms, admins=admins))
    mesh.run(20_000)
    assert _roster(mesh, "d", group_id).admins == admins
    return group_id


def test_a_removal_is_not_undone_by_another_admins_change_made_at_the_same_time() -> None:
    mesh = chain()
    group_id = _two_admins(mesh)
    mesh.disconnect("a", "b")
    _remove(mesh, "a", group_id, "d")
    removal = _roster(mesh, "a", group_id)
    # Meanwhile b, cut off from a, re-keys the group as it knows it: d still in it. Its roster
    # is made to win the fork (members settle on the higher epoch, then the lower digest).
    _remove(mesh, "b", group_id, None)
    if not _roster(mesh, "b", group_id).outranks(removal):
        _remove(mesh, "b", group_id, None)
    fork = _roster(mesh, "b", group_id)
    assert fork.outranks(removal) and fork.member(_id(mesh, "d")) is not None
    mesh.run(10_000)
    assert _roster(mesh, "c", group_id).digest == fork.digest  # c and d went with b's
    mesh.restart("a")  # what a removed is remembered on disk

    mesh.connect("a", "b")
    mesh.run(180_000)
    final = _roster(mesh, "a", group_id)
    assert final.epoch > fork.epoch and final.parent == fork.digest  # a removed d again
    for node in "abc":
        roster = _roster(mesh, node, group_id)
        assert roster.digest == final.digest
        assert roster.member(_id(mesh, "d")) is None
    assert mesh.events("d", GroupChanged)[-1].what == "removed"
    assert mesh.engines["d"].groups.groups[group_id].epochs == []
    mesh.send_group("c", group_id, "after the fork")
    mesh.run(5_000)
    assert "after the fork" in texts(mesh, "a", group_id)
    assert "after the fork" in texts(mesh, "b", group_id)
    assert "after the fork" not in texts(mesh, "d", group_id)


def test_a_member_re_added_by_an_admin_who_saw_the_removal_stays() -> None:
    mesh = chain()
    group_id = _two_admins(mesh)
    _remove(mesh, "a", group_id, "d")
    mesh.run(30_000)
    assert _roster(mesh, "b", group_id).member(_id(mesh, "d")) is None
    d = mesh.engines["d"].identity.public
    mesh._handle("b", mesh.engines["b"].change_group(group_id, mesh.now_ms, add=[d]))
    mesh.run(60_000)
    epochs = {_roster(mesh, node, group_id).epoch for node in "abcd"}
    assert epochs == {4}  # a did not remove d again
    assert all(_roster(mesh, node, group_id).member(d.node_id) for node in "abcd")
    mesh.send_group("c", group_id, "welcome back")
    mesh.run(5_000)
    assert texts(mesh, "d", group_id)[-1] == "welcome back"
