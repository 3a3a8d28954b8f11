"""Groups on the chat screen: snapshots, change lines, reports and list entries (pure)."""

from __future__ import annotations

import os
import unicodedata
from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from meshchat.group.book import Group, GroupBook
from meshchat.group.roster import Roster
from meshchat.identity import Identity
from meshchat.store.records import Conversation
from meshchat.tui.groups import (
    GroupNote,
    GroupState,
    group_changes,
    group_label,
    group_text,
    groups_text,
    snapshot,
)
from meshchat.tui.view import ConvEntry, conversation_entries, entry_markup

ME = bytes.fromhex("11" * 16)
ALICE = bytes.fromhex("22" * 16)
BOB = bytes.fromhex("33" * 16)
CAROL = bytes.fromhex("44" * 16)
GID = bytes.fromhex("ab" * 16)
KEY = "grp:" + GID.hex()
NAMES = {ALICE: "Alice", BOB: "bob", CAROL: "~carol"}


def namer(node_id: bytes) -> str:
    return NAMES.get(node_id, node_id.hex()[:8])


def state(
    members: tuple[bytes, ...] = (ME, ALICE, BOB),
    *,
    admins: frozenset[bytes] = frozenset({ALICE}),
    signer: bytes | None = ALICE,
    member: bool = True,
    epoch: int = 1,
    name: str = "crew",
    group_id: bytes = GID,
) -> GroupState:
    return GroupState(group_id, name, epoch, members, admins, signer, member)


def texts(notes: list[GroupNote]) -> list[str]:
    return [n.text for n in notes]


def test_being_added_is_loud_and_names_the_admin() -> None:
    notes = group_changes({}, [state()], ME, namer)
    assert notes == [
        GroupNote(KEY, "you were added to +crew by Alice (members: you, Alice, bob)", loud=True)
    ]


def test_creating_a_group_reads_as_our_own_doing() -> None:
    created = state(admins=frozenset({ME}), signer=ME)
    assert texts(group_changes({}, [created], ME, namer)) == ["you created +crew with Alice, bob"]
    alone = state((ME,), admins=frozenset({ME}), signer=ME)
    assert texts(group_changes({}, [alone], ME, namer)) == ["you created +crew with nobody else"]


def test_being_removed_says_nothing_new_can_be_read() -> None:
    before = {GID: state()}
    after = state((ALICE, BOB), epoch=2, member=False)
    [note] = group_changes(before, [after], ME, namer)
    assert note.loud and note.conversation == KEY
    assert note.text == (
        "you were removed from +crew by Alice: nothing sent to it from now on can be read by you"
    )


def test_leaving_while_still_listed_reads_as_left() -> None:
    [note] = group_changes({GID: state()}, [state(member=False)], ME, namer)
    assert note.text.startswith("you left +crew: nothing sent to it")


def test_added_again_after_a_removal() -> None:
    before = {GID: state((ALICE, BOB), member=False)}
    [note] = group_changes(before, [state(epoch=3)], ME, namer)
    assert note.text.startswith("you were added again to +crew by Alice")


def test_roster_changes_by_someone_else_stay_in_the_group() -> None:
    before = {GID: state((ME, ALICE, BOB))}
    after = state((ME, ALICE, CAROL), admins=frozenset({ALICE, CAROL}), epoch=2)
    notes = group_changes(before, [after], ME, namer)
    assert texts(notes) == [
        "Alice added ~carol to +crew",
        "Alice removed bob from +crew: they cannot read what is sent from now on",
        "Alice made ~carol an admin of +crew",
    ]
    assert not any(n.loud for n in notes)


def test_our_own_changes_are_loud() -> None:
    before = {GID: state(admins=frozenset({ME}), signer=ME)}
    after = state((ME, ALICE, BOB, CAROL), admins=frozenset({ME, ALICE, BOB}), signer=ME, epoch=2)
    notes = group_changes(before, [after], ME, namer)
    assert texts(notes) == [
        "you added ~carol to +crew",
        "you made Alice, bob admins of +crew",
    ]
    assert all(n.loud for n in notes)


def test_nothing_visible_changed_means_no_line() -> None:
    same = state()
    assert group_changes({GID: same}, [same], ME, namer) == []
    assert group_changes({GID: same}, [replace(same, epoch=2)], ME, namer) == []  # re-keyed
    out = state(member=False)
    assert group_changes({GID: out}, [replace(out, epoch=5)], ME, namer) == []
    assert group_changes({}, [out], ME, namer) == []  # already out when first seen


