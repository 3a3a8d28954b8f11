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
