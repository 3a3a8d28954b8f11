"""Naming a person with several devices: their devices' rows share the account's name, and
the name means the account (its founding device's row), whose conversation is the account's."""

from __future__ import annotations

import pytest

from meshchat.errors import UsageError
from meshchat.identity import Identity
from meshchat.store._find import find_contact
from meshchat.store.records import Contact, Trust
from meshchat.target import dm_conversation


def _row(seed: int, name: str, account: bytes | None = None) -> Contact:
    me = Identity.from_seeds(bytes([seed]) * 32, bytes([seed + 1]) * 32).public
    return Contact(
        me.node_id, me.sign_public, me.box_public, name, Trust.UNVERIFIED, 0,
        account_id=account or b"",
    )  # fmt: skip


def test_a_name_shared_by_the_devices_of_one_account_means_the_account() -> None:
    founder = _row(1, "bob")
    second = _row(3, "bob", founder.node_id)
    for rows in ([founder, second], [second, founder]):
        assert find_contact(rows, "bob") == founder
    assert dm_conversation(second.account_id) == dm_conversation(founder.node_id)


def test_two_people_of_one_name_are_still_ambiguous() -> None:
    with pytest.raises(UsageError):
        find_contact([_row(1, "bob"), _row(5, "bob")], "bob")
