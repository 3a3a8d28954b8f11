"""What the group book keeps, and how it is stored: groups, their epochs, the book's own state.

Theory of operation. A :class:`Group` (roster, epochs with their keys and sender chains, held
messages, removals, and for an admin whether each member applied its latest roster) is stored
as one blob under its group id; the book's own state (control parts in flight, half-joined
blobs, early sender-key shares, roster updates being followed) as one blob under
:data:`BOOK_KEY`. Both are canonical CBOR that starts with a format number. A blob that does
not read raises :class:`~meshchat.errors.StoreError` with the reason (and its cause); the owner
sets it aside.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cbor2

from meshchat.errors import MeshchatError, StoreError
from meshchat.events import GroupChanged
from meshchat.group.control import Assembler, SenderKeyShare, decode_control
from meshchat.group.roster import Roster
from meshchat.group.sender_keys import EpochKeys, SenderChain
from meshchat.identity import PublicIdentity, SignedPrekey
from meshchat.wire.payloads import ControlPart

__all__ = [
    "APPLIED",
    "BOOK_KEY",
    "MAX_BOOK_BYTES",
    "NOT_APPLIED",
    "PENDING",
    "BookState",
    "ControlOutcome",
    "ControlSend",
    "Epoch",
    "Group",
    "Learned",
    "Tracked",
]

#: The store key of the book's own state (control parts in flight, half-joined blobs).
BOOK_KEY = b"\x00" * 16
_FORMAT = 2
#: the group book's own blob: format 3 added the tracked roster updates, format 4 stores the
#: parts in flight compactly
_BOOK_FORMAT = 4
#: the most the group book's own blob may take (the store keeps blobs of up to 64 KiB)
MAX_BOOK_BYTES = 60 * 1024

#: Whether a member applied the roster update this node (an admin) sent it: every part acked
#: (a member acks the part that completes a blob only once it applied it), not yet, or not
#: (it said so, or the update expired unacked).
APPLIED = "applied"
PENDING = "pending"
NOT_APPLIED = "not applied"


@dataclass(frozen=True, slots=True)
class ControlSend:
    """One part of a control blob to send to ``recipient`` as an acked sealed message."""

    recipient: PublicIdentity
    part: ControlPart
    expires_ms: int


@dataclass(slots=True)
class Epoch:
    """One epoch of a group: its roster, keys, our sender chain and the members' chains."""

    roster: Roster
    keys: EpochKeys
    own_chain: SenderChain
    own_signing: bytes  # Ed25519 seed of this node's sender signing key
    adopted_ms: int
    peers: dict[bytes, tuple[SenderChain, bytes]] = field(default_factory=dict)

    def dump(self) -> list[object]:
        return [
            self.roster.encode(),
            self.keys.secret,
            self.own_chain.chain_key,
            self.own_chain.iteration,
            self.own_signing,
            self.adopted_ms,
            [
                [n, c.chain_key, c.iteration, [list(s) for s in c.skipped], signing]
                for n, (c, signing) in self.peers.items()
            ],
        ]

    @classmethod
    def load(cls, item: list[object]) -> Epoch:
        roster, secret, own_key, own_iter, own_signing, adopted, peers = item
        if not (
            isinstance(roster, bytes)
            and isinstance(secret, bytes)
            and isinstance(own_key, bytes)
            and isinstance(own_iter, int)
            and isinstance(own_signing, bytes)
            and isinstance(adopted, int)
            and isinstance(peers, list)
        ):
            raise StoreError("unreadable group state: epoch fields")
        epoch = cls(
            Roster.decode(roster),
            EpochKeys.from_secret(secret),
            SenderChain(own_key, own_iter),
            own_signing,
            adopted,
        )
        for node_id, chain_key, iteration, skipped, signing in peers:
            chain = SenderChain(chain_key, iteration, tuple((i, k) for i, k in skipped))
            epoch.peers[node_id] = (chain, signing)
        return epoch


