"""The account book: which lists a node takes, what changes, and what it refuses."""

from __future__ import annotations

import pytest

from meshchat.account.book import AccountBook
from meshchat.account.devicelist import DeviceEntry, DeviceList
from meshchat.errors import DeviceListError, DeviceListReason
from meshchat.identity import Identity


def entry(identity: Identity) -> DeviceEntry:
    return DeviceEntry.of(identity.public, identity.node_id.hex()[:6])


def test_a_new_book_holds_a_genesis_list_to_store() -> None:
    me = Identity.generate()
    book = AccountBook(me, device_name="laptop")
    assert book.account_id == me.node_id and book.own.version == 1
    assert book.take_updates() == [(me.node_id, book.own.encode())]
    assert book.take_updates() == []
    assert book.own_devices() == ()
    assert book.account_of(me.node_id) == me.node_id


def test_a_contact_list_adds_devices_to_its_account() -> None:
    viewer, a1, a2 = (Identity.generate() for _ in range(3))
    book = AccountBook(viewer)
    book.take_updates()
    book.know(a1.public)
    assert book.held(a1.node_id) == DeviceList.implicit(a1.public)
    v2 = DeviceList.genesis(a1, "laptop").successor(a1, add=[entry(a2)])
    change = book.offer(v2, a1.public, 0)
    assert change is not None and change.signer_was_trusted
    assert change.added == (a2.public,) and change.revoked == ()
    assert change.old_version == 0
    assert book.account_of(a2.node_id) == a1.node_id
    assert set(book.devices_of(a1.node_id)) == {a1.public, a2.public}
    assert book.take_updates() == [(a1.node_id, v2.encode())]
    assert book.offer(v2, a1.public, 0) is None  # the same again: nothing
    v3 = v2.successor(a2, revoke=[a1.node_id])
    change = book.offer(v3, a2.public, 0)
    assert change is not None and change.revoked == (a1.node_id,)
    assert book.account_of(a1.node_id) == a1.node_id  # no longer a live device of it


def test_a_replayed_list_that_re_adds_a_revoked_device_is_refused() -> None:
    viewer, a1, a2, a3 = (Identity.generate() for _ in range(4))
    book = AccountBook(viewer)
    book.know(a1.public)
    v2 = DeviceList.genesis(a1, "laptop").successor(a1, add=[entry(a2), entry(a3)])
    v3 = v2.successor(a1, revoke=[a3.node_id])
    assert book.offer(v3, a1.public, 0) is not None
    with pytest.raises(DeviceListError) as exc:
        book.offer(v2, a1.public, 0)
    assert exc.value.reason is DeviceListReason.REVOKED_READDED
    assert book.held(a1.node_id) == v3
    assert book.account_of(a3.node_id) == a3.node_id


def test_a_stranger_cannot_claim_to_be_a_contacts_device() -> None:
    viewer, a1, mallory = (Identity.generate() for _ in range(3))
    book = AccountBook(viewer)
    book.know(a1.public)
    claim = DeviceList._signed(mallory, a1.node_id, 2, [entry(a1), entry(mallory)], [], bytes(16))
    with pytest.raises(DeviceListError) as exc:
        book.offer(claim, mallory.public, 0)
    assert exc.value.reason is DeviceListReason.SIGNER_NOT_ON_LIST
    assert book.account_of(mallory.node_id) == mallory.node_id
    # nor pull a contact's device into the stranger's own account
    pull = DeviceList.genesis(mallory, "m").successor(mallory, add=[entry(a1)])
    with pytest.raises(DeviceListError) as exc:
        book.offer(pull, mallory.public, 0)
    assert exc.value.reason is DeviceListReason.FOREIGN_DEVICE
    assert book.account_of(a1.node_id) == a1.node_id


def test_first_contact_with_an_unknown_account_is_trust_on_first_use() -> None:
    viewer, b1, b2 = (Identity.generate() for _ in range(3))
    book = AccountBook(viewer)
    v2 = DeviceList.genesis(b1, "x").successor(b1, add=[entry(b2)])
    change = book.offer(v2, b2.public, 0)
    assert change is not None and not change.signer_was_trusted
    assert change.old_version == 0


