"""Rosters: signed by an admin, canonical, bounded; anything else is refused with a typed error."""

from __future__ import annotations

import contextlib
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshchat.errors import PacketError
from meshchat.group.roster import MAX_MEMBERS, NO_PARENT, Roster, new_group_id
from meshchat.identity import Identity


def people(n: int) -> list[Identity]:
    return [Identity.generate() for _ in range(n)]


def roster_of(admin: Identity, members: list[Identity], epoch: int = 1) -> Roster:
    return Roster.build(
        admin,
        new_group_id(),
        epoch,
        "crew",
        [m.public for m in [admin, *members]],
        {admin.node_id},
    )


def test_a_built_roster_verifies_and_round_trips() -> None:
    admin, *others = people(4)
    roster = roster_of(admin, others)
    assert roster.signature_valid()
    assert Roster.decode(roster.encode()) == roster
    assert roster.is_admin_key(admin.public.sign_public)
    assert not roster.is_admin_key(others[0].public.sign_public)
    assert [m.node_id for m in roster.members] == sorted(m.node_id for m in roster.members)


def test_any_change_breaks_the_signature() -> None:
    admin, *others = people(3)
    roster = roster_of(admin, others)
    intruder = Identity.generate().public
    for changed in (
        replace(roster, epoch=2),
        replace(roster, name="other"),
        replace(
            roster, members=tuple(sorted((*roster.members, intruder), key=lambda m: m.node_id))
        ),
        replace(roster, admins=frozenset(m.node_id for m in roster.members)),
    ):
        assert not changed.signature_valid()


def test_signed_by_someone_else_does_not_verify() -> None:
    admin, mallory, *others = people(3)
    roster = roster_of(admin, others)
    forged = replace(roster, signer=mallory.public.sign_public)
    assert not forged.signature_valid()


def test_admins_must_be_members_and_members_unique() -> None:
    admin, other = people(2)
    with pytest.raises(PacketError):
        Roster.build(admin, new_group_id(), 1, "x", [other.public], {admin.node_id})
    roster = roster_of(admin, [other])
    with pytest.raises(PacketError):
        replace(roster, members=(roster.members[0], roster.members[0]))


def test_outranks_by_epoch_then_by_digest() -> None:
    admin, other = people(2)
    first = roster_of(admin, [other])
    second = Roster.build(
        admin, first.group_id, 2, "crew", [m for m in first.members], first.admins
    )
    assert second.outranks(first) and not first.outranks(second)
    fork = Roster.build(admin, first.group_id, 2, "fork", [m for m in first.members], first.admins)
    assert second.outranks(fork) != fork.outranks(second)


def test_too_many_members_is_refused() -> None:
    admin = Identity.generate()
    many = [Identity.generate().public for _ in range(MAX_MEMBERS)]
    with pytest.raises(PacketError):
        Roster.build(admin, new_group_id(), 1, "big", [admin.public, *many], {admin.node_id})


def test_non_canonical_encoding_is_refused() -> None:
    import cbor2

    admin, other = people(2)
    roster = roster_of(admin, [other])
    fields = cbor2.loads(roster.encode())
    fields[4] = list(reversed(fields[4])) + fields[4]  # duplicate admins
    with pytest.raises(PacketError):
        Roster.decode(cbor2.dumps(fields))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_decoding_arbitrary_bytes_never_crashes(data: bytes) -> None:
    with contextlib.suppress(PacketError):
        Roster.decode(data)


_ADMIN, _OTHER = people(2)
_VALID = roster_of(_ADMIN, [_OTHER]).encode()


@settings(max_examples=300, deadline=None)
@given(st.integers(0, len(_VALID) - 1), st.integers(0, 255))
def test_a_flipped_byte_is_refused_or_fails_verification(index: int, value: int) -> None:
    data = bytearray(_VALID)
    if data[index] == value:
        return
    data[index] = value
    try:
        roster = Roster.decode(bytes(data))
    except PacketError:
        return
    assert not roster.signature_valid()


def test_a_roster_names_its_parent_and_the_signature_covers_it() -> None:
    admin, other = people(2)
    first = roster_of(admin, [other])
    assert first.parent == NO_PARENT
    second = Roster.build(
        admin, first.group_id, 2, "crew", first.members, first.admins, parent=first.digest
    )
    again = Roster.decode(second.encode())
    assert again.parent == first.digest and again.signature_valid()
    assert not replace(second, parent=NO_PARENT).signature_valid()
    with pytest.raises(PacketError):
        replace(second, parent=b"short")
