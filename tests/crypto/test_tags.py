"""Rotating addresses: pair tags, prekey tags and the address book's window."""

from __future__ import annotations

from nacl.public import PrivateKey

from meshchat.crypto.tags import (
    EPOCH_MS,
    AddressBook,
    Source,
    epoch_of,
    pair_key,
    pair_tag,
    prekey_tag,
)
from meshchat.identity import Identity
from meshchat.wire.packet import MAX_AGE_MS

NOW = 1_700_000_000_000
WINDOW = MAX_AGE_MS // EPOCH_MS + 3  # a week back, the current epoch and the next


def test_both_sides_compute_the_same_pair_tags_and_directions_differ() -> None:
    a, b = Identity.generate(), Identity.generate()
    k_ab = pair_key(bytes(a.box_key), b.public.box_public)
    k_ba = pair_key(bytes(b.box_key), a.public.box_public)
    assert k_ab == k_ba
    e = epoch_of(NOW)
    to_b = pair_tag(k_ab, b.node_id, e)
    assert to_b == pair_tag(k_ba, b.node_id, e)
    assert to_b != pair_tag(k_ab, a.node_id, e)
    assert to_b != pair_tag(k_ab, b.node_id, e + 1)
    assert len(to_b) == 16


def test_prekey_tags_rotate_hourly() -> None:
    spk = bytes(PrivateKey.generate().public_key)
    tags = {prekey_tag(spk, epoch_of(NOW + i * EPOCH_MS)) for i in range(24)}
    assert len(tags) == 24


def test_address_book_covers_a_week_of_epochs_and_slides() -> None:
    me, peer = Identity.generate(), Identity.generate()
    book = AddressBook(me.node_id)
    book.advance(NOW)
    key = pair_key(bytes(me.box_key), peer.public.box_public)
    source = Source("peer", peer.node_id)
    book.add(source, key)
    assert len(book.tags) == WINDOW
    week_old = pair_tag(key, me.node_id, epoch_of(NOW - MAX_AGE_MS))
    next_hour = pair_tag(key, me.node_id, epoch_of(NOW) + 1)
    assert week_old in book.tags and next_hour in book.tags
    assert book.source_of(next_hour) == source
    assert pair_tag(key, me.node_id, epoch_of(NOW) + 2) not in book.tags
    book.advance(NOW + EPOCH_MS)  # an hour on
    assert pair_tag(key, me.node_id, epoch_of(NOW) + 2) in book.tags
    assert len(book.tags) == WINDOW
    book.advance(NOW - 30 * EPOCH_MS)  # the clock went back
    assert len(book.tags) == WINDOW
    book.remove(source)
    assert book.tags == set()
    assert book.source_of(next_hour) is None


def test_address_book_keeps_the_live_set_object() -> None:
    me = Identity.generate()
    book = AddressBook(me.node_id)
    live = book.tags
    book.advance(NOW)
    book.add(Source("prekey", b"\x01" * 32), b"\x01" * 32)
    assert live is book.tags and len(live) == WINDOW
    assert book.sources("prekey") == [Source("prekey", b"\x01" * 32)]
