"""The group book's own row stays within the store's limit, however big the group."""

from __future__ import annotations

import cbor2

from meshchat.group._state import MAX_BOOK_BYTES, BookState
from meshchat.group.book import BOOK_KEY, GroupBook
from meshchat.group.roster import MAX_MEMBERS
from meshchat.identity import Identity
from meshchat.store import MAX_BLOB_BYTES

NOW = 1_700_000_000_000


def _big_group() -> tuple[GroupBook, list[Identity], bytes]:
    admin = Identity.generate()
    members = [Identity.generate() for _ in range(MAX_MEMBERS - 1)]
    book = GroupBook(admin)
    prekeys = {m.node_id: m.sign_prekey(bytes(32), NOW) for m in members}
    group, _ = book.create("big", [m.public for m in members], prekeys, NOW)
    return book, members, group.group_id


def test_a_full_group_fits_one_row_and_reads_back() -> None:
    book, _, _ = _big_group()
    row = dict(book.take_updates())[BOOK_KEY]
    assert len(row) <= MAX_BOOK_BYTES <= MAX_BLOB_BYTES  # it was 940 KB, refused by the store
    again = BookState.load(row)
    assert again.outgoing == book.state.outgoing
    assert again.tracked == book.state.tracked
    assert BookState.load(again.dump()).dump() == row


def test_changes_while_members_are_away_keep_the_row_bounded() -> None:
    book, members, group_id = _big_group()
    prekeys = {m.node_id: m.sign_prekey(bytes(32), NOW) for m in members}
    for i in range(3):
        book.change(group_id, [], [members[i].node_id], prekeys, NOW + 1000 * (i + 1))
        row = dict(book.take_updates())[BOOK_KEY]
        assert len(row) <= MAX_BOOK_BYTES
    stored = BookState.load(row).outgoing
    # What is left out of the stored copy is what expires first: the oldest roster's parts.
    newest = max(c.expires_ms for c in book.state.outgoing.values())
    assert {m for m, c in book.state.outgoing.items() if c.expires_ms == newest} <= set(stored)


def test_the_older_layout_still_loads() -> None:
    book, _, _ = _big_group()
    some = dict(list(book.state.outgoing.items())[:10])
    old = cbor2.dumps(
        [
            2,
            [],
            [],
            [
                [c.recipient.sign_public, c.recipient.box_public, c.part.encode(), c.expires_ms]
                for c in some.values()
            ],
        ],
        canonical=True,
    )
    assert BookState.load(old).outgoing == some
