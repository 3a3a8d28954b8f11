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
from meshchat.group.control import Assembler, SenderKeyShare, decode_control
from meshchat.group.roster import Roster
from meshchat.group.sender_keys import EpochKeys, SenderChain
from meshchat.identity import PublicIdentity
from meshchat.wire.payloads import ControlPart

__all__ = [
    "APPLIED",
    "BOOK_KEY",
    "NOT_APPLIED",
    "PENDING",
    "BookState",
    "ControlSend",
    "Epoch",
    "Group",
    "Tracked",
]

#: The store key of the book's own state (control parts in flight, half-joined blobs).
BOOK_KEY = b"\x00" * 16
_FORMAT = 2
#: the group book's own blob: format 3 adds the tracked roster updates
_BOOK_FORMAT = 3

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
    #: msg ids of its parts not acked yet
    parts: set[bytes]

    def dump(self) -> list[object]:
        return [self.recipient, self.group_id, self.epoch, sorted(self.parts)]

    @classmethod
    def load(cls, item: object) -> Tracked:
        if not (isinstance(item, list) and len(item) == 4):
            raise StoreError("unreadable tracked update")
        recipient, group_id, epoch, parts = item
        if not (
            isinstance(recipient, bytes)
            and isinstance(group_id, bytes)
            and type(epoch) is int
            and isinstance(parts, list)
            and all(isinstance(p, bytes) for p in parts)
        ):
            raise StoreError("unreadable tracked update")
        return cls(recipient, group_id, epoch, set(parts))


@dataclass(slots=True)
class BookState:
    """The book's own state: half-joined blobs, early shares, control parts not yet acked."""

    assembler: Assembler = field(default_factory=Assembler)
    #: (sender node id, share, when it came): shares whose roster has not arrived
    early: list[tuple[bytes, SenderKeyShare, int]] = field(default_factory=list)
    #: control parts not yet acked: msg id -> what to send again after a restart
    outgoing: dict[bytes, ControlSend] = field(default_factory=dict)
    #: roster updates sent and not yet acked in full: blob id -> what it was
    tracked: dict[bytes, Tracked] = field(default_factory=dict)

    def dump(self) -> bytes:
        return cbor2.dumps(
            [
                _BOOK_FORMAT,
                self.assembler.dump(),
                [[s, share.encode(), at] for s, share, at in self.early],
                [
                    [c.recipient.sign_public, c.recipient.box_public, c.part.encode(), c.expires_ms]
                    for c in self.outgoing.values()
                ],
                [[blob_id, t.dump()] for blob_id, t in sorted(self.tracked.items())],
            ],
            canonical=True,
        )

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
            if fmt not in (_FORMAT, _BOOK_FORMAT):
                raise StoreError("unknown group book format")
            for blob_id, item in tracked:
                if not isinstance(blob_id, bytes):
                    raise StoreError("unreadable tracked update")
                state.tracked[blob_id] = Tracked.load(item)
            state.assembler = Assembler.load(assembler)
            for sender, share, at in early:
                parsed = decode_control(share)
                if isinstance(parsed, SenderKeyShare):
                    state.early.append((sender, parsed, at))
            for sign, box, part, expires in outgoing:
                parsed_part = ControlPart.decode(part)
                state.outgoing[parsed_part.msg_id] = ControlSend(
                    PublicIdentity(sign, box), parsed_part, expires
                )
        except StoreError:
            raise
        except (MeshchatError, ValueError, TypeError) as exc:
            raise StoreError(f"unreadable group book: {exc}") from exc
        return state
