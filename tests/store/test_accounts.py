"""Accounts in the store: device lists, contacts as devices of accounts, trust per account,
and homes from before accounts (schema 4 and 6 files) opening as one-device accounts."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from meshchat.account.devicelist import DeviceList
from meshchat.errors import UsageError
from meshchat.identity import Identity
from meshchat.store import Contact, Store, Trust
from meshchat.store.schema import MIGRATIONS, migrate

FIXTURES = Path(__file__).parent / "fixtures"
KEY4 = bytes.fromhex((FIXTURES / "v4_store.key").read_text().strip())
SUMMARY = json.loads((FIXTURES / "v4_store.json").read_text())


def contact_of(identity: Identity, name: str, trust: Trust = Trust.UNVERIFIED) -> Contact:
    p = identity.public
    return Contact(p.node_id, p.sign_public, p.box_public, name, trust, 1)


def version_of(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return int(row[0])


@pytest.mark.parametrize("start", [4, 6])
def test_an_old_home_opens_with_contacts_as_their_own_accounts(tmp_path: Path, start: int) -> None:
    path = tmp_path / "meshchat.db"
    shutil.copyfile(FIXTURES / "v4_store.db", path)
    if start == 6:
        with sqlite3.connect(path, isolation_level=None) as conn:
            assert migrate(conn, MIGRATIONS[:6]) == 6
    assert version_of(path) == start
    with Store.open(path, key=KEY4) as store:
        contacts = store.list_contacts()
        assert {c.name for c in contacts} == {"alice", "carol"}
        for c in contacts:
            assert c.account_id == c.node_id
            assert store.contacts_of_account(c.node_id) == [c]
        assert store.device_lists() == {}
        first = DeviceList.genesis(Identity.generate(), "laptop")
        store.put_device_list(first.account_id, first.encode())
    assert version_of(path) == len(MIGRATIONS)
    with Store.open(path, key=KEY4) as store:
        assert store.device_lists() == {first.account_id: first.encode()}
        for conversation, expected in SUMMARY["conversations"].items():
            assert [m.msg_id.hex() for m in store.history(conversation)] == [e[0] for e in expected]


def test_device_lists_are_replaced_and_deleted(store: Store) -> None:
    me = Identity.generate()
    v1 = DeviceList.genesis(me, "laptop")
    v2 = v1.successor(me, add=[])
    store.put_device_list(me.node_id, v1.encode())
    store.put_device_list(me.node_id, v2.encode())
    assert store.device_lists() == {me.node_id: v2.encode()}
    assert store.delete_device_list(me.node_id)
    assert not store.delete_device_list(me.node_id)
    assert store.device_lists() == {}


def test_trust_is_per_account(store: Store) -> None:
    a1, a2, b1 = Identity.generate(), Identity.generate(), Identity.generate()
    store.add_contact(contact_of(a1, "alice"))
    store.add_contact(contact_of(b1, "bob"))
    added = store.put_device_contact(
        Contact(
            a2.node_id,
            a2.public.sign_public,
            a2.public.box_public,
            "alice",
            Trust.UNVERIFIED,
            2,
            account_id=a1.node_id,
        )
    )
    assert added.account_id == a1.node_id
    assert {c.node_id for c in store.contacts_of_account(a1.node_id)} == {a1.node_id, a2.node_id}
    store.set_trust(a2.node_id, Trust.VERIFIED)
    assert {c.trust for c in store.contacts_of_account(a1.node_id)} == {Trust.VERIFIED}
    assert store.get_contact(b1.node_id).trust is Trust.UNVERIFIED  # type: ignore[union-attr]
    changed = store.set_account_trust(a1.node_id, Trust.COMPROMISED)
    assert {c.trust for c in changed} == {Trust.COMPROMISED}
    assert store.remove_contact(a2.node_id)
    assert [c.node_id for c in store.contacts_of_account(a1.node_id)] == [a1.node_id]
    with pytest.raises(UsageError):
        store.set_account_trust(a2.node_id, Trust.VERIFIED)


def test_own_devices_are_not_verified_by_hand(store: Store) -> None:
    me2 = Identity.generate()
    store.put_device_contact(contact_of(me2, "phone", Trust.OWN))
    with pytest.raises(UsageError):
        store.set_trust(me2.node_id, Trust.VERIFIED)
    assert store.get_contact(me2.node_id).trust is Trust.OWN  # type: ignore[union-attr]
