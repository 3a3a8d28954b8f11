"""The groups of one node: rosters, epoch keys, sender chains, and the control traffic.

Theory of operation. :class:`GroupBook` is pure (no I/O, time from ``now_ms``). It holds a
:class:`Group` per group id with the latest roster it accepted and the key material of the
current epoch (and of the previous ones for :data:`RETAIN_MS`, for messages still on the way).

* An admin changes the roster (:meth:`create`, :meth:`change`): a new epoch, a new epoch secret,
  a :class:`~.control.GroupUpdate` to every member (a removal notice without the secret to
  every removed member), and this node's own new sender chain to every member.
* A member who accepts an update (:meth:`on_control`, rules in :mod:`.roster`) adopts the epoch:
  a new sender chain of its own, shared with every other member. A share that arrives before
  its roster waits (bounded) until the roster comes. A member who finds itself removed erases
  every key of the group at once.
* A group message (:meth:`seal`, :meth:`open`) uses the sender's chain of the epoch its address
  names. A message whose sender's chain has not arrived yet is held (bounded) and opened when
  the share comes (:meth:`take_waiting`).
* Two admins who change a group at once fork it: two rosters of one epoch. Members keep the
  one that outranks the other, which may lack one admin's change. Each admin remembers whom
  it removed (:attr:`Group.removals`) and which rosters are known to carry each removal:
  its own, those made from one of them, those that lack the member anyway. A roster it adopts
  that lists such a member and is not made from one of those rosters was made without knowing
  of the removal: the admin removes the member again at once (``ControlOutcome.to_remove``).
  A roster made from one of them that lists the member again is a deliberate re-add, and the
  admin forgets that removal.

* A part that cannot be kept (the bounds of :class:`~.control.Assembler`) or the last part of
  a blob that is not applied is not acked; its sender hears ``NotApplied`` instead. As an admin
  the book follows whether each member applied the latest roster (:mod:`._delivery`).

What goes out is a list of :class:`ControlSend` (a recipient and one part of a control blob,
each to be sent as an acked, sealed direct message) and :class:`GroupChanged` values. Changed
state comes out of :meth:`take_updates` as ``(key, blob)`` pairs: the group id, or
:data:`BOOK_KEY` for the parts in flight and half-joined blobs; the owner stores them before any
packet that depends on them leaves.
"""

from __future__ import annotations

import os

from nacl.signing import SigningKey

from meshchat.account.wire import ACCOUNT_KINDS_FROM, blob_kind
from meshchat.errors import DecryptionError, PacketError, StoreError, UsageError
from meshchat.events import GroupChanged
from meshchat.group._delivery import Deliveries
from meshchat.group._messages import GroupMessages, KeyPending
from meshchat.group._state import (
    BOOK_KEY,
    BookState,
    ControlOutcome,
    ControlSend,
    Epoch,
    Group,
    Learned,
)
from meshchat.group.control import (
    DROPPED,
    REFUSED,
    Control,
    GroupLeave,
    GroupUpdate,
    NotApplied,
    PartRefused,
    SenderKeyShare,
    decode_control,
    split,
)
from meshchat.group.roster import MAX_MEMBERS, Roster, new_group_id
from meshchat.group.sender_keys import (
    EpochKeys,
    SenderChain,
)
from meshchat.identity import Identity, PublicIdentity, SignedPrekey
from meshchat.wire.packet import MAX_AGE_MS
from meshchat.wire.payloads import MSG_ID_SIZE, ControlPart

__all__ = [
    "BOOK_KEY",
    "RETAIN_MS",
    "ControlOutcome",
    "ControlSend",
    "Group",
    "GroupBook",
    "KeyPending",
    "group_conversation",
]

