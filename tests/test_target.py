"""Where a message goes: the resolver the node and the offline command line share."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from meshchat.crypto.channel import ChannelKey
from meshchat.engine import dm_conversation
from meshchat.errors import NoSuchContact, UsageError
from meshchat.events import PeerAnnounced
from meshchat.identity import Identity
from meshchat.store import Store
from meshchat.store.records import Channel, Contact, Trust
from meshchat.target import (
    TargetKind,
    announced_target,
    conversation_of,
    find_announced,
    find_group,
    resolve_target,
)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store.open(tmp_path / "s.db", key=os.urandom(32))
    key = ChannelKey.public("#mesh")
    store.join_channel(Channel(key.name, key.channel_id, None, 0))
    yield store
    store.close()


def add(store: Store, name: str, trust: Trust = Trust.UNVERIFIED) -> Contact:
    who = Identity.generate().public
    contact = Contact(who.node_id, who.sign_public, who.box_public, name, trust, 0)
    store.add_contact(contact)
    return contact


def test_a_contact_by_name_or_id_prefix(store: Store) -> None:
    bob = add(store, "bob")
    for query in ("bob", "BOB", bob.node_id.hex()[:8]):
        target = resolve_target(query, store, ())
        assert target.kind is TargetKind.DIRECT
        assert target.conversation == dm_conversation(bob.node_id)
        assert target.destination == bob.node_id and target.contact == bob
    assert conversation_of("bob", store, ()) == dm_conversation(bob.node_id)


def test_a_channel_must_be_joined(store: Store) -> None:
    target = resolve_target("#MESH", store, ())
    assert target.kind is TargetKind.CHANNEL and target.conversation == "#mesh"
    with pytest.raises(UsageError, match="join it first"):
        resolve_target("#elsewhere", store, ())


def test_nothing_goes_to_compromised_keys(store: Store) -> None:
    add(store, "eve", Trust.COMPROMISED)
    with pytest.raises(UsageError, match="compromised: nothing is sent"):
        resolve_target("eve", store, ())


def test_unknown_names_and_groups_are_usage_errors(store: Store) -> None:
    with pytest.raises(UsageError):
        resolve_target("nobody", store, ())
    with pytest.raises(UsageError, match="no group"):
        resolve_target("+crew", store, ())
    with pytest.raises(UsageError, match="no group"):
        find_group([], "grp:")


# -- announced peers -------------------------------------------------------------------------


def announce(name: str) -> PeerAnnounced:
    return PeerAnnounced(Identity.generate().public, name, 1)


def test_an_announced_name_resolves_to_its_one_key() -> None:
    alice, bob = announce("alice"), announce("bob")
    assert find_announced([alice, bob], "ALICE ") is alice
    target = announced_target(alice)
    assert target.kind is TargetKind.DIRECT and target.peer == alice.identity
    assert target.conversation == dm_conversation(alice.identity.node_id)
    with pytest.raises(NoSuchContact):
        find_announced([alice, bob], "carol")


def test_a_name_that_looks_like_an_id_never_beats_that_id() -> None:
    real = announce("alice")
    prefix = real.identity.node_id.hex()[:8]
    spoof = announce(prefix)  # announces the real peer's id prefix as its name
    with pytest.raises(UsageError) as caught:
        find_announced([real, spoof], prefix)
    assert "2 peers announced" in str(caught.value)
    # the whole node id names the key, whatever anyone announced
    full = real.identity.node_id.hex()
    assert find_announced([real, spoof, announce(full)], full) is real


def test_candidates_are_listed_with_ids_and_their_names_escaped() -> None:
    hostile = announce("x\x1b[2J\u202ey")
    prefix = hostile.identity.node_id.hex()[:8]
    other = announce(prefix)
    with pytest.raises(UsageError) as caught:
        find_announced([hostile, other], prefix)
    text = str(caught.value)
    assert other.identity.node_id.hex()[:8] in text and prefix in text
    assert "\x1b" not in text and "\u202e" not in text
    assert "~x\\x1b[2J\\u202ey" in text