@dataclass(slots=True)
class Group:
    """A group as this node holds it."""

    group_id: bytes
    roster: Roster
    epochs: list[Epoch] = field(default_factory=list)
    #: the latest roster does not list this node: every key is erased
    removed: bool = False
    #: frames of messages whose sender's chain has not arrived
    waiting: list[bytes] = field(default_factory=list)
    #: members this node removed as an admin -> digests of rosters known to carry the removal
    removals: dict[bytes, list[bytes]] = field(default_factory=dict)
    #: as the admin who made the latest roster: each member's :data:`APPLIED`,
    #: :data:`PENDING` or :data:`NOT_APPLIED` (empty when another admin made it)
    delivery: dict[bytes, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.roster.name

    @property
    def current(self) -> Epoch | None:
        return self.epochs[-1] if self.epochs and not self.removed else None

    def dump(self) -> bytes:
        return cbor2.dumps(
            [
                _FORMAT,
                self.group_id,
                self.roster.encode(),
                self.removed,
                [e.dump() for e in self.epochs],
                self.waiting,
                [[node_id, digests] for node_id, digests in sorted(self.removals.items())],
                [[node_id, state] for node_id, state in sorted(self.delivery.items())],
            ],
            canonical=True,
        )

    @classmethod
    def load(cls, blob: bytes) -> Group:
        try:
            fields = cbor2.loads(blob)
            if not isinstance(fields, list) or len(fields) not in (7, 8):
                raise StoreError("unknown group state layout")
            fmt, group_id, roster, removed, epochs, waiting, removals = fields[:7]
            delivery = fields[7] if len(fields) == 8 else []
            if fmt != _FORMAT:
                raise StoreError("unknown group state format")
            group = cls(group_id, Roster.decode(roster), [], bool(removed), list(waiting))
            group.epochs = [Epoch.load(e) for e in epochs]
            if not all(
                isinstance(n, bytes) and all(isinstance(d, bytes) for d in ds) for n, ds in removals
            ):
                raise StoreError("unreadable group removals")
            group.removals = {n: list(ds) for n, ds in removals}
            if not all(
                isinstance(n, bytes) and d in (APPLIED, PENDING, NOT_APPLIED) for n, d in delivery
            ):
                raise StoreError("unreadable group delivery states")
            group.delivery = {n: d for n, d in delivery}
        except StoreError:
            raise
        except (MeshchatError, ValueError, TypeError) as exc:
            raise StoreError(f"unreadable group state: {exc}") from exc
        return group


@dataclass(slots=True)
class Tracked:
    """A roster update this node sent to one member, until every part is acked."""

    recipient: bytes
    group_id: bytes
    epoch: int
    #: msg ids of its parts not acked yet (stored as the outgoing parts of its blob)
    parts: set[bytes]

    def dump(self) -> list[object]:
        return [self.recipient, self.group_id, self.epoch]

    @classmethod
    def load(cls, item: object) -> Tracked:
        """Rebuild from :meth:`dump` (its parts are filled in from the outgoing parts); the
        older layout also listed the parts."""
        if not (isinstance(item, list) and len(item) in (3, 4)):
            raise StoreError("unreadable tracked update")
        recipient, group_id, epoch = item[:3]
        if not (
            isinstance(recipient, bytes) and isinstance(group_id, bytes) and type(epoch) is int
        ):
            raise StoreError("unreadable tracked update")
        return cls(recipient, group_id, epoch, set())


def _dump_outgoing(outgoing: dict[bytes, ControlSend]) -> list[object]:
    """Control parts in flight, compactly: each recipient and each distinct chunk once (an
    update goes to every member cut the same way), then per blob of one recipient its parts
    as ``[index, chunk number, msg id]``; the blobs that expire last first."""
    recipients: dict[PublicIdentity, int] = {}
    chunks: dict[bytes, int] = {}
    blobs: dict[bytes, list[object]] = {}
    for send in sorted(outgoing.values(), key=lambda c: -c.expires_ms):
        part = send.part
        entry = blobs.get(part.blob_id)
        if entry is None:
            who = recipients.setdefault(send.recipient, len(recipients))
            entry = blobs[part.blob_id] = [who, part.blob_id, part.count, send.expires_ms, []]
        number = chunks.setdefault(part.chunk, len(chunks))
        entry[4].append([part.index, number, part.msg_id])  # type: ignore[attr-defined]
    return [
        [[r.sign_public, r.box_public] for r in recipients],
        list(chunks),
        list(blobs.values()),
    ]


def _load_outgoing(data: object) -> dict[bytes, ControlSend]:
    if not (isinstance(data, list) and len(data) == 3):
        raise StoreError("unreadable control parts in flight")
    recipients_data, chunks, blobs = data
    recipients = [PublicIdentity(sign, box) for sign, box in recipients_data]
    out: dict[bytes, ControlSend] = {}
    for who, blob_id, count, expires, parts in blobs:
        if type(expires) is not int:
            raise StoreError("unreadable control parts in flight")
        for index, number, msg_id in parts:
            part = ControlPart(msg_id, blob_id, index, count, chunks[number])
            out[msg_id] = ControlSend(recipients[who], part, expires)
    return out


@dataclass(slots=True)
class BookState:
    """The book's own state: half-joined blobs, early shares, control parts not yet acked.

    Its blob stays within :data:`MAX_BOOK_BYTES`: should the parts in flight not fit (many
    changes of a big group while members are away), the blobs that expire first are left out
    of the stored copy; they are still sent while the node runs, not after a restart.
    """

    assembler: Assembler = field(default_factory=Assembler)
    #: (sender node id, share, when it came): shares whose roster has not arrived
    early: list[tuple[bytes, SenderKeyShare, int]] = field(default_factory=list)
    #: control parts not yet acked: msg id -> what to send again after a restart
    outgoing: dict[bytes, ControlSend] = field(default_factory=dict)
    #: roster updates sent and not yet acked in full: blob id -> what it was
    tracked: dict[bytes, Tracked] = field(default_factory=dict)

    def dump(self) -> bytes:
        fields: list[object] = [
            _BOOK_FORMAT,
            self.assembler.dump(),
            [[s, share.encode(), at] for s, share, at in self.early],
            _dump_outgoing(self.outgoing),
            [[blob_id, t.dump()] for blob_id, t in sorted(self.tracked.items())],
        ]
        blob = cbor2.dumps(fields, canonical=True)
        # The blobs that expire last first; drop from the other end until the row fits.
        order = sorted(
            {c.part.blob_id: c.expires_ms for c in self.outgoing.values()}.items(),
            key=lambda item: -item[1],
        )
        keep = len(order)
        while len(blob) > MAX_BOOK_BYTES and keep:
            keep -= max(1, keep // 8)
            kept = {blob_id for blob_id, _ in order[:keep]}
            fields[3] = _dump_outgoing(
                {m: c for m, c in self.outgoing.items() if c.part.blob_id in kept}
            )
            blob = cbor2.dumps(fields, canonical=True)
        return blob

    @classmethod
    def load(cls, blob: bytes) -> BookState:
        """Rebuild the book's state; raises :class:`StoreError` if the blob is not one."""
        state = cls()
        try:
            fields = cbor2.loads(blob)
            if not isinstance(fields, list) or len(fields) not in (4, 5):
                raise StoreError("unknown group book layout")
            fmt, assembler, early, outgoing = fields[:4]
            tracked = fields[4] if len(fields) == 5 else []
            if fmt not in (_FORMAT, _FORMAT + 1, _BOOK_FORMAT):
                raise StoreError("unknown group book format")
            state.assembler = Assembler.load(assembler)
            for sender, share, at in early:
                parsed = decode_control(share)
                if isinstance(parsed, SenderKeyShare):
                    state.early.append((sender, parsed, at))
            if fmt == _BOOK_FORMAT:
                state.outgoing = _load_outgoing(outgoing)
            else:
                for sign, box, part, expires in outgoing:
                    parsed_part = ControlPart.decode(part)
                    state.outgoing[parsed_part.msg_id] = ControlSend(
                        PublicIdentity(sign, box), parsed_part, expires
                    )
            for blob_id, item in tracked:
                if not isinstance(blob_id, bytes):
                    raise StoreError("unreadable tracked update")
                entry = Tracked.load(item)
                entry.parts = {m for m, c in state.outgoing.items() if c.part.blob_id == blob_id}
                if entry.parts:
                    state.tracked[blob_id] = entry
        except StoreError:
            raise
        except (MeshchatError, ValueError, TypeError, IndexError) as exc:
            raise StoreError(f"unreadable group book: {exc}") from exc
        return state


#: a member to know as a peer, with the signed prekey the roster's admin had for it
Learned = tuple[PublicIdentity, SignedPrekey | None]


@dataclass(slots=True)
class ControlOutcome:
    """What a control message asks of the engine."""

    sends: list[ControlSend] = field(default_factory=list)
    notices: list[GroupChanged] = field(default_factory=list)
    #: members to know as peers (with the prekey the roster's admin had for them)
    learned: list[Learned] = field(default_factory=list)
    #: (group id, node id): members this node, an admin, must remove: members who left, and
    #: members it removed whom a roster made without knowing of the removal lists again
    to_remove: list[tuple[bytes, bytes]] = field(default_factory=list)
    #: False: the part was not kept, or its blob not applied; it must not be acked
    ack: bool = True
    #: why the blob was not applied (for the log)
    rejected: str | None = None
    #: msg ids of our own control parts to stop sending (their blob was not applied)
    cancel: list[bytes] = field(default_factory=list)
    #: a whole control blob of an account kind (16 and up): for the account glue
    account_blob: bytes | None = None
