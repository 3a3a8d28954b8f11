"""A contact as the control socket shows it keeps its account (faces talking to a running node
group a person's devices by it)."""

from __future__ import annotations

from meshchat.control import contact_from_json, contact_json
from meshchat.identity import Identity
from meshchat.store.records import Contact, Trust


def test_a_contact_round_trips_with_its_account() -> None:
    device, me = Identity.generate(), Identity.generate()
    p = device.public
    row = Contact(
        p.node_id, p.sign_public, p.box_public, "phone", Trust.OWN, 1, account_id=me.node_id
    )
    shown = contact_json(row, me.public)
    assert shown["account_id"] == me.node_id.hex()
    assert contact_from_json(shown) == row
    del shown["account_id"]  # a node from before accounts: the device is its own account
    assert contact_from_json(shown).account_id == p.node_id
