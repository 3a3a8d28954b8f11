"""What the group book asks to ack, and the "not applied" answers it sends instead."""

from __future__ import annotations

import os

from meshchat.group.book import MAX_NACKS_PER_PEER, MAX_STRANGER_NACKS, GroupBook
from meshchat.group.control import NotApplied, decode_control
from meshchat.identity import Identity
from meshchat.wire.payloads import ControlPart

NOW = 1_700_000_000_000


def _junk() -> ControlPart:
    return ControlPart(os.urandom(16), os.urandom(16), 0, 1, b"\xff not a control blob")


def test_a_blob_not_applied_is_not_acked_and_its_sender_is_told_within_bounds() -> None:
    book = GroupBook(Identity.generate())
    peer = Identity.generate().public
    answers = 0
    for _ in range(3 * MAX_NACKS_PER_PEER):
        outcome = book.on_part(peer, _junk(), NOW, known=True)
        assert outcome.ack is False and outcome.rejected is not None
        for send in outcome.sends:
            assert send.recipient == peer
            assert isinstance(decode_control(send.part.chunk), NotApplied)
            answers += 1
    assert answers == MAX_NACKS_PER_PEER  # each is retried until acked: bounded per peer
    strangers = sum(
        len(book.on_part(Identity.generate().public, _junk(), NOW, known=False).sends)
        for _ in range(3 * MAX_STRANGER_NACKS)
    )
    assert strangers == MAX_STRANGER_NACKS


def test_a_part_the_assembler_cannot_keep_is_not_acked() -> None:
    book = GroupBook(Identity.generate())
    peer = Identity.generate().public
    blob_id = os.urandom(16)
    first = ControlPart(os.urandom(16), blob_id, 0, 3, b"x" * 900)
    assert book.on_part(peer, first, NOW, known=True).ack is True  # kept
    odd = ControlPart(os.urandom(16), blob_id, 1, 5, b"y" * 900)  # does not match its blob
    outcome = book.on_part(peer, odd, NOW, known=True)
    assert outcome.ack is False
    assert [type(decode_control(s.part.chunk)) for s in outcome.sends] == [NotApplied]


def test_an_update_the_member_had_to_drop_is_sent_once_more_then_applied() -> None:
    admin_id, member_id = Identity.generate(), Identity.generate()
    others = [Identity.generate() for _ in range(3)]
    admin, member = GroupBook(admin_id), GroupBook(member_id)
    everyone = [member_id, *others]
    prekeys = {m.node_id: m.sign_prekey(bytes(32), NOW) for m in everyone}
    group, sends = admin.create("g", [m.public for m in everyone], prekeys, NOW)
    update = [s for s in sends if s.recipient == member_id.public and s.part.count > 1]
    assert len(update) >= 2  # a 5-member roster takes two parts
    first_blob = update[0].part.blob_id
    assert member.on_part(admin_id.public, update[0].part, NOW, known=True).ack
    # The admin's own further half-blobs crowd the update out of the member's per-sender room.
    answers = []
    for _ in range(4):
        filler = ControlPart(os.urandom(16), os.urandom(16), 0, 2, b"z" * 900)
        answers += member.on_part(admin_id.public, filler, NOW, known=True).sends
    dropped = [a for a in answers if decode_control(a.part.chunk) == NotApplied(first_blob, 1)]
    assert len(dropped) == 1
    # The admin sends the update once more, as a new blob, and stops the old one's parts.
    outcome = admin.on_part(member_id.public, dropped[0].part, NOW, known=True)
    assert outcome.ack and {s.recipient for s in outcome.sends} == {member_id.public}
    assert set(outcome.cancel) <= {s.part.msg_id for s in update}
    assert group.delivery[member_id.node_id] == "pending"
    took = [member.on_part(admin_id.public, s.part, NOW, known=True) for s in outcome.sends]
    assert all(t.ack for t in took)
    assert [n.what for t in took for n in t.notices] == ["joined"]
    for send in outcome.sends:
        admin.control_acked(send.part.msg_id)
        admin.control_done(send.part.msg_id)
    assert group.delivery[member_id.node_id] == "applied"
