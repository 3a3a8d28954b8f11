"""The engine's account glue: device lists joined to sessions, the outbox and announces.

:class:`AccountGlue` belongs to one :class:`~meshchat.engine.Engine` and holds its
:class:`~meshchat.account.book.AccountBook`. It

* takes every whole control blob whose kind is 16 or more (the group book hands them over,
  :mod:`meshchat.account.wire`) and passes it to the one handler registered for its kind
  (:meth:`AccountGlue.register`; the kinds, and which are taken only from one of this node's
  own devices, are the table :data:`meshchat.account.kinds.BLOB_KINDS`; a kind missing from
  it, or registered twice by different handlers, is a :class:`UsageError` at start-up); each
  handler checks its sender;
* sends account blobs (:meth:`send`): cut into parts, sealed to the device, retried until
  acked, kept across restarts with the group book's parts in flight;
* handles DeviceListShare (16) and DeviceListRequest (17): a list that replaces the one held
  changes the engine's peers (devices added to a contact's or this account are known as
  peers, revoked ones are dropped: their sessions erased, nothing more sealed to them), comes
  out as :class:`DeviceListUpdated` (to store) and :class:`DeviceListChanged` (a notice);
* shares this account's list with every contact device and own device whenever it changes,
  and with a contact when it is added (only a list of more than the founding device alone:
  a viewer's implicit list of a one-device account says the same);
* asks for a newer list when an announce says there is one (once a minute per account).

Strangers: a list of an account the node holds nothing for is taken only from a contact (or
group member) device; a request is answered at most once a minute per asking device.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from meshchat.account.book import AccountBook, ListChange
from meshchat.account.devicelist import DeviceEntry, DeviceList
from meshchat.account.kinds import BLOB_KINDS
from meshchat.account.wire import (
    KIND_LIST_REQUEST,
    KIND_LIST_SHARE,
    AccountItem,
    DeviceListRequest,
    DeviceListShare,
    blob_kind,
    decode_request,
    decode_share,
)
from meshchat.errors import (
    DeviceListError,
    DeviceListReason,
    MeshchatError,
    PacketError,
    UsageError,
)
from meshchat.events import DeviceListChanged, MessageExpired, MessageRejected
from meshchat.group.control import PartRefused
from meshchat.identity import PublicIdentity, SignedPrekey

if TYPE_CHECKING:
    from meshchat.engine import Engine, Output

__all__ = [
    "ALL_ACCOUNTS",
    "HOLDS_MARGIN_MS",
    "OWN_ONLY_KINDS",
    "REQUEST_EVERY_MS",
    "AccountGlue",
    "Handler",
]

#: (sender, whole blob, now_ms) -> outputs. Raise a :class:`MeshchatError` to refuse the blob
#: (it is acked all the same: sending it again would not help), or
#: :class:`~meshchat.group.control.PartRefused` to leave it unacked (it comes again).
Handler = Callable[[PublicIdentity, bytes, int], "list[Output]"]
#: kinds taken only from this node's own devices (carbons, sync, erasures, groups held and left)
OWN_ONLY_KINDS = frozenset(k for k, row in BLOB_KINDS.items() if row.own_devices_only)
#: at most one DeviceListRequest per account, and one answer per asking device, this often
REQUEST_EVERY_MS = 60_000
_MAX_REMEMBERED = 1024
#: DeviceListRequest for this account id: "every list you hold" (asked of my own devices)
ALL_ACCOUNTS = bytes(16)
#: lists kept for later (made from a list not held yet), one per account
_MAX_LATER = 64
#: a message sent this soon after its sender acked my list may have been made before it knew
HOLDS_MARGIN_MS = 120_000


class AccountGlue:
    """Accounts inside one engine (see the module docstring)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._handlers: dict[int, Handler] = {}
        self._own_only: set[int] = set()
        self._asked: dict[bytes, int] = {}
        self._answered: dict[bytes, int] = {}
        self._notices: list[DeviceListChanged] = []
        #: lists that came before the list they were made from: account -> (list, sender)
        self._later: dict[bytes, tuple[DeviceList, PublicIdentity]] = {}
        #: devices known to hold my list: node id -> (version acked, when; memory only)
        self._told: dict[bytes, tuple[int, int]] = {}
        #: parts in flight of my list shared: part msg id -> (device, version, blob id)
        self._share_parts: dict[bytes, tuple[bytes, int, bytes]] = {}
        #: parts left of each share in flight: (device, version, blob id) -> count
        self._share_left: dict[tuple[bytes, int, bytes], int] = {}
        self.register(KIND_LIST_SHARE, self._on_share)
        self.register(KIND_LIST_REQUEST, self._on_request)

    # -- wiring --------------------------------------------------------------------------

    def register(
        self, kind: int, handler: Handler, *, own_devices_only: bool | None = None
    ) -> None:
        """Take blobs of ``kind`` with ``handler``. The kind must be in the table
        :data:`~meshchat.account.kinds.BLOB_KINDS`, and taken by one handler only: a second
        registration by another handler raises :class:`UsageError` (the same handler again
        changes nothing). ``own_devices_only`` (default: the table's) refuses blobs from any
        device not on this account's list; it must agree with the table."""
        row = BLOB_KINDS.get(kind)
        if row is None:
            known = ", ".join(str(k) for k in sorted(BLOB_KINDS))
            raise UsageError(
                f"account blob kind {kind} is not in meshchat.account.kinds.BLOB_KINDS ({known})"
            )
        only = row.own_devices_only if own_devices_only is None else own_devices_only
        if only != row.own_devices_only:
            whose = "own devices only" if row.own_devices_only else "any device"
            raise UsageError(f"account blob kind {kind} ({row.name}) is taken from {whose}")
        held = self._handlers.get(kind)
        if held is not None:
            if held == handler:
                return
            raise UsageError(
                f"account blob kind {kind} ({row.name}) is taken already by "
                f"{_name(held)}; {_name(handler)} may not take it too"
            )
        self._handlers[kind] = handler
        if only:
            self._own_only.add(kind)

    def registered(self) -> dict[int, Handler]:
        """The handler of each kind registered (a copy)."""
        return dict(self._handlers)

    @property
    def book(self) -> AccountBook:
        """The engine's account book."""
        return self.engine.accounts

    def take_notices(self) -> list[Output]:
        """Notices of lists that changed, since the last call (the lists themselves come
        out of the book's updates)."""
        out: list[Output] = list(self._notices)
        self._notices.clear()
        return out

    def announce_item(self) -> AccountItem | None:
        """What this node's announce says of its account: None for a lone founding device
        that never had another (its announce stays as small as ever). A founding device left
        alone by a revocation still says it, so that a contact who was away at the time sees
        a newer list and asks for it (and stops sealing to the revoked device)."""
        own = self.book.own
        lone = own.account_id == self.engine.identity.node_id and len(own.devices) == 1
        if lone and not own.revoked:
            return None
        return AccountItem.of(own)

    # -- receiving -----------------------------------------------------------------------

    def on_blob(
        self, sender: PublicIdentity, blob: bytes, now_ms: int, packet_id: bytes
    ) -> tuple[list[Output], bool]:
        """A whole account blob from ``sender`` (the session peer); returns the outputs and
        whether to ack its last part."""
        kind = blob_kind(blob)
        handler = self._handlers.get(kind) if kind is not None else None
        if kind is None or handler is None:
            return [MessageRejected(f"account control kind {kind}", packet_id, None)], True
        if kind in self._own_only and not self.book.is_own_device(sender.node_id):
            reason = f"account control kind {kind} from a device that is not one of mine"
            return [MessageRejected(reason, packet_id, None)], True
        try:
            out = handler(sender, blob, now_ms)
        except PartRefused as exc:
            return [*self.engine.flush(), MessageRejected(str(exc), packet_id, None)], False
        except MeshchatError as exc:
            reason = f"account control kind {kind}: {exc}"
            return [*self.engine.flush(), MessageRejected(reason, packet_id, None)], True
        return [*out, *self.engine.flush()], True

    def _on_share(self, sender: PublicIdentity, blob: bytes, now_ms: int) -> list[Output]:
        offered = decode_share(blob).device_list
        try:
            out = self.offer(offered, sender, now_ms)
        except DeviceListError as exc:
            held = self.book.held(offered.account_id)
            if (
                exc.reason is DeviceListReason.SIGNER_NOT_ON_LIST
                and held is not None
                and held.version > 0
                and offered.version > held.version + 1
                and offered.signature_valid()
            ):
                # made from a list not held here yet, which may be on its way: kept (one per
                # account, in memory) and offered again once a list of the account is taken
                self._later[offered.account_id] = (offered, sender)
                while len(self._later) > _MAX_LATER:
                    del self._later[next(iter(self._later))]
            raise
        later = self._later.pop(offered.account_id, None)
        if later is not None and out:
            with contextlib.suppress(DeviceListError):
                out.extend(self.offer(later[0], later[1], now_ms))
        return out

    def offer(
        self, offered: DeviceList, sender: PublicIdentity | None, now_ms: int
    ) -> list[Output]:
        """Consider a list (from a share, or a link accept); raises :class:`DeviceListError`
        for one that may not be taken."""
        known = sender is not None and self.engine.direct.knows(sender.node_id)
        if self.book.held(offered.account_id) is None and not known:
            raise DeviceListError(
                DeviceListReason.UNSOLICITED, "a stranger's list of an unknown account"
            )
        if sender is not None and self.book.is_own_device(sender.node_id):
            sender = None  # my own device passes on a list it holds: its word is mine
        change = self.book.offer(offered, sender, now_ms)
        return [] if change is None else self.apply(change, now_ms)

    def _on_request(self, sender: PublicIdentity, blob: bytes, now_ms: int) -> list[Output]:
        request = decode_request(blob)
        if request.account_id == ALL_ACCOUNTS:
            return self._share_held(sender, now_ms)
        own = self.book.own
        if request.account_id != own.account_id or own.version <= request.held_version:
            return []
        if not _due(self._answered, sender.node_id, now_ms):
            return []
        return self._send_own(sender, now_ms)

    def _share_held(self, device: PublicIdentity, now_ms: int) -> list[Output]:
        """Another device of mine (a new one) asked for every list held: its contacts'
        accounts come with the contacts history sync brings it."""
        if not self.book.is_own_device(device.node_id):
            return []
        if not _due(self._answered, device.node_id + ALL_ACCOUNTS, now_ms):
            return []
        out: list[Output] = []
        for account_id in self.book.accounts():
            held = self.book.held(account_id)
            if held is not None and held.version > 0:
                out.extend(self.send(device, DeviceListShare(held).encode(), now_ms))
        return out

    def on_announce(
        self,
        peer: PublicIdentity,
        item: AccountItem | None,
        prekey: SignedPrekey | None,
        now_ms: int,
    ) -> list[Output]:
        """An announce: ask ``peer`` for its account's list when it says there is a newer
        one than held. Only a device on the held list, or a contact device, is asked: an
        announce's claim makes no stranger a peer of this node."""
        if item is None:
            return []
        held = self.book.held(item.account_id)
        listed = held is not None and peer.node_id in held.node_ids
        if not listed and not self.engine.direct.knows(peer.node_id):
            return []
        version = 0 if held is None else held.version
        if held is not None and (
            item.version < held.version
            or item.digest == held.digest
            or (item.version == held.version and item.digest > held.digest)
        ):
            return []
        if not _due(self._asked, item.account_id, now_ms):
            return []
        if not self.engine.direct.can_seal(peer):
            self.engine.direct.add_peer(peer, prekey)  # a listed device: known from now on
        return self.send(peer, DeviceListRequest(item.account_id, version).encode(), now_ms)

    def ask(
        self, peer: PublicIdentity, account_id: bytes, version: int, now_ms: int
    ) -> list[Output]:
        """A card said ``peer`` is on ``account_id`` at list ``version``: ask it for the list
        when ours is older (once a minute per account). The card overrides a list of that
        account taken on first use that does not name the device."""
        self.book.card_says(peer, account_id)
        held = self.book.held(account_id)
        if held is not None and held.version >= version:
            return []
        if not _due(self._asked, account_id, now_ms):
            return []
        held_version = 0 if held is None else held.version
        return self.send(peer, DeviceListRequest(account_id, held_version).encode(), now_ms)

    # -- changes -------------------------------------------------------------------------

    def apply(self, change: ListChange, now_ms: int) -> list[Output]:
        """Make the engine's peers follow a list that changed, tell its owner, and share
        this account's list when it was the one that changed."""
        engine = self.engine
        me = engine.identity.node_id
        own = change.account_id == self.book.account_id
        related = own or any(
            n in engine.router.contacts
            for n in (*change.new.node_ids, *change.revoked, change.account_id)
        )
        out: list[Output] = []
        if related:
            for device in change.added:
                if device.node_id != me:
                    out.extend(engine.add_contact(device, None, now_ms))
        gone = [n for n in change.revoked if n != me]
        for node_id in gone:
            out.extend(self._drop_device(node_id))
        out.extend(self._rekey(gone, now_ms))
        out.extend(engine.group_sync.grow(change, now_ms))
        self._notices.append(DeviceListChanged(change, loud=not change.signer_was_trusted))
        if own:
            out.extend(self.share_own(now_ms))
            if me in change.new.node_ids:
                # a device new to my account (this one, or another) asks for the lists the
                # others hold (only an own device is answered)
                ask = DeviceListRequest(ALL_ACCOUNTS, 0).encode()
                for device in change.added:
                    if device.node_id != me:
                        out.extend(self.send(device, ask, now_ms))
        out.extend(engine.flush())
        return out

    def _drop_device(self, node_id: bytes) -> list[Output]:
        """A revoked device: nothing more is sealed to it (queued messages to it fail), no
        group keys go to it, its session is erased."""
        engine = self.engine
        out: list[Output] = []
        record = engine.direct.records.get(node_id)
        engine._group_glue.distrust(node_id)
        for item in engine.outbox.items():
            if item.recipient is not None and item.recipient.node_id == node_id:
                last = engine._end_copy(item)  # the copies to the account's other devices stay
                if not item.is_control:
                    out.append(MessageExpired(item.msg_id, item.device, last))
        engine.direct.drop_peer(node_id)
        engine.router.contacts.discard(node_id)
        if record is not None:
            engine.router.contact_keys.discard(record.identity.sign_public)
        return out

    def _rekey(self, gone: list[bytes], now_ms: int) -> list[Output]:
        """Groups this node administers that hold a revoked device are re-keyed without it
        (so it reads nothing sent in them from now on)."""
        engine = self.engine
        me = engine.identity.node_id
        out: list[Output] = []
        for group in list(engine.groups.groups.values()):
            if group.removed or group.current is None or me not in group.roster.admins:
                continue
            members = [n for n in gone if group.roster.member(n) is not None]
            if not members:
                continue
            try:
                out.extend(engine.change_group(group.group_id, now_ms, remove=members))
            except (UsageError, PacketError) as exc:
                out.append(MessageRejected(f"re-key after a revocation: {exc}", bytes(16), None))
        return out

    def share_own(self, now_ms: int, to: Iterable[PublicIdentity] | None = None) -> list[Output]:
        """Send this account's list to ``to`` (default: every contact device and every
        other own device). Nothing is sent for a lone founding device's list."""
        if self.announce_item() is None and self.book.own.version == 1:
            return []
        if self.engine.identity.node_id not in self.book.own.node_ids:
            return []  # this device was revoked: it speaks for the account no more
        if to is None:
            to = self._everyone()
        out: list[Output] = []
        me = self.engine.identity.node_id
        for device in to:
            if device.node_id != me:
                out.extend(self._send_own(device, now_ms))
        return out

    def _send_own(self, device: PublicIdentity, now_ms: int) -> list[Output]:
        """Share this account's list with ``device``, and follow its parts' acks: once all
        are acked the device holds the list (:meth:`holds_own_list`)."""
        own = self.book.own
        sends = self.engine.groups.send_blob(device, DeviceListShare(own).encode(), now_ms)
        if sends:
            key = (device.node_id, own.version, sends[0].part.blob_id)
            self._share_left[key] = len(sends)
            for send in sends:
                self._share_parts[send.part.msg_id] = key
            while len(self._share_parts) > _MAX_REMEMBERED:
                old = self._share_parts.pop(next(iter(self._share_parts)))
                self._share_left.pop(old, None)
        return self.engine._group_glue.queue(sends, now_ms)

    def acked(self, msg_id: bytes, now_ms: int) -> None:
        """A control part of ours was acked: when it was the last of a share of my list,
        its device holds that list from now on."""
        key = self._share_parts.pop(msg_id, None)
        if key is None or key not in self._share_left:
            return
        self._share_left[key] -= 1
        if self._share_left[key] <= 0:
            del self._share_left[key]
            device, version = key[0], key[1]
            if version >= self._told.get(device, (0, 0))[0]:
                self._told[device] = (version, now_ms)
            while len(self._told) > _MAX_REMEMBERED:
                del self._told[next(iter(self._told))]

    def holds_own_list(self, node_id: bytes, sent_ms: int) -> bool:
        """Whether ``node_id`` acked this account's current list (since this node started)
        well before ``sent_ms`` (its clock may differ from ours by up to
        :data:`HOLDS_MARGIN_MS`: a message it sent around the ack may predate its knowing)."""
        told = self._told.get(node_id)
        if told is None or told[0] < self.book.own.version:
            return False
        return sent_ms >= told[1] + HOLDS_MARGIN_MS

    def is_revoked(self, node_id: bytes) -> bool:
        """Whether a device list held here revokes ``node_id`` (and none lists it live)."""
        book = self.book
        if book.account_of(node_id) != node_id:
            return False
        if node_id in book.own.revoked:
            return True
        for account_id in book.accounts():
            held = book.held(account_id)
            if held is not None and node_id in held.revoked:
                return True
        return False

    def sharing_own_list(self, node_id: bytes) -> bool:
        """Whether a share of this account's current list to ``node_id`` is in flight."""
        version = self.book.own.version
        return any(k[0] == node_id and k[1] == version for k in self._share_left)

    def _everyone(self) -> list[PublicIdentity]:
        engine = self.engine
        found = {d.node_id: d for d in self.book.own_devices()}
        for node_id in engine.router.contacts:
            record = engine.direct.records.get(node_id)
            if record is not None:
                found.setdefault(node_id, record.identity)
        return list(found.values())

    def revoke(self, node_id: bytes, now_ms: int) -> list[Output]:
        """Take one of this account's other devices off its list for good, and tell every
        contact and own device."""
        old = self.book.own
        entry = old.device(node_id)
        new = self.book.revoke(node_id, self.engine.identity)
        change = ListChange(old.account_id, old.version, new, (), (node_id,), True)
        out: list[Output] = []
        if entry is not None and self.engine.direct.can_seal(entry.identity):
            # best effort: the revoked device is told at once if it can be reached now (its
            # session is erased right after, so the share is not sent again)
            out.extend(self.send(entry.identity, DeviceListShare(new).encode(), now_ms))
        return [*out, *self.apply(change, now_ms)]

    def add_device(self, entry: DeviceEntry, now_ms: int) -> list[Output]:
        """Put a device on this account's list (after linking), and tell everyone."""
        old = self.book.own
        new = self.book.add_device(entry, self.engine.identity)
        change = ListChange(old.account_id, old.version, new, (entry.identity,), (), True)
        return self.apply(change, now_ms)

    # -- sending -------------------------------------------------------------------------

    def send(self, recipient: PublicIdentity, blob: bytes, now_ms: int) -> list[Output]:
        """Send an account blob to one device: sealed, retried until acked."""
        sends = self.engine.groups.send_blob(recipient, blob, now_ms)
        return self.engine._group_glue.queue(sends, now_ms)


def _name(handler: Handler) -> str:
    """A handler's qualified name, for errors."""
    return getattr(handler, "__qualname__", repr(handler))


def _due(last: dict[bytes, int], key: bytes, now_ms: int) -> bool:
    """Whether ``key`` may be served again (and note that it is), bounded in memory."""
    before = last.get(key)
    if before is not None and now_ms - before < REQUEST_EVERY_MS:
        return False
    last[key] = now_ms
    if len(last) > _MAX_REMEMBERED:
        for old in sorted(last, key=last.__getitem__)[: len(last) - _MAX_REMEMBERED]:
            del last[old]
    return True
