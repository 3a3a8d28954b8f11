"""Engine outputs as typed effects, and carrying them out.

Theory of operation. The engine returns outputs (router actions and events). :meth:`Effects.plan`
turns each into an effect value: a **write** (:class:`SaveReceived`, :class:`SaveCarried`,
:class:`DropCarried`, :class:`SetState`, :class:`RecordAttempt`, :class:`RememberPeer`,
:class:`PutState`, :class:`Tombstone` for a blocked sender's message) or an **after-commit
step** (:class:`Transmit`, :class:`Notify`, :class:`OfferToInternet`, or :class:`FromWrite`:
"the step the i-th write produced", such as the notice of a newly stored message).
:meth:`Effects.carry_out` runs all writes of a plan in one transaction (one disk sync; on
the store's thread unless commits are fast, see :mod:`._store`), then the steps on the loop in
the engine's order: nothing leaves the node, and nothing is shown as sent or delivered, before
the writes it depends on are on disk. Drops and rejections are only counted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from meshchat.account.carbon import Direction
from meshchat.crypto.channel import PUBLIC_CHANNEL
from meshchat.engine import Output
from meshchat.engine._files import is_file_frame
from meshchat.errors import MeshchatError
from meshchat.events import (
    AttemptMade,
    CarbonReceived,
    DeviceListChanged,
    DeviceListUpdated,
    ErasedArrived,
    FileArrived,
    GroupChanged,
    GroupStateUpdated,
    HistoryReceived,
    LinkProgress,
    MessageDelivered,
    MessageExpired,
    MessageReceived,
    MessageRejected,
    MessageSent,
    PeerAnnounced,
    PrekeysUpdated,
    SessionUpdated,
    SyncArrived,
)
from meshchat.node._devices import ApplyDevices, apply_devices
from meshchat.node._types import (
    GROUP_STATE,
    PREKEY_STATE,
    SESSION_STATE,
    NodeNotice,
)
from meshchat.router.actions import Carry, Drop, Transmit, Uncarry
from meshchat.store import Store
from meshchat.store.records import CarriedPacket, Message, MessageState, Trust

if TYPE_CHECKING:
    from meshchat.node import Node

__all__ = ["Effects", "Plan", "name_in"]

log = logging.getLogger(__name__)
T = TypeVar("T")


# -- writes (run inside one transaction, see Effects.carry_out) ---------------------------


@dataclass(frozen=True, slots=True)
class SaveReceived:
    event: MessageReceived
    now: int


@dataclass(frozen=True, slots=True)
class SaveCarbon:
    """A copy of a direct message from another device of mine."""

    event: CarbonReceived
    name: str
    now: int


@dataclass(frozen=True, slots=True)
class SaveCarried:
    carried: CarriedPacket


@dataclass(frozen=True, slots=True)
class DropCarried:
    packet_id: bytes


@dataclass(frozen=True, slots=True)
class SetState:
    """An outgoing message's state; with ``device``, what happened to that device's copy
    (``last``: no other copy is in flight, so the outbox row ends)."""

    msg_id: bytes
    state: MessageState
    now: int
    device: bytes = b""
    last: bool = True


@dataclass(frozen=True, slots=True)
class RecordAttempt:
    msg_id: bytes
    attempts: int
    next_try_ms: int
    device: bytes = b""
    now: int = 0


@dataclass(frozen=True, slots=True)
class RememberPeer:
    event: PeerAnnounced
    now: int


@dataclass(frozen=True, slots=True)
class Tombstone:
    """A blocked sender's message: not stored, only tombstoned, so that messages naming it
    do not wait for it and it is not asked for or stored when offered again."""

    conversation: str
    msg_id: bytes
    now: int


@dataclass(frozen=True, slots=True)
class PutState:
    kind: str
    key: bytes
    blob: bytes


@dataclass(frozen=True, slots=True)
class PutDeviceList:
    account_id: bytes
    blob: bytes


Write = (
    SaveReceived
    | SaveCarbon
    | SaveCarried
    | DropCarried
    | SetState
    | RecordAttempt
    | RememberPeer
    | PutState
    | Tombstone
    | PutDeviceList
    | ApplyDevices
)


# -- after-commit steps (run on the loop, in the engine's order) ---------------------------


@dataclass(frozen=True, slots=True)
class Notify:
    notice: NodeNotice


@dataclass(frozen=True, slots=True)
class OfferToInternet:
    frame: bytes


@dataclass(frozen=True, slots=True)
class FromWrite:
    """The step that ``writes[index]`` produced (None: nothing to do)."""

    index: int


Step = Transmit | Notify | OfferToInternet | FromWrite


@dataclass(slots=True)
class Plan:
    """Effects to carry out with one commit: ``writes`` first, then ``after`` in order."""

    writes: list[Write] = field(default_factory=list)
    after: list[Step] = field(default_factory=list)


def name_in(store: Store, sign_key: bytes) -> str:
    """How to show the sender with this signing key (on the store thread)."""
    contact = store.contact_by_sign_key(sign_key)
    if contact is not None:
        if contact.trust is Trust.COMPROMISED:
            return f"{contact.name} (!! compromised keys)"
        return contact.name
    peer = store.peer_by_sign_key(sign_key)
    if peer is not None and peer[1]:
        return f"~{peer[1]}"
    return sign_key.hex()[:8]


def _log_received(event: MessageReceived) -> None:
    # Logs may be kept on disk (the UI's tui.log): name no contact and no private
    # channel, only the public channel.
    where = event.conversation
    if where != PUBLIC_CHANNEL:
        where = "dm" if where.startswith("dm:") else "channel"
    # The hop count is the relays' unsigned claim (any relay may rewrite it): the log says so.
    log.info(
        "received %s in %s, relays claim %d hops (unsigned)",
        event.msg_id.hex()[:12],
        where,
        event.hops + 1,
    )


def save_carbon(store: Store, event: CarbonReceived, me: str, now: int) -> Message | None:
    """Store a carbon: a message I sent from another device as my own (named ``me``), one
    I received there as received from its sender."""
    carbon, body = event.carbon, event.carbon.body
    sent_ms = body.sent_ms or now
    if carbon.direction is Direction.SENT:
        return store.add_own_copy(
            carbon.conversation, body.msg_id, carbon.sender, me, body.text, sent_ms, now,
            parents=body.parents, loose=body.loose,
        )  # fmt: skip
    contact = store.get_contact(carbon.sender)
    name = contact.name if contact is not None else carbon.sender.hex()[:8]
    return store.add_incoming(
        carbon.conversation, body.msg_id, carbon.sender, name, body.text, sent_ms, now,
        parents=body.parents, loose=body.loose,
    )  # fmt: skip


def apply_write(store: Store, write: Write) -> Step | None:
    """Carry out one write (on the store thread); returns its after-commit step."""
    match write:
        case SaveReceived(event, now):
            message = store.add_incoming(
                event.conversation,
                event.msg_id,
                event.sender.node_id if event.sender else event.sender_key,
                name_in(store, event.sender_key),
                event.text,
                event.sent_ms,
                now,
                parents=event.parents,
                loose=event.loose,
            )
            if message is None:
                return None  # had it already, or deleted it
            _log_received(event)
            return Notify(NodeNotice("message", message=message))
        case SaveCarbon(event, name, now):
            message = save_carbon(store, event, name, now)
            if message is None:
                return None  # had it already (a retry, or sync brought it), or deleted it
            return Notify(NodeNotice("message", message=message))
        case SaveCarried(carried):
            store.carry(carried)
            return OfferToInternet(carried.frame)
        case DropCarried(packet_id):
            store.drop_carried(packet_id)
        case SetState(msg_id, state, now, device, last):
            if device:
                store.set_delivery(msg_id, device, state, now, last=last)
                if state is MessageState.FAILED and not last:
                    return None  # other devices' copies are still tried
            store.set_state(msg_id, state, now, keep_outbox=not last)
            return Notify(NodeNotice("state", msg_id=msg_id, state=state))
        case RecordAttempt(msg_id, attempts, next_try_ms, device, now):
            store.record_attempt(msg_id, attempts, next_try_ms)
            if device:
                store.record_copy_attempt(msg_id, device, attempts, next_try_ms, now)
        case RememberPeer(event, now):
            who = event.identity
            store.remember_peer(who.node_id, who.sign_public, who.box_public, event.name, now)
            return Notify(NodeNotice("peer"))
        case PutState(kind, key, blob):
            store.put_state(kind, key, blob)
        case Tombstone(conversation, msg_id, now):
            store.delete_messages(conversation, [msg_id], now_ms=now)
        case PutDeviceList(account_id, blob):
            store.put_device_list(account_id, blob)
        case ApplyDevices():
            return Notify(NodeNotice("devices", devices=apply_devices(store, write)))
    return None


def apply_writes(
    store: Store, writes: list[Write], first: Callable[[], T] | None = None
) -> tuple[T | None, list[Step | None]]:
    """``first`` (if any), then the writes, in one transaction; ``first`` failing undoes all.
    Any other failing write is logged and skipped: the others still commit."""
    with store.transaction():
        head = first() if first is not None else None
        steps: list[Step | None] = []
        for write in writes:
            try:
                steps.append(apply_write(store, write))
            except MeshchatError:
                log.exception("a store write failed (continuing)")
                steps.append(None)
        return head, steps


class Effects:
    """Plans engine outputs as effects and carries them out for one node."""

    def __init__(self, node: Node) -> None:
        self.node = node

    async def run(self, outputs: list[Output]) -> None:
        """Carry out engine outputs: every store write first, in one commit, then the rest."""
        plan = Plan()
        self.plan(plan, outputs)
        await self.carry_out(plan)

    def plan(self, plan: Plan, outputs: list[Output]) -> None:
        """Add the writes and after-commit steps of ``outputs`` to ``plan``."""
        node = self.node
        now = node.clock()
        for out in outputs:
            write: Write | None = None
            match out:
                case Transmit():
                    plan.after.append(out)
                case Drop(reason=reason):
                    node.count(f"drop.{reason}")
                case MessageRejected(reason=reason, packet_id=packet_id):
                    log.info("rejected packet %s: %s", packet_id.hex()[:12], reason)
                    node.count("rejected")
                case MessageReceived() if node.blocklist.blocks(out.sender_key):
                    node.count("drop.blocked")  # never stored, never shown
                    write = Tombstone(out.conversation, out.msg_id, now)
                case MessageReceived():
                    node.catchup.received(out, now)
                    write = SaveReceived(out, now)
                case CarbonReceived():
                    node.sync.met(out.device)
                    write = SaveCarbon(out, node.name, now)
                case SyncArrived():
                    node.sync.arrived(out)
                case ErasedArrived():
                    node.sync.erased_there(out)
                case HistoryReceived():
                    node.catchup.requested(out)
                case FileArrived():
                    self.plan(plan, node.files.arrived(out))
                case Carry(packet=packet, frame=frame, expires_ms=expires_ms):
                    dest = packet.destination.value
                    write = SaveCarried(CarriedPacket(packet.packet_id, frame, dest, expires_ms))
                case Uncarry(packet_id=packet_id):
                    write = DropCarried(packet_id)
                case MessageSent(msg_id=msg_id, device=device):
                    write = SetState(msg_id, MessageState.SENT, now, device, last=False)
                case MessageDelivered(msg_id=msg_id, device=device, last=last):
                    write = SetState(msg_id, MessageState.DELIVERED, now, device, last)
                case MessageExpired(msg_id=msg_id, device=device, last=last):
                    write = SetState(msg_id, MessageState.FAILED, now, device, last)
                case AttemptMade(msg_id, attempts, next_try_ms, device):
                    write = RecordAttempt(msg_id, attempts, next_try_ms, device, now)
                case PeerAnnounced():
                    node.sync.met(out.identity)
                    node.neighbourhood.announced(out, now)
                    write = RememberPeer(out, now)
                case SessionUpdated(peer_node_id=peer_node_id, blob=blob):
                    write = PutState(SESSION_STATE, peer_node_id, blob)
                case PrekeysUpdated(blob=blob):
                    write = PutState(PREKEY_STATE, b"", blob)
                case GroupStateUpdated(key=key, blob=blob):
                    write = PutState(GROUP_STATE, key, blob)
                case DeviceListUpdated(account_id=account_id, blob=blob):
                    write = PutDeviceList(account_id, blob)
                case DeviceListChanged(change=change):
                    own = node.engine.accounts.account_id
                    if change.account_id == own:
                        for new in change.added:
                            if new != node.identity.public:
                                node.sync.met(new)  # a new device of mine: my history
                    write = ApplyDevices(out, own, node.identity.public, now)
                case LinkProgress():
                    plan.after.append(Notify(NodeNotice("link", link=out)))
                case GroupChanged(group_id=group_id, what=what):
                    log.info("group %s: %s", group_id.hex()[:8], what)
                    plan.after.append(Notify(NodeNotice("group", group=out)))
            if write is not None:
                plan.after.append(FromWrite(len(plan.writes)))
                plan.writes.append(write)

    async def carry_out(
        self,
        plan: Plan,
        first: Callable[[], T] | None = None,
        then: Callable[[T], None] | None = None,
    ) -> T | None:
        """Commit the plan's writes (one transaction), then run its steps in order.

        ``first`` is a write that must succeed: it runs before the others in the same
        transaction, and if it raises nothing of the plan is committed or carried out (the
        error propagates). ``then`` gets its result after the commit, before the steps.
        """
        node = self.node
        head: T | None = None
        steps: list[Step | None] = []
        if first is not None or plan.writes:
            head, steps = await node.store.quick(apply_writes, node.store.store, plan.writes, first)
        if first is not None and then is not None:
            then(head)  # type: ignore[arg-type]
        for step in plan.after:
            self._step(steps[step.index] if isinstance(step, FromWrite) else step)
        return head

    def _step(self, step: Step | None) -> None:
        node = self.node
        match step:
            case Transmit(frame=frame, links=links):
                bulk = is_file_frame(frame)  # after text and acks
                for link_id in links:
                    link = node.links.get(link_id)
                    if link is None or not (link.send_bulk(frame) if bulk else link.send(frame)):
                        node.count("drop.link-send")
            case Notify(notice):
                if notice.link is not None:
                    node.linking.progress(notice.link)
                if notice.message is not None and notice.message.held:
                    node.count("history.held")  # stored, not shown until its parents are
                node.notify(notice)
            case OfferToInternet(frame):
                node.neighbourhood.offer_to_internet(frame)
            case FromWrite() | None:
                pass
