"""The device lists a node holds: its own account's and its contacts' (pure, no I/O).

Theory of operation. The book holds one :class:`DeviceList` per account: this node's own
(``own``) and every list a peer sent that passed :func:`check_first` or
:func:`check_successor`. For a contact device of which no list ever came, the book holds its
implicit list (version 0, the device alone) as long as the node told it of the device
(:meth:`AccountBook.know`), so only that device can sign its account's first list: a stranger
cannot claim to be another device of a contact. A list that claims a device the book holds on
another account (another list, or a known device that is its own account) is refused: a device
is on one account, and no signer can pull a contact's device into its own account.

Every live device maps to its account (:meth:`account_of`); a device the book does not know is
its own account. Lists that changed come out of :meth:`take_updates` as ``(account_id, blob)``
pairs, for the owner to store before anything that depends on them leaves, like the group book.
"""

from __future__ import annotations

from dataclasses import dataclass

from meshchat.account.devicelist import (
    DeviceEntry,
    DeviceList,
    Verdict,
    check_first,
    check_successor,
)
from meshchat.errors import DeviceListError, DeviceListReason, MeshchatError
from meshchat.identity import Identity, PublicIdentity

__all__ = ["AccountBook", "ListChange"]


@dataclass(frozen=True, slots=True)
class ListChange:
    """An account's list was replaced: what the viewer must act on."""

    account_id: bytes
    #: the version held before (0: implicit or nothing)
    old_version: int
    new: DeviceList
    #: devices on the new list that were not on the old one
    added: tuple[PublicIdentity, ...]
    #: node ids that were on the old list and are not on the new one (revoked or dropped)
    revoked: tuple[bytes, ...]
    #: the signer was a device on the list the viewer held for the account (False: the first
    #: list of an account the viewer knew nothing of, trust on first use)
    signer_was_trusted: bool