#: How long the keys of an epoch are kept after the next one began, for late messages.
RETAIN_MS = 3600 * 1000
#: Sender-key shares held until their roster arrives.
MAX_EARLY_SHARES = 4 * MAX_MEMBERS
#: rosters remembered per removal (the latest; older ones are long superseded)
MAX_CARRIERS = 8
#: removals remembered per group (the oldest are forgotten first)
MAX_REMOVALS = 256
#: ``NotApplied`` answers to strangers in flight at most (each is retried until acked)
MAX_STRANGER_NACKS = 16
#: ``NotApplied`` answers in flight to one known peer at most
MAX_NACKS_PER_PEER = 8


def group_conversation(group_id: bytes) -> str:
    """The conversation name of a group."""
    return "grp:" + group_id.hex()


class GroupBook(GroupMessages):
    """Every group of one identity (see the module docstring)."""

    def __init__(self, identity: Identity) -> None:
        self.identity = identity
        self.groups: dict[bytes, Group] = {}
        #: half-joined blobs, early shares and control parts not yet acked
        self.state = BookState()
        self._addresses: dict[bytes, tuple[Group, Epoch]] = {}
        self._dirty: set[bytes] = set()
        self._deliveries = Deliveries()
        #: our NotApplied parts in flight: msg id -> (recipient node id, known)
        self._nacks: dict[bytes, tuple[bytes, bool]] = {}

    @property
    def me(self) -> bytes:
        return self.identity.node_id

    @property
    def outgoing(self) -> dict[bytes, ControlSend]:
        """Control parts not yet acked: msg id -> what to send again after a restart."""
        return self.state.outgoing

    # -- state ---------------------------------------------------------------------------

    def load(self, blobs: dict[bytes, bytes]) -> list[bytes]:
        """Restore stored state; returns the keys of blobs that could not be read."""
        bad: list[bytes] = []
        for key, blob in blobs.items():
            try:
                if key == BOOK_KEY:
                    self.state = BookState.load(blob)
                else:
                    group = Group.load(blob)
                    if group.group_id != key:
                        raise StoreError("group state under the wrong id")
                    self.groups[key] = group
            except StoreError:
                bad.append(key)
        self._index()
        return bad

    def take_updates(self) -> list[tuple[bytes, bytes]]:
        out: list[tuple[bytes, bytes]] = []
        for key in sorted(self._dirty):
            if key == BOOK_KEY:
                out.append((key, self.state.dump()))
            elif key in self.groups:
                out.append((key, self.groups[key].dump()))
        self._dirty.clear()
        return out

    def _index(self) -> None:
        self._addresses = {
            e.keys.address: (g, e) for g in self.groups.values() if not g.removed for e in g.epochs
        }

    @property
    def addresses(self) -> set[bytes]:
        """The addresses (channel ids) of every epoch this node holds keys for."""
        return set(self._addresses)

    def maintain(self, now_ms: int) -> bool:
        """Forget epochs superseded more than :data:`RETAIN_MS` ago, and stale early shares;
        returns whether the set of addresses changed."""
        changed = False
        for group in self.groups.values():
            keep = [
                e
                for i, e in enumerate(group.epochs)
                if i == len(group.epochs) - 1
                or now_ms - group.epochs[i + 1].adopted_ms <= RETAIN_MS
            ]
            if len(keep) != len(group.epochs):
                group.epochs = keep
                self._dirty.add(group.group_id)
                changed = True
        early = [x for x in self.state.early if now_ms - x[2] <= MAX_AGE_MS]
        if len(early) != len(self.state.early):
            self.state.early = early
            self._dirty.add(BOOK_KEY)
        if changed:
            self._index()
        return changed

    # -- admin: making rosters -----------------------------------------------------------

    def create(
        self,
        name: str,
        members: list[PublicIdentity],
        prekeys: dict[bytes, SignedPrekey],
        now_ms: int,
    ) -> tuple[Group, list[ControlSend]]:
        """A new group with this node as its admin; returns it and what to send."""
        everyone = {m.node_id: m for m in members}
        everyone[self.me] = self.identity.public
        if len(everyone) > MAX_MEMBERS:
            raise UsageError(f"a group has at most {MAX_MEMBERS} members")
        roster = Roster.build(self.identity, new_group_id(), 1, name, everyone.values(), {self.me})
        group = Group(roster.group_id, roster)
        self.groups[group.group_id] = group
        sends = self._issue(group, roster, [], prekeys, now_ms)
        return group, sends

    def change(
        self,
        group_id: bytes,
        add: list[PublicIdentity],
        remove: list[bytes],
        prekeys: dict[bytes, SignedPrekey],
        now_ms: int,
        *,
        admins: set[bytes] | None = None,
        name: str | None = None,
    ) -> list[ControlSend]:
        """A new epoch with members added or removed (this node must be an admin)."""
        group = self._group(group_id)
        held = group.roster
        if not held.is_admin_key(self.identity.public.sign_public):
            raise UsageError("only an admin of the group can change it")
        if self.me in remove:
            raise UsageError("an admin cannot remove itself; make another admin first")
        members = {m.node_id: m for m in held.members if m.node_id not in remove}
        for m in add:
            members[m.node_id] = m
        if len(members) > MAX_MEMBERS:
            raise UsageError(f"a group has at most {MAX_MEMBERS} members")
        new_admins = (admins if admins is not None else set(held.admins)) & set(members)
        new_admins.add(self.me)
        roster = Roster.build(
            self.identity,
            group_id,
            held.epoch + 1,
            name if name is not None else held.name,
            members.values(),
            new_admins,
            parent=held.digest,
        )
        removed = [m for m in held.members if m.node_id not in members]
        self._track(group, roster)
        for gone in removed:
            group.removals.pop(gone.node_id, None)
            group.removals[gone.node_id] = [roster.digest]
        while len(group.removals) > MAX_REMOVALS:
            del group.removals[next(iter(group.removals))]
        return self._issue(group, roster, removed, prekeys, now_ms)

    @staticmethod
    def _track(group: Group, roster: Roster) -> list[bytes]:
        """Follow this node's removals into ``roster``, which it adopts; return the members
        the roster lists again without having been made from a roster that removed them."""
        again: list[bytes] = []
        for node_id, carriers in list(group.removals.items()):
            listed = roster.member(node_id) is not None
            if roster.parent in carriers:
                if listed:  # re-added on purpose, by someone who saw the removal
                    del group.removals[node_id]
                    continue
                carriers.append(roster.digest)
            elif listed:
                again.append(node_id)
                continue
            else:
                carriers.append(roster.digest)
            del carriers[:-MAX_CARRIERS]
        return again

    def _issue(
        self,
        group: Group,
        roster: Roster,
        removed: list[PublicIdentity],
        prekeys: dict[bytes, SignedPrekey],
        now_ms: int,
    ) -> list[ControlSend]:
        keys = EpochKeys.generate()
        known = tuple(
            (m.node_id, prekeys[m.node_id]) for m in roster.members if m.node_id in prekeys
        )
        update = GroupUpdate(roster, keys.secret, known).encode()
        notice = GroupUpdate(roster, None, ()).encode()
        sends: list[ControlSend] = []
        group.roster = roster
        self._deliveries.start(self.state, group)
        self._deliveries.remember(group, update)
        for member in roster.members:
            if member.node_id != self.me:
                parts = self._control(member, update, now_ms)
                self._deliveries.track(self.state, group, parts)
                sends.extend(parts)
        for gone in removed:
            sends.extend(self._control(gone, notice, now_ms))
        sends.extend(self._adopt(group, roster, keys, now_ms))
        return sends

    def _group(self, group_id: bytes) -> Group:
        group = self.groups.get(group_id)
        if group is None:
            raise UsageError("no such group")
        return group

    # -- control messages ------------------------------------------------------------------

    def _control(self, recipient: PublicIdentity, blob: bytes, now_ms: int) -> list[ControlSend]:
        sends = []
        for blob_id, index, count, chunk in split(blob):
            part = ControlPart(os.urandom(MSG_ID_SIZE), blob_id, index, count, chunk)
            send = ControlSend(recipient, part, now_ms + MAX_AGE_MS)
            self.state.outgoing[part.msg_id] = send
            sends.append(send)
        self._dirty.add(BOOK_KEY)
        return sends

    def send_blob(self, recipient: PublicIdentity, blob: bytes, now_ms: int) -> list[ControlSend]:
        """Send another part of the node a control blob (an account's): cut, kept in flight
        and retried like the book's own until acked."""
        return self._control(recipient, blob, now_ms)

    def control_acked(self, msg_id: bytes) -> None:
        """A control part of ours was acked (call before :meth:`control_done`)."""
        changed = self._deliveries.acked(self.state, self.groups, msg_id)
        if changed is not None:
            self._dirty.update((changed, BOOK_KEY))

    def control_done(self, msg_id: bytes) -> bool:
        """A control part is no longer sent (acked, expired or dropped); returns whether it
        was one of ours. A part of a roster update that ends unacked marks the member's
        update not applied."""
        if self.state.outgoing.pop(msg_id, None) is None:
            return False
        self._dirty.add(BOOK_KEY)
        changed = self._deliveries.failed(self.state, self.groups, msg_id)
        if changed is not None:
            self._dirty.add(changed)
        return True

    def take_notices(self) -> list[GroupChanged]:
        """Members who did not apply a roster update of ours, since the last call."""
        return self._deliveries.take_notices()

    def _adopt(
        self, group: Group, roster: Roster, keys: EpochKeys, now_ms: int
    ) -> list[ControlSend]:
        """Start an epoch: a new sender chain of our own, shared with every other member."""
        epoch = Epoch(roster, keys, SenderChain.generate(), os.urandom(32), now_ms)
        # Late messages of older epochs are still read for a while, but not from anyone
        # the new roster dropped: a removed member could otherwise go on writing in them.
        for old in group.epochs:
            for node_id in [n for n in old.peers if roster.member(n) is None]:
                del old.peers[node_id]
        group.epochs.append(epoch)
        group.removed = False
        self._dirty.add(group.group_id)
        signing = bytes(SigningKey(epoch.own_signing).verify_key)
        share = SenderKeyShare(
            group.group_id,
            roster.epoch,
            roster.digest,
            epoch.own_chain.chain_key,
            epoch.own_chain.iteration,
            signing,
        ).encode()
        sends: list[ControlSend] = []
        for member in roster.members:
            if member.node_id != self.me:
                sends.extend(self._control(member, share, now_ms))
        for sender, early, at in list(self.state.early):
            if early.group_id == group.group_id and self._take_share(group, sender, early):
                self.state.early.remove((sender, early, at))
                self._dirty.add(BOOK_KEY)
        self._index()
        return sends

    def on_part(
        self, sender: PublicIdentity, part: ControlPart, now_ms: int, *, known: bool
    ) -> ControlOutcome:
        """A control part from ``sender`` (authenticated by the pairwise session); ``known``
        tells whether the sender is a contact or a member of a group with us (only those may
        add us to a new group, and only their blobs in progress are stored).

        A part that cannot be kept, and a blob that is malformed or not allowed, come back
        with ``ack`` False and the reason (the owner logs it and does not ack the part); the
        sender is told with ``NotApplied`` (a stranger only for a whole blob, and only while
        few such answers are in flight).
        """
        keys = (sender.sign_public, sender.box_public) if known else None
        try:
            blob = self.state.assembler.add(sender.node_id, part, now_ms, keys)
        except PartRefused as exc:
            outcome = ControlOutcome(ack=False, rejected=f"group control: {exc}")
            if known:
                outcome.sends = self._nack(sender, part.blob_id, DROPPED, now_ms, known)
            return self._with_dropped(outcome, now_ms)
        if known:
            self._dirty.add(BOOK_KEY)
        if blob is None:
            return self._with_dropped(ControlOutcome(), now_ms)
        kind = blob_kind(blob)
        if kind is not None and kind >= ACCOUNT_KINDS_FROM:  # the account glue's, not ours
            return self._with_dropped(ControlOutcome(account_blob=blob), now_ms)
        try:
            outcome = self._apply(sender, decode_control(blob), now_ms, known)
        except (PacketError, DecryptionError) as exc:
            outcome = ControlOutcome(ack=False, rejected=f"group control: {exc}")
        if not outcome.ack:
            outcome.sends.extend(self._nack(sender, part.blob_id, REFUSED, now_ms, known))
        return self._with_dropped(outcome, now_ms)

    def _with_dropped(self, outcome: ControlOutcome, now_ms: int) -> ControlOutcome:
        """Tell known senders whose blobs in progress were dropped (their parts were acked)."""
        for sign, box, blob_id in self.state.assembler.take_dropped():
            sender = PublicIdentity(sign, box)
            outcome.sends.extend(self._nack(sender, blob_id, DROPPED, now_ms, True))
            self._dirty.add(BOOK_KEY)
        return outcome

    def _nack(
        self, to: PublicIdentity, blob_id: bytes, reason: int, now_ms: int, known: bool
    ) -> list[ControlSend]:
        """Tell ``to`` we did not apply its blob, unless too many such answers (each retried
        until acked) are in flight: to strangers, or to this peer."""
        self._nacks = {m: v for m, v in self._nacks.items() if m in self.state.outgoing}
        peers = [who for who, k in self._nacks.values() if k == known]
        full = (
            peers.count(to.node_id) >= MAX_NACKS_PER_PEER
            if known
            else len(peers) >= MAX_STRANGER_NACKS
        )
        if full:
            return []
        sends = self._control(to, NotApplied(blob_id, reason).encode(), now_ms)
        for send in sends:
            self._nacks[send.part.msg_id] = (to.node_id, known)
        return sends

    def _apply(
        self, sender: PublicIdentity, control: Control, now_ms: int, known: bool
    ) -> ControlOutcome:
        if isinstance(control, NotApplied):
            again = self._deliveries.resend(self.state, self.groups, sender.node_id, control)
            if again is not None:
                group, stop, blob = again
                parts = self._control(sender, blob, now_ms)
                self._deliveries.track(self.state, group, parts)
                self._deliveries.resent(parts[0].part.blob_id)
                self._dirty.update((group.group_id, BOOK_KEY))
                return ControlOutcome(sends=parts, cancel=stop)
            cancel, changed = self._deliveries.not_applied(
                self.state, self.groups, sender.node_id, control.blob_id
            )
            if changed is not None:
                self._dirty.update((changed, BOOK_KEY))
            return ControlOutcome(cancel=cancel)
        if isinstance(control, SenderKeyShare):
            self._on_share(sender, control, now_ms)
            return ControlOutcome()
        if isinstance(control, GroupLeave):
            return self._on_leave(sender, control)
        return self._on_update(sender, control, now_ms, known)

    def _on_leave(self, sender: PublicIdentity, leave: GroupLeave) -> ControlOutcome:
        group = self.groups.get(leave.group_id)
        if group is None or group.current is None:
            return ControlOutcome()
        roster = group.roster
        if roster.member(sender.node_id) is None or self.me not in roster.admins:
            return ControlOutcome()
        return ControlOutcome(to_remove=[(group.group_id, sender.node_id)])

    def leave(self, group_id: bytes, now_ms: int) -> tuple[list[ControlSend], GroupChanged]:
        """Leave a group: tell its admins (they re-key it without us) and erase our keys."""
        group = self._group(group_id)
        roster = group.roster
        if group.current is None:
            raise UsageError(f"you are not a member of {group.name}")
        others = [m for m in roster.members if m.node_id != self.me]
        admins = [m for m in others if m.node_id in roster.admins]
        if others and not admins:
            raise UsageError("you are its only admin: make another member admin first")
        blob = GroupLeave(group_id).encode()
        sends = [s for admin in admins for s in self._control(admin, blob, now_ms)]
        self._erase(group)
        return sends, GroupChanged(group_id, group.name, "left", self.identity.public)

    def _erase(self, group: Group) -> None:
        group.epochs = []
        group.waiting = []
        group.removals = {}
        group.removed = True
        self._dirty.add(group.group_id)
        self._index()

    def _on_update(
        self, sender: PublicIdentity, update: GroupUpdate, now_ms: int, known: bool
    ) -> ControlOutcome:
        roster = update.roster
        if roster.signer != sender.sign_public:
            raise DecryptionError("roster not signed by the peer who sent it")
        if not roster.signature_valid():
            raise DecryptionError("roster signature does not verify")
        group = self.groups.get(roster.group_id)
        listed = roster.member(self.me) is not None
        if group is None:
            if not roster.is_admin_key(sender.sign_public):
                raise DecryptionError("roster of a new group not signed by an admin")
            if not listed or update.epoch_secret is None:
                raise DecryptionError("roster of an unknown group that does not list us")
            if not known:
                # Nothing is kept; the user is told, and can add the sender's card.
                by = roster.member_by_sign_key(sender.sign_public)
                notice = GroupChanged(roster.group_id, roster.name, "refused", by)
                return ControlOutcome(notices=[notice], ack=False, rejected="not a contact")
            group = self.groups[roster.group_id] = Group(roster.group_id, roster)
            what = "joined"
        else:
            if roster.digest == group.roster.digest or not roster.outranks(group.roster):
                return ControlOutcome()  # a roster we have, or an older one
            if not group.roster.is_admin_key(sender.sign_public):
                raise DecryptionError("roster signed by someone who is not an admin")
            what = "changed"
        again = self._track(group, roster)
        if self.me not in roster.admins:
            group.removals.clear()  # no longer ours to enforce
            again = []
        group.roster = roster
        self._dirty.add(group.group_id)
        by = roster.member_by_sign_key(sender.sign_public)
        if not listed:
            self._erase(group)
            return ControlOutcome(
                notices=[GroupChanged(group.group_id, roster.name, "removed", by)]
            )
        if update.epoch_secret is None:
            raise DecryptionError("roster update without its epoch secret")
        sends = self._adopt(group, roster, EpochKeys.from_secret(update.epoch_secret), now_ms)
        learned: list[Learned] = []
        for node_id, prekey in update.prekeys:
            member = roster.member(node_id)
            if member is not None and node_id != self.me:
                learned.append((member, prekey))
        for member in roster.members:
            if member.node_id != self.me and all(m != member for m, _ in learned):
                learned.append((member, None))
        notice = GroupChanged(group.group_id, roster.name, what, by)
        to_remove = [(group.group_id, node_id) for node_id in again]
        return ControlOutcome(sends, [notice], learned, to_remove)

    def _on_share(self, sender: PublicIdentity, share: SenderKeyShare, now_ms: int) -> None:
        group = self.groups.get(share.group_id)
        if group is not None and self._take_share(group, sender.node_id, share):
            return
        if group is not None and group.removed:
            return
        current = group.current if group is not None else None
        if current is not None and share.epoch < current.roster.epoch:
            return  # a share for an epoch we have left behind
        if len(self.state.early) >= MAX_EARLY_SHARES:
            self.state.early.pop(0)
        self.state.early.append((sender.node_id, share, now_ms))
        self._dirty.add(BOOK_KEY)

    def _take_share(self, group: Group, sender: bytes, share: SenderKeyShare) -> bool:
        """Keep a share whose roster we hold; False if we do not hold it (yet)."""
        for epoch in group.epochs:
            roster = epoch.roster
            if roster.epoch != share.epoch or roster.digest != share.roster_digest:
                continue
            if roster.member(sender) is None or sender == self.me:
                return True  # not a member of that roster: dropped
            if sender not in epoch.peers:  # a chain once set is never reset
                epoch.peers[sender] = (
                    SenderChain(share.chain_key, share.iteration),
                    share.signing_public,
                )
                self._dirty.add(group.group_id)
            return True
        return False
