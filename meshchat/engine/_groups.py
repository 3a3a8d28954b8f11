"""The engine's private-group glue: the group book joined to sessions, outbox and router.

:class:`GroupGlue` belongs to one :class:`~meshchat.engine.Engine`. It gives the group book
(:mod:`meshchat.group.book`) what it needs from the rest of the engine: members' sessions (so
control parts can be sealed to them), the outbox (control parts are retried until acked), and
the router's set of addresses (a group's addresses are channels to it). It also opens group
messages and control parts, and keeps the set of distrusted node ids that get no group keys.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from meshchat.engine._receiving import message_received
from meshchat.errors import CryptoError, PacketError, UsageError
from meshchat.events import HistoryReceived, MessageRejected
from meshchat.group.book import ControlSend, Group, KeyPending, group_conversation
from meshchat.identity import PublicIdentity, SignedPrekey
from meshchat.router.actions import Transmit
from meshchat.router.outbox import OutboxItem, backoff_ms
from meshchat.wire.packet import Destination, Packet, Suite
from meshchat.wire.payloads import ControlPart, HistoryBody, decode_shared_body

if TYPE_CHECKING:
    from meshchat.engine import Engine, Output

__all__ = ["GroupGlue"]


class GroupGlue:
    """Private groups inside one engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._group_addresses: set[bytes] = set()
        #: node ids whose keys the user marked compromised: no group keys go to them
        self._distrusted: set[bytes] = set()

    def load(self, blobs: dict[bytes, bytes], now_ms: int) -> list[bytes]:
        """Restore stored group state (call after :meth:`load_sessions`); returns the keys of
        blobs that could not be read. Control parts not yet acked go back in the outbox."""
        bad = self.engine.groups.load(blobs)
        for group in self.engine.groups.groups.values():
            self.know_members(group, now_ms)
        for send in list(self.engine.groups.outgoing.values()):
            self._queue_control(send, now_ms)
        self.sync_addresses()
        return bad

    def distrust(self, node_id: bytes) -> None:
        """The user marked these keys compromised: send them no group keys from now on
        (parts already queued for them are dropped). Removing them from a group stays the
        admin's decision: a re-key without them is one ``change_group`` away."""
        self._distrusted.add(node_id)
        for item in self.engine.outbox.items():
            if item.is_control and item.recipient is not None and item.recipient.node_id == node_id:
                self.engine._end_copy(item)

    def know_members(self, group: Group, now_ms: int) -> None:
        if group.removed:
            return
        for member in group.roster.members:
            if member != self.engine.identity.public and member.node_id not in self._distrusted:
                self.engine.direct.add_peer(member)

    def sync_addresses(self) -> None:
        current = self.engine.groups.addresses
        self.engine.router.channels.difference_update(self._group_addresses - current)
        self.engine.router.channels.update(current)
        self._group_addresses = current

    def _prekeys_of(self, members: Iterable[PublicIdentity]) -> dict[bytes, SignedPrekey]:
        known: dict[bytes, SignedPrekey] = {}
        for member in members:
            record = self.engine.direct.records.get(member.node_id)
            if record is not None and record.prekey is not None:
                known[member.node_id] = record.prekey
        return known

    def create(
        self, name: str, members: list[PublicIdentity], now_ms: int
    ) -> tuple[Group, list[Output]]:
        """A new private group with this node as admin; members are sent its keys."""
        for member in members:
            self._check_sealable(member)
        group, sends = self.engine.groups.create(name, members, self._prekeys_of(members), now_ms)
        return group, self._group_changed(sends, now_ms)

    def change(
        self,
        group_id: bytes,
        now_ms: int,
        *,
        add: Sequence[PublicIdentity] = (),
        remove: Sequence[bytes] = (),
        admins: set[bytes] | None = None,
    ) -> list[Output]:
        """Add or remove members (this node must be an admin): the group is re-keyed."""
        for member in add:
            self._check_sealable(member)
        held = self.engine.groups.groups.get(group_id)
        everyone = [*(held.roster.members if held else ()), *add]
        sends = self.engine.groups.change(
            group_id, list(add), list(remove), self._prekeys_of(everyone), now_ms, admins=admins
        )
        return self._group_changed(sends, now_ms)

    def add_devices(
        self, group_id: bytes, devices: Sequence[PublicIdentity], now_ms: int
    ) -> list[Output]:
        """Add devices of an account already in the group (this node must be an admin): a
        re-key like :meth:`change`, but a device whose prekey is not known yet is no reason
        to refuse: its group keys wait for a session like any control part."""
        held = self.engine.groups.groups.get(group_id)
        everyone = [*(held.roster.members if held else ()), *devices]
        sends = self.engine.groups.change(
            group_id, list(devices), [], self._prekeys_of(everyone), now_ms
        )
        return self._group_changed(sends, now_ms)

    def leave(self, group_id: bytes, now_ms: int) -> list[Output]:
        """Leave a group: its admins are told (their nodes re-key it), our keys erased."""
        sends, notice = self.engine.groups.leave(group_id, now_ms)
        return [*self._group_changed(sends, now_ms), notice]

    def _check_sealable(self, member: PublicIdentity) -> None:
        if member != self.engine.identity.public and not self.engine.direct.can_seal(member):
            raise UsageError(
                f"no signed prekey for {member.short_id}: add their current contact card first"
            )

    def _group_changed(self, sends: list[ControlSend], now_ms: int) -> list[Output]:
        for group in self.engine.groups.groups.values():
            self.know_members(group, now_ms)
        self.sync_addresses()
        out = self.engine.flush()
        for send in sends:
            out.extend(self._queue_control(send, now_ms))
        return out

    def queue(self, sends: list[ControlSend], now_ms: int) -> list[Output]:
        """Queue control parts another part of the engine made (account blobs)."""
        out = self.engine.flush()
        for send in sends:
            out.extend(self._queue_control(send, now_ms))
        return out

    def _queue_control(self, send: ControlSend, now_ms: int) -> list[Output]:
        if send.recipient.node_id in self._distrusted:
            self.engine.groups.control_done(send.part.msg_id)
            return []
        item = OutboxItem(
            msg_id=send.part.msg_id,
            destination=Destination.node(send.recipient.node_id),
            text="",
            created_ms=now_ms,
            expires_ms=send.expires_ms,
            recipient=send.recipient,
            next_try_ms=now_ms,
            body=send.part.encode(),
        )
        self.engine.outbox.add(item)
        return self.engine.sending.attempt(item, now_ms)

    def attempt_control(self, item: OutboxItem, now_ms: int) -> list[Output]:
        """Send a control part: like a direct message, but it waits (rather than fails) for
        a peer's prekey, and reports no message events (the group book tracks it)."""
        if item.recipient is None:
            raise UsageError("a control part has no recipient")
        item.attempts += 1
        item.next_try_ms = now_ms + backoff_ms(item.attempts, self.engine.rng)
        if not self.engine.direct.can_seal(item.recipient):
            return []
        try:
            packet = self.engine.sending.build(item, now_ms)
        except (UsageError, CryptoError, PacketError):
            self.engine._end(item.msg_id)
            return self.engine.flush()
        out: list[Output] = self.engine.flush()
        actions = self.engine.router.originate(packet, now_ms)
        out.extend(actions)
        if any(isinstance(a, Transmit) for a in actions):
            self.engine.outbox.record_packet(item, packet.packet_id)
            item.transmitted = True
        return out

    def on_message(self, packet: Packet, now_ms: int) -> list[Output]:
        if packet.suite is not Suite.GROUP:
            return [MessageRejected("wrong suite for a group address", packet.packet_id, None)]
        try:
            group, sender, plaintext = self.engine.groups.open(packet)
        except KeyPending as exc:
            return [*self.engine.flush(), MessageRejected(str(exc), packet.packet_id, None)]
        out = self.engine.flush()
        body = decode_shared_body(plaintext)
        conversation = group_conversation(group.group_id)
        if isinstance(body, HistoryBody):
            out.append(HistoryReceived(conversation, sender.sign_public, body.heads, body.wants))
        else:
            out.append(message_received(conversation, body, sender, sender.sign_public, packet))
        return out

    def on_control(
        self, sender: PublicIdentity, part: ControlPart, now_ms: int, packet_id: bytes
    ) -> tuple[list[Output], bool]:
        """Take a control part; returns the outputs and whether to ack the part (False: it
        was not kept, or its blob not applied)."""
        outcome = self.engine.groups.on_part(
            sender, part, now_ms, known=self.engine.direct.knows(sender.node_id)
        )
        for msg_id in outcome.cancel:
            self.engine._end(msg_id)  # the recipient said it did not apply their blob
        for member, prekey in outcome.learned:
            self.engine.direct.add_peer(member, prekey)
        out: list[Output] = [*self._group_changed(outcome.sends, now_ms), *outcome.notices]
        if outcome.account_blob is not None:
            more, outcome.ack = self.engine.account_glue.on_blob(
                sender, outcome.account_blob, now_ms, packet_id
            )
            out.extend(more)
        removals: dict[bytes, list[bytes]] = {}
        for group_id, node_id in outcome.to_remove:
            removals.setdefault(group_id, []).append(node_id)
        for group_id, members in removals.items():
            try:
                out.extend(self.change(group_id, now_ms, remove=members))
            except UsageError as exc:
                out.append(MessageRejected(f"group removal: {exc}", part.msg_id, None))
        for packet in self.engine.groups.take_waiting():
            try:
                out.extend(self.on_message(packet, now_ms))
            except (PacketError, CryptoError) as exc:
                out.append(MessageRejected(str(exc), packet.packet_id, None))
        if outcome.rejected is not None:
            out.append(MessageRejected(outcome.rejected, packet_id, None))
        out.extend(self.engine.flush())
        return out, outcome.ack