def test_an_unlisted_signer_and_unknown_members_still_read_well() -> None:
    stranger = bytes.fromhex("99" * 16)
    after = state((ME, ALICE, stranger), signer=None, epoch=2)
    [note] = group_changes({GID: state((ME, ALICE))}, [after], ME, namer)
    assert note.text == "an admin added 99999999 to +crew"


@given(st.text(max_size=40))
def test_labels_never_carry_control_characters(name: str) -> None:
    label = group_label(name)
    assert label.startswith("+") and len(label) > 1
    bad = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}
    assert not any(unicodedata.category(ch) in bad for ch in label)


def test_group_list_and_show_reports() -> None:
    assert groups_text([], ME).startswith("no groups yet: /group create")
    mine = state(admins=frozenset({ME, ALICE}))
    gone = state((ALICE, BOB), member=False, name="old", group_id=bytes(16))
    report = groups_text([mine, gone], ME)
    assert report.splitlines()[:3] == [
        "groups (2):",
        f"  +crew  grp:{GID.hex()[:8]}  3 members, you are an admin",
        "  +old  grp:00000000  (you were removed)",
    ]
    shown = group_text(mine, ME, namer)
    assert f"id {GID.hex()}, epoch 1" in shown
    assert "  11111111  you (admin)" in shown and "  33333333  bob\n" in shown + "\n"
    assert "/group add|remove|admin +crew" in shown
    assert "nothing sent to it from now on" in group_text(gone, ME, namer)
    assert "/group add" not in group_text(state(), ME, namer)  # not an admin


def test_snapshot_copies_a_real_group() -> None:
    me, other = Identity.generate(), Identity.generate()
    book = GroupBook(me)
    group, _sends = book.create("crew", [other.public], {}, 1_000)
    shot = snapshot(group)
    assert shot.member and shot.signer == me.public.node_id and shot.epoch == 1
    assert set(shot.members) == {me.public.node_id, other.public.node_id}
    assert shot.admins == {me.public.node_id} and shot.conversation == "grp:" + group.group_id.hex()
    # A roster signed by someone it does not list: the signer is unknown; no keys: not a member.
    roster = Roster.build(other, os.urandom(16), 4, "side", [me.public], {me.public.node_id})
    removed = snapshot(Group(roster.group_id, roster, removed=True))
    assert removed.signer is None and not removed.member and removed.label == "+side"


def test_groups_in_the_conversation_list() -> None:
    twin = bytes.fromhex("cd" * 16)
    lost = "grp:" + "ef" * 16
    summaries = [Conversation(KEY, 5, 2, "hi"), Conversation(lost, 4, 1, "?")]
    groups = [
        state(name="zoo", group_id=twin, member=False),
        state(),
        state(name="Crew", group_id=twin[:15] + b"\x01"),
    ]
    entries = conversation_entries(["#mesh"], {BOB: "bob"}, summaries, groups)
    assert [(e.label, e.unread, e.removed) for e in entries] == [
        ("#mesh", 0, False),
        ("+?efefefef", 1, False),
        ("+crew (abab)", 2, False),
        ("+Crew (cdcd)", 0, False),
        ("+zoo", 0, True),
        ("bob", 0, False),
    ]
    removed = ConvEntry("grp:cd", "+zoo", 0, removed=True)
    assert entry_markup(removed, current=False) == [("conv", "  +zoo"), ("dim", " (removed)")]


def test_a_member_who_did_not_apply_our_change_is_told_loudly_and_marked() -> None:
    mine = state(admins=frozenset({ME}), signer=ME)
    failed = GroupState(
        GID, "crew", 1, (ME, ALICE, BOB), frozenset({ME}), ME, True, frozenset({BOB})
    )
    [note] = group_changes({GID: mine}, [failed], ME, namer)
    assert note.loud and note.text.startswith("bob did not apply your change to +crew")
    assert group_changes({GID: failed}, [failed], ME, namer) == []
    shown = group_text(failed, ME, namer).splitlines()
    assert [line for line in shown if "[not applied]" in line] == [
        f"  {BOB.hex()[:8]}  bob  [not applied]"
    ]
