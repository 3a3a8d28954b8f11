"""Accounts at the node: device lists made real in the store, and revoking a device.

When an account's list changes (:class:`~meshchat.events.DeviceListChanged`), one write on the
store's thread (:func:`apply_devices`, in the same commit as the list itself) makes the
contact rows follow it:

* every device of the list gets a row, if the user has the account as a contact (or it is the
  user's own account): the account's trust (that of the row of the device that signed the
  list, else unverified; ``OWN`` for the user's own devices), its name the account's (an own
  device's, the name the list gives it); a known device that the list names moves to the
  account;
* a revoked device's row and its stored session are deleted (the engine already forgot it).

The notice that follows (:class:`DevicesNotice`) is **loud** when the change was not signed
by a device the viewer already held on the account's list, or when the signer's row is not
trusted (verified, or one of the user's own devices): a device added to an unverified
contact's account, or by a stranger, is worth a look.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from meshchat.account.devicelist import DeviceList
from meshchat.errors import UsageError
from meshchat.events import DeviceListChanged
from meshchat.identity import PublicIdentity
from meshchat.node._types import SESSION_STATE, DevicesNotice, NodeNotice
from meshchat.store import Store
from meshchat.store.records import Contact, Trust

if TYPE_CHECKING:
    from meshchat.node import Node

__all__ = ["ApplyDevices", "NodeDevices", "apply_devices", "find_own_device"]

#: fewest hex digits of a node id that name a device
MIN_PREFIX = 4


@dataclass(frozen=True, slots=True)
class ApplyDevices:
    """A write: make the contact rows follow a changed list (see the module docstring)."""

    event: DeviceListChanged
    #: this node's account and keys, when the change came
    own_account: bytes
    me: PublicIdentity
    now: int


def apply_devices(store: Store, write: ApplyDevices) -> DevicesNotice | None:
    """Carry out ``write`` on the store's thread; returns the notice for the faces (None
    when no device came or went)."""
    change, me = write.event.change, write.me.node_id
    new = change.new
    account = change.account_id
    own = account == write.own_account
    rows = {c.node_id: c for c in store.contacts_of_account(account)}
    for node_id in (*new.node_ids, *change.revoked):
        found = store.get_contact(node_id) if node_id not in rows else None
        if found is not None:
            rows[node_id] = found
    signer = next((c for c in rows.values() if c.sign_public == new.signer), None)
    named = rows.get(account) or signer or next(iter(rows.values()), None)
    trust: Trust | None = Trust.OWN if own else None
    if not own and signer is not None:
        trust = signer.trust
    elif not own and rows:  # a contact's account, signed by a device not (yet) a row here
        compromised = any(c.trust is Trust.COMPROMISED for c in rows.values())
        trust = Trust.COMPROMISED if compromised else Trust.UNVERIFIED
    for entry in new.devices:
        node_id = entry.node_id
        if node_id == me:
            continue
        row = rows.get(node_id)
        if row is not None:
            if row.account_id != account or (own and row.trust is not Trust.OWN):
                moved = replace(row, account_id=account, trust=Trust.OWN if own else row.trust)
                store.put_device_contact(moved)
            continue
        if trust is None:
            continue  # not the user's contact: nothing to keep
        name = entry.name if own or named is None else named.name
        identity = entry.identity
        store.put_device_contact(
            Contact(
                node_id,
                identity.sign_public,
                identity.box_public,
                name or identity.short_id,
                trust,
                write.now,
                account_id=account,
            )
        )
    for node_id in change.revoked:
        if node_id != me:
            store.remove_contact(node_id)
            store.delete_state(SESSION_STATE, node_id)
    added = tuple(d.node_id for d in change.added if d.node_id != me)
    if not added and not change.revoked:
        return None
    by_me = own and new.signer == write.me.sign_public
    trusted = by_me or (signer is not None and signer.trust in (Trust.VERIFIED, Trust.OWN))
    loud = write.event.loud or not trusted
    return DevicesNotice(
        account,
        "" if own or named is None else named.name,
        own,
        added,
        change.revoked,
        loud,
        me in change.revoked,
    )


def find_own_device(own: DeviceList, me: bytes, query: str) -> bytes:
    """The node id of the one other device of ``own`` that ``query`` names: its name (any
    case) or at least :data:`MIN_PREFIX` hex digits of its node id. Raises
    :class:`UsageError`."""
    text = query.strip()
    lowered = text.lower()
    by_name = [d.node_id for d in own.devices if d.name.casefold() == text.casefold()]
    by_id = []
    if len(lowered) >= MIN_PREFIX and all(c in "0123456789abcdef" for c in lowered):
        by_id = [d.node_id for d in own.devices if d.node_id.hex().startswith(lowered)]
    found = by_name or by_id
    if not found:
        raise UsageError(f"no device of this account is called {query!r} (see: device list)")
    if len(set(found)) > 1:
        raise UsageError(f"{query!r} names more than one device: give more of its id")
    if found[0] == me:
        raise UsageError("that is this device: revoke it from another device of the account")
    return found[0]


class NodeDevices:
    """Revoking a device, for one node."""

    def __init__(self, node: Node) -> None:
        self.node = node

    async def revoke(self, query: str) -> DeviceList:
        """Take the other device of this account that ``query`` names (its name or node id
        prefix) off the list for good, on the node's worker: contacts and own devices are
        sent the new list; groups this node administers re-key without it. Returns the new
        list; raises :class:`UsageError`."""
        return await self.node.submit(self._revoke, query)

    async def _revoke(self, query: str) -> DeviceList:
        node = self.node
        own = node.engine.accounts.own
        node_id = find_own_device(own, node.identity.node_id, query)
        await node.effects.run(node.engine.revoke_device(node_id, node.clock()))
        node.notify(NodeNotice("group"))
        return node.engine.accounts.own