def test_own_concurrent_lists_merge_and_the_removal_wins() -> None:
    a1, a2, a3, a4 = (Identity.generate() for _ in range(4))
    v2 = DeviceList.genesis(a1, "a1").successor(a1, add=[entry(a2), entry(a3)])
    book = AccountBook(a1, v2)
    mine = book.revoke(a3.node_id, a1)  # here: a3 revoked
    theirs = v2.successor(a2, add=[entry(a4)])  # at once on a2: a4 added, a3 still listed
    with pytest.raises(DeviceListError):
        book.offer(theirs, a2.public, 0)  # it would bring a3 back
    # a2 takes mine (more revoked wins) and merges its own concurrent change back in
    book2 = AccountBook(a2, theirs)
    change = book2.offer(mine, a1.public, 0)
    assert change is not None and change.revoked == (a3.node_id,)
    merged = book2.own
    assert set(merged.node_ids) == {a1.node_id, a2.node_id, a4.node_id}
    assert merged.signer == a2.public.sign_public
    change = book.offer(merged, a2.public, 0)
    assert change is not None and change.added == (a4.public,)
    assert a3.node_id in book.own.revoked
    assert book.own == merged


def test_own_book_merges_a_concurrent_fork_it_loses() -> None:
    a1, a2, a3, a4 = (Identity.generate() for _ in range(4))
    v2 = DeviceList.genesis(a1, "a1").successor(a1, add=[entry(a2)])
    book = AccountBook(a1, v2)
    mine = book.add_device(entry(a3), a1)
    theirs = v2.successor(a2, add=[entry(a4)])
    change = book.offer(theirs, a2.public, 0)
    assert change is not None  # whichever fork wins the tie, a merge was signed here
    assert set(book.own.node_ids) == {a1.node_id, a2.node_id, a3.node_id, a4.node_id}
    assert book.own.signer == a1.public.sign_public and book.own.version == 4
    assert mine.version == 3


def test_load_takes_stored_lists_and_reports_bad_ones() -> None:
    me, a1 = Identity.generate(), Identity.generate()
    book = AccountBook(me)
    other = DeviceList.genesis(a1, "x")
    stored = book.own.successor(me, revoke=[], add=[entry(Identity.generate())])
    book.take_updates()
    bad = book.load(
        {a1.node_id: other.encode(), b"\x01" * 16: b"junk", me.node_id: stored.encode()}
    )
    assert bad == [b"\x01" * 16]
    assert book.held(a1.node_id) == other and book.own == stored
    assert book.take_updates() == []


def test_a_new_device_adopts_an_account_and_its_lists_follow() -> None:
    a1, a2, viewer = (Identity.generate() for _ in range(3))
    founder = AccountBook(a1)
    joined = founder.add_device(entry(a2), a1)
    book = AccountBook(a2)
    book.take_updates()
    change = book.adopt(joined, a1.public)
    assert book.account_id == a1.node_id and change.added == (a1.public,)
    assert book.own_devices() == (a1.public,) and book.is_own_device(a1.node_id)
    # a list that does not name this device cannot be adopted
    with pytest.raises(DeviceListError):
        AccountBook(viewer).adopt(joined, a1.public)
    # the founder revokes it: the new device takes the list that drops it
    revoked = founder.revoke(a2.node_id, a1)
    change2 = book.offer(revoked, a1.public, 0)
    assert change2 is not None and change2.revoked == (a2.node_id,)


def test_a_contact_device_may_say_itself_that_it_is_on_another_account() -> None:
    viewer, a1, a2 = (Identity.generate() for _ in range(3))
    book = AccountBook(viewer)
    book.know(a2.public)  # added as a contact on its own before it was linked
    listed = DeviceList.genesis(a1, "a1").successor(a1, add=[entry(a2)])
    # from a1 (not the known device): refused, a2 is held as its own account
    with pytest.raises(DeviceListError) as exc:
        book.offer(listed, a1.public, 0)
    assert exc.value.reason is DeviceListReason.FOREIGN_DEVICE
    # delivered by a2 itself: taken
    change = book.offer(listed, a2.public, 0)
    assert change is not None and book.account_of(a2.node_id) == a1.node_id
