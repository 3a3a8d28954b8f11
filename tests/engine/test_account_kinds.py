"""Account control blob kinds: one handler per kind, every kind from the one table."""

from __future__ import annotations

import pytest

from meshchat.account import carbon, groupsync, link
from meshchat.account import wire as account_wire
from meshchat.account.kinds import BLOB_KINDS
from meshchat.engine import Engine
from meshchat.engine._account import OWN_ONLY_KINDS
from meshchat.errors import UsageError
from meshchat.identity import Identity, PublicIdentity
from meshchat.sync import wire as sync_wire
from meshchat.talk import wire as talk_wire


def _other(sender: PublicIdentity, blob: bytes, now_ms: int) -> list[object]:
    return []


def test_a_kind_taken_by_another_handler_is_an_error() -> None:
    engine = Engine(Identity.generate(), "a")
    glue = engine.account_glue
    held = glue.registered()[19]
    with pytest.raises(UsageError, match="kind 19"):
        glue.register(19, _other, own_devices_only=True)  # type: ignore[arg-type]
    assert glue.registered()[19] == held  # the first handler keeps it


def test_the_same_handler_again_changes_nothing() -> None:
    engine = Engine(Identity.generate(), "a")
    glue = engine.account_glue
    before = glue.registered()
    glue.register(19, before[19], own_devices_only=True)
    glue.register(19, before[19])
    assert glue.registered() == before


def test_a_kind_missing_from_the_table_is_an_error() -> None:
    glue = Engine(Identity.generate(), "a").account_glue
    for kind in (15, 29, 41, 255, 256):
        with pytest.raises(UsageError, match="BLOB_KINDS"):
            glue.register(kind, _other)  # type: ignore[arg-type]
    assert not {15, 29, 41, 255, 256} & set(glue.registered())


def test_who_may_send_a_kind_is_the_tables() -> None:
    glue = Engine(Identity.generate(), "a").account_glue
    with pytest.raises(UsageError, match="own devices only"):
        glue.register(19, glue.registered()[19], own_devices_only=False)
    with pytest.raises(UsageError, match="any device"):
        glue.register(21, glue.registered()[21], own_devices_only=True)


def test_an_engine_takes_every_kind_of_the_table_but_talk() -> None:
    glue = Engine(Identity.generate(), "a").account_glue
    assert set(glue.registered()) == set(BLOB_KINDS) - {talk_wire.KIND_TALK}


def test_the_table_names_every_kind_constant_once() -> None:
    constants = {
        account_wire.KIND_LIST_SHARE: "list-share",
        account_wire.KIND_LIST_REQUEST: "list-request",
        carbon.KIND_CARBON: "carbon",
        sync_wire.KIND_SYNC: "sync",
        sync_wire.KIND_ERASED: "erased",
        link.KIND_REQUEST: "link-request",
        link.KIND_ACCEPT: "link-accept",
        link.KIND_REFUSE: "link-refuse",
        link.KIND_NONCE: "link-nonce",
        link.KIND_REVEAL: "link-reveal",
        groupsync.KIND_GROUP_HELD: "group-held",
        groupsync.KIND_GROUP_JOIN: "group-join",
        groupsync.KIND_GROUP_LEFT: "group-left",
        talk_wire.KIND_TALK: "talk-offer",
    }
    assert {k: row.name for k, row in BLOB_KINDS.items()} == constants
    assert all(account_wire.ACCOUNT_KINDS_FROM <= k <= 255 for k in BLOB_KINDS)
    assert all(row.kind == k for k, row in BLOB_KINDS.items())
    assert {18, 19, 20, 26, 28} == OWN_ONLY_KINDS
