"""Fan-out: which devices a direct message goes to, and what the engine asks of accounts.

Theory of operation. A contact is an *account*: a signed list of devices, each with its own
keys (:mod:`meshchat.account`). A direct message to a contact is queued once per live device
of the contact's account (:meth:`~meshchat.engine.Engine.send_direct`), every copy with the
same message id and body (text, sent time, parents), each sealed in that device pair's own
forward-secret session and retried, resent and expired on its own
(:class:`~meshchat.router.outbox.Outbox` keys copies by message id and device). Every device of
the recipient stores the message under the one id; the sender reports it delivered once any
device acked and keeps trying the others, so each device gets its copy from the sender (or,
once the recipient's devices sync, from each other).

What the engine needs of the account book (:class:`~meshchat.account.book.AccountBook`) is
:class:`Directory`: a device's account, an account's live devices, and this account's other
devices. A contact of whom no list is held is an account of one device, so a home that never
linked a device behaves exactly as before fan-out: one copy, to the device named.
:class:`LoneDevices` answers that way for every device.
"""

from __future__ import annotations

from typing import Protocol

from meshchat.account.devicelist import DeviceList
from meshchat.identity import PublicIdentity

__all__ = ["Directory", "LoneDevices", "devices_for"]


class Directory(Protocol):
    """What fan-out asks of the account book (:class:`meshchat.account.book.AccountBook`)."""

    def account_of(self, node_id: bytes) -> bytes:
        """The account id of a device (the device's own node id if unknown)."""
        ...

    def devices_of(self, account_id: bytes) -> tuple[PublicIdentity, ...]:
        """The account's live devices (none known: empty)."""
        ...

    def own_devices(self) -> tuple[PublicIdentity, ...]:
        """This account's devices other than this one."""
        ...

    def held(self, account_id: bytes) -> DeviceList | None:
        """The list held for an account (None: nothing known)."""
        ...

    def accounts(self) -> tuple[bytes, ...]:
        """The accounts of which a signed list is held."""
        ...


class LoneDevices:
    """Every device its own account of one device (before any device list is known)."""

    def account_of(self, node_id: bytes) -> bytes:
        return node_id

    def devices_of(self, account_id: bytes) -> tuple[PublicIdentity, ...]:
        return ()

    def own_devices(self) -> tuple[PublicIdentity, ...]:
        return ()

    def held(self, account_id: bytes) -> DeviceList | None:
        return None

    def accounts(self) -> tuple[bytes, ...]:
        return ()


def devices_for(
    directory: Directory, recipient: PublicIdentity, me: bytes
) -> tuple[PublicIdentity, ...]:
    """The devices a direct message to ``recipient`` goes to: every live device of its
    account, or ``recipient`` alone when its account's list is unknown. A device no longer on
    a known list (revoked) gets nothing; this device never sends to itself."""
    account = directory.account_of(recipient.node_id)
    if account == recipient.node_id:
        # A device on no list as a live device may be on one as revoked: its account's live
        # devices get the message, never the revoked device.
        for other in directory.accounts():
            held = directory.held(other)
            if held is not None and recipient.node_id in held.revoked:
                account = other
                break
    live = directory.devices_of(account)
    if not live:
        return (recipient,) if recipient.node_id != me else ()
    return tuple(d for d in live if d.node_id != me)