class AccountBook:
    """This node's account and the accounts of the devices it knows."""

    def __init__(self, me: Identity, own: DeviceList | None = None, device_name: str = "") -> None:
        self._me = me
        self._own = own if own is not None else DeviceList.genesis(me, device_name)
        self._lists: dict[bytes, DeviceList] = {}
        self._singles: dict[bytes, PublicIdentity] = {}
        self._account: dict[bytes, bytes] = {}
        self._updates: dict[bytes, bytes] = {}
        if own is None:
            self._updates[self._own.account_id] = self._own.encode()
        self._index()

    # -- state ---------------------------------------------------------------------------

    @property
    def own(self) -> DeviceList:
        return self._own

    @property
    def account_id(self) -> bytes:
        return self._own.account_id

    def load(self, blobs: dict[bytes, bytes]) -> list[bytes]:
        """Take stored lists (account id -> encoded list); returns the keys that could not
        be read (left out). The own account's stored list replaces the one given at
        construction."""
        bad = []
        for account_id, blob in blobs.items():
            try:
                held = DeviceList.decode(blob)
            except MeshchatError:
                bad.append(account_id)
                continue
            if held.account_id != account_id or not held.signature_valid():
                bad.append(account_id)
                continue
            if account_id == self._own.account_id:
                self._own = held
            else:
                self._lists[account_id] = held
        if self._own.account_id in blobs:
            self._updates.pop(self._own.account_id, None)
        me = self._me.node_id
        if len(self._own.devices) == 1:
            # this device was linked to another account (see adopt): the newest stored list
            # that lists it is its own
            joined = [held for held in self._lists.values() if me in held.node_ids]
            if joined:
                self._own = max(joined, key=lambda held: held.version)
                del self._lists[self._own.account_id]
        self._index()
        return bad

    def take_updates(self) -> list[tuple[bytes, bytes]]:
        """Lists changed since the last call, ``(account_id, encoded list)``, to store."""
        out = list(self._updates.items())
        self._updates.clear()
        return out

    def _index(self) -> None:
        self._account = {}
        for held in (*self._lists.values(), self._own):
            for node_id in held.node_ids:
                self._account[node_id] = held.account_id

    def know(self, device: PublicIdentity) -> None:
        """A contact device: until a list comes for it, it is an account of its own that only
        it can sign the first list of."""
        self._singles[device.node_id] = device

    def card_says(self, device: PublicIdentity, account_id: bytes) -> bool:
        """The user added a card of ``device`` saying it is on ``account_id``. A list held
        for that account that neither lists nor revoked the device was taken on first use
        from someone else: the card overrides it (it is dropped, so the device's own list is
        taken when it comes). Returns whether a list was dropped."""
        held = self._lists.get(account_id)
        node_id = device.node_id
        if held is None or node_id in held.node_ids or node_id in held.revoked:
            return False
        del self._lists[account_id]
        self._index()
        return True

    def forget(self, node_id: bytes) -> None:
        """The contact device is gone (deleted by the user); a held list of an account it
        founded is dropped too."""
        self._singles.pop(node_id, None)
        if self._lists.pop(node_id, None) is not None:
            self._index()

    # -- reading -------------------------------------------------------------------------

    def account_of(self, node_id: bytes) -> bytes:
        """The account of a live device (a device on no held list is its own account)."""
        return self._account.get(node_id, node_id)

    def held(self, account_id: bytes) -> DeviceList | None:
        """The list held for an account: a received one, the implicit list of a known device
        that is its own account, or None."""
        if account_id == self._own.account_id:
            return self._own
        found = self._lists.get(account_id)
        if found is not None:
            return found
        single = self._singles.get(account_id)
        if single is not None and self._account.get(account_id, account_id) == account_id:
            return DeviceList.implicit(single)
        return None

    def devices_of(self, account_id: bytes) -> tuple[PublicIdentity, ...]:
        """The live devices of an account (mine included when it is my account)."""
        held = self.held(account_id)
        return () if held is None else tuple(d.identity for d in held.devices)

    def own_devices(self) -> tuple[PublicIdentity, ...]:
        """My account's devices other than this one."""
        me = self._me.node_id
        return tuple(d.identity for d in self._own.devices if d.node_id != me)

    def is_own_device(self, node_id: bytes) -> bool:
        return node_id != self._me.node_id and node_id in self._own.node_ids

    def accounts(self) -> tuple[bytes, ...]:
        """Accounts of which a signed list is held (not the own one)."""
        return tuple(self._lists)

    # -- changing ------------------------------------------------------------------------

    def offer(
        self, new: DeviceList, delivered_by: PublicIdentity | None, now_ms: int
    ) -> ListChange | None:
        """Consider a list a peer sent (``delivered_by``: the session peer or announcing
        device). Returns what changed, or None when it does not replace the held list.
        For the own account a concurrent list is merged (a new own list, signed here).
        Raises :class:`DeviceListError` for a list that may never be accepted."""
        del now_ms  # kept for the interface: lists carry no time
        held = self.held(new.account_id)
        if held is None:
            check_first(new, delivered_by)
            verdict = Verdict.NEWER
        else:
            verdict = check_successor(held, new)
        self._check_foreign(new, delivered_by)
        own = new.account_id == self._own.account_id
        if verdict is Verdict.SAME:
            return None
        if own:
            merged = self._merge_own(new, verdict)
            if merged is None:
                return None
            new = merged
        elif verdict is Verdict.OLDER_OR_CONCURRENT:
            return None
        return self._replace(held, new, signer_was_trusted=held is not None)

    def _merge_own(self, new: DeviceList, verdict: Verdict) -> DeviceList | None:
        """The list to hold after ``new`` of my own account came: ``new`` itself, or a merge
        signed here when either side has a device the other neither lists nor revoked (a
        concurrent change); None when nothing changes."""
        me = self._me.node_id
        if verdict is Verdict.NEWER:
            base, other = new, self._own
        else:
            base, other = self._own, new
        extra = set(other.node_ids) - set(base.node_ids) - set(base.revoked) - set(other.revoked)
        if not extra or me not in base.node_ids:
            return new if verdict is Verdict.NEWER else None
        return base.merged(other, self._me)

    def _check_foreign(self, new: DeviceList, delivered_by: PublicIdentity | None) -> None:
        for entry in new.devices:
            node_id = entry.node_id
            account = self._account.get(node_id)
            if account is None and node_id in self._singles:
                if delivered_by is not None and delivered_by.node_id == node_id:
                    continue  # a known device itself says it is on this account
                account = node_id
            if account is not None and account != new.account_id:
                raise DeviceListError(
                    DeviceListReason.FOREIGN_DEVICE,
                    f"lists device {node_id.hex()[:8]}, which is on another account",
                )

    def _replace(
        self, held: DeviceList | None, new: DeviceList, *, signer_was_trusted: bool
    ) -> ListChange:
        before = {} if held is None else {d.node_id: d.identity for d in held.devices}
        if new.account_id == self._own.account_id:
            self._own = new
        else:
            self._lists[new.account_id] = new
        self._updates[new.account_id] = new.encode()
        self._index()
        added = tuple(d.identity for d in new.devices if d.node_id not in before)
        gone = tuple(sorted(k for k in before if k not in new.node_ids))
        return ListChange(
            new.account_id,
            0 if held is None else held.version,
            new,
            added,
            gone,
            signer_was_trusted,
        )

    def adopt(self, new: DeviceList, delivered_by: PublicIdentity) -> ListChange:
        """This device was linked to another account: ``new`` (signed by ``delivered_by``,
        the device that linked it, and listing this device) becomes the own list. Only a
        device alone on its own account may move; raises :class:`DeviceListError`. The
        change counts as signed by a trusted device: the person compared the confirmation
        strings before it came."""
        check_first(new, delivered_by)
        if self._me.node_id not in new.node_ids:
            raise DeviceListError(DeviceListReason.UNKNOWN_DEVICE, "the list does not list me")
        if len(self._own.devices) > 1 and new.account_id != self._own.account_id:
            raise DeviceListError(
                DeviceListReason.FOREIGN_DEVICE, "this device is on an account with others"
            )
        held = self._lists.pop(new.account_id, None)
        if held is not None:
            check_successor(held, new)
        self._own = new
        self._updates[new.account_id] = new.encode()
        self._index()
        me = self._me.node_id
        added = tuple(d.identity for d in new.devices if d.node_id != me)
        return ListChange(new.account_id, 0 if held is None else held.version, new, added, (), True)

    def revoke(self, node_id: bytes, me: Identity) -> DeviceList:
        """Take a device off my account for good; returns the new own list (to share)."""
        new = self._own.successor(me, revoke=[node_id])
        self._replace(self._own, new, signer_was_trusted=True)
        return new

    def add_device(self, entry: DeviceEntry, me: Identity) -> DeviceList:
        """Put a device on my account (after linking); returns the new own list."""
        self._check_foreign_entry(entry)
        new = self._own.successor(me, add=[entry])
        self._replace(self._own, new, signer_was_trusted=True)
        return new

    def _check_foreign_entry(self, entry: DeviceEntry) -> None:
        account = self._account.get(entry.node_id)
        if account is not None and account != self._own.account_id:
            raise DeviceListError(
                DeviceListReason.FOREIGN_DEVICE, "that device is on another account"
            )

    def rename(self, name: str, me: Identity) -> DeviceList:
        """Give this device another name on my list; returns the new own list."""
        new = self._own.successor(me, add=[DeviceEntry.of(me.public, name)])
        self._replace(self._own, new, signer_was_trusted=True)
        return new
