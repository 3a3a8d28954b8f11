"""The engine's linking glue: link exchanges joined to sessions, the outbox and the account book.

:class:`LinkGlue` belongs to one :class:`~meshchat.engine.Engine`. It holds at most one
exchange on each side (a code this device showed: :class:`~meshchat.account.linking.Inviter`;
a code it was given: :class:`~meshchat.account.linking.Joiner`); a new one replaces the old.
Link messages travel as control blobs (kinds 21 to 25, :mod:`meshchat.account.link`) in the
pairwise sealed session, cut into control parts that are retried until acked like group
parts; the new device opens that session to the existing one from its announce (its signed
prekey), as a direct message to an announced neighbour does.

Every step comes out as a :class:`~meshchat.events.LinkProgress` event for the faces. When the
person on the existing device says yes, it puts the new device on its list
(:meth:`AccountBook.add_device`) and sends the new list in the accept; the new device adopts
that list (:meth:`AccountBook.adopt`) once its person said yes too. Both then hold each other
as own devices, and the lists come out as :class:`~meshchat.events.DeviceListUpdated` to store.
Exchanges are kept in memory only: a restart ends them (the person starts again).
"""

from __future__ import annotations

import dataclasses
import os
from typing import TYPE_CHECKING

from meshchat.account.book import ListChange
from meshchat.account.devicelist import DeviceEntry, DeviceList
from meshchat.account.link import (
    LINK_TTL_MS,
    LinkAccept,
    LinkCode,
    LinkMessage,
    LinkNonce,
    LinkRefuse,
    LinkRequest,
    LinkReveal,
    RefuseReason,
    decode_link,
)
from meshchat.account.linking import Inviter, Joiner, LinkState, answer_matches
from meshchat.errors import (
    DeviceListError,
    LinkError,
    LinkReason,
    MeshchatError,
    PacketError,
    UsageError,
)
from meshchat.events import LinkProgress, MessageRejected
from meshchat.group.control import split
from meshchat.identity import PublicIdentity, SignedPrekey
from meshchat.router.outbox import OutboxItem
from meshchat.wire.packet import Destination
from meshchat.wire.payloads import MSG_ID_SIZE, ControlPart

if TYPE_CHECKING:
    from meshchat.engine import Engine, Output

__all__ = ["EXISTING", "MAX_REFUSALS", "NEW", "LinkGlue"]

#: refusals of requests sent in a minute at most
MAX_REFUSALS = 8
EXISTING = "existing"
NEW = "new"


class LinkGlue:
    """Linking devices inside one engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.inviter: Inviter | None = None
        self.joiner: Joiner | None = None
        #: when refusals of requests were sent, the last minute's
        self._refused: list[int] = []

    # -- the existing device ---------------------------------------------------------------

    def start(self, now_ms: int) -> Inviter:
        """Make a new one-time code (the previous one, if any, ends)."""
        self.inviter = Inviter.start(self.engine.identity.public, now_ms)
        return self.inviter

    # -- the new device --------------------------------------------------------------------

    def join(
        self,
        code: LinkCode,
        existing: PublicIdentity,
        prekey: SignedPrekey | None,
        device_name: str,
        now_ms: int,
    ) -> list[Output]:
        """Ask the device ``existing`` (heard announcing itself, with its signed ``prekey``)
        to link this one under ``device_name``."""
        me = self.engine.identity.public
        if existing == me:
            raise UsageError("that code was made on this device")
        if len(self.engine.accounts.own.devices) > 1:
            raise UsageError("this device is on an account with other devices already")
        joiner = Joiner(me, device_name, code, now_ms)
        request = joiner.request(existing)
        self.joiner = joiner
        out = self.engine.meet(existing, prekey, now_ms)
        out.extend(self._send(existing, request.encode(), now_ms))
        out.append(self._progress(NEW, joiner))
        return out

    # -- the person's answer ---------------------------------------------------------------

    def answer(self, role: str, answer: str, now_ms: int) -> list[Output]:
        """The person's answer on this device (``y``, ``n``, or the other device's string)
        to the exchange of ``role`` (:data:`EXISTING` or :data:`NEW`)."""
        if role == EXISTING:
            return self._answer_existing(answer, now_ms)
        joiner = self.joiner
        if joiner is None or joiner.state is not LinkState.CONFIRMING:
            raise UsageError("no link waits for an answer on this device")
        listed, refuse = joiner.confirm(answer)
        out: list[Output] = []
        if refuse is not None and joiner.existing is not None:
            out.extend(self._send(joiner.existing, refuse.encode(), now_ms))
        if listed is not None:
            out.extend(self._adopt(joiner, listed, now_ms))
        out.append(self._progress(NEW, joiner))
        return out

    def _answer_existing(self, answer: str, now_ms: int) -> list[Output]:
        inviter = self.inviter
        if inviter is None or inviter.state is not LinkState.CONFIRMING or inviter.peer is None:
            raise UsageError("no link waits for an answer on this device")
        peer = inviter.peer
        if not answer_matches(inviter.string, answer):
            refuse = inviter.decline()
            return [*self._send(peer, refuse.encode(), now_ms), self._progress(EXISTING, inviter)]
        accounts = self.engine.accounts
        entry = DeviceEntry.of(peer, inviter.peer_name)
        # checked (not expired) before the list changes
        if inviter.expired(now_ms):
            inviter.state, inviter.ended = LinkState.ENDED, LinkReason.EXPIRED
            return [self._progress(EXISTING, inviter)]
        try:
            new = accounts.add_device(entry, self.engine.identity)
        except DeviceListError as exc:
            refuse = inviter.decline()
            inviter.ended = LinkReason.BAD_LIST
            out: list[Output] = [MessageRejected(f"link: {exc}", bytes(16), None)]
            out.extend(self._send(peer, refuse.encode(), now_ms))
            return [*out, self._progress(EXISTING, inviter)]
        accept = inviter.accept(new.encode(), now_ms)
        change = ListChange(new.account_id, new.version - 1, new, (peer,), (), True)
        # the new device becomes an own device; every contact and own device gets the list
        out = self.engine.account_glue.apply(change, now_ms)
        out.extend(self._send(peer, accept.encode(), now_ms))
        out.append(self._progress(EXISTING, inviter))
        return out

    def _adopt(self, joiner: Joiner, listed: bytes, now_ms: int) -> list[Output]:
        existing = joiner.existing
        if existing is None:
            raise UsageError("no device to link to")
        try:
            new = DeviceList.decode(listed)
            if new.device(joiner.me.node_id) is None or not new.has_sign_key(existing.sign_public):
                raise LinkError(LinkReason.BAD_LIST, "the list does not hold both devices")
            change = self.engine.accounts.adopt(new, existing)
        except (MeshchatError, ValueError) as exc:
            refuse = joiner.fail(LinkReason.BAD_LIST)
            rejected = MessageRejected(f"link: {exc}", bytes(16), None)
            return [rejected, *self._send(existing, refuse.encode(), now_ms)]
        joiner.linked()
        # the account's other devices become own devices; contacts and they get the list
        return self.engine.account_glue.apply(change, now_ms)

    # -- link messages in ------------------------------------------------------------------

    def on_blob(self, sender: PublicIdentity, blob: bytes, now_ms: int) -> list[Output]:
        """A joined link blob from ``sender`` (the session's authenticated peer)."""
        try:
            message = decode_link(blob)
        except PacketError as exc:
            return [MessageRejected(f"link: {exc}", bytes(16), None)]
        try:
            return self._on(sender, message, now_ms)
        except (LinkError, DeviceListError) as exc:
            out: list[Output] = [MessageRejected(f"link: {exc}", bytes(16), None)]
            if isinstance(exc, LinkError):
                out.extend(self._after_error(message, exc))
                if isinstance(message, LinkRequest):
                    out.extend(self._refuse(sender, exc.reason, now_ms))
            return out

    def _refuse(self, sender: PublicIdentity, reason: LinkReason, now_ms: int) -> list[Output]:
        """Tell a device whose request was refused why (used, expired, wrong code), so its
        person need not wait: at most :data:`MAX_REFUSALS` a minute, as each is a sealed
        message retried until acked."""
        self._refused = [t for t in self._refused if t > now_ms - 60_000]
        if len(self._refused) >= MAX_REFUSALS:
            return []
        self._refused.append(now_ms)
        return self._send(sender, LinkRefuse(RefuseReason.of(reason)).encode(), now_ms)

    def _after_error(self, message: LinkMessage, exc: LinkError) -> list[Output]:
        """Faces hear of a wrong attempt while the code waits, or of an exchange it ended;
        not of strangers' messages that change nothing (a second request, say)."""
        inviter, joiner = self.inviter, self.joiner
        if isinstance(message, LinkRequest | LinkReveal) and inviter is not None:
            if inviter.state in (LinkState.WAITING, LinkState.ENDED):
                progress = self._progress(EXISTING, inviter)
                return [dataclasses.replace(progress, reason=exc.reason.value)]
        elif joiner is not None and joiner.state is LinkState.ENDED:
            return [self._progress(NEW, joiner)]
        return []

    def _on(self, sender: PublicIdentity, message: LinkMessage, now_ms: int) -> list[Output]:
        match message:
            case LinkRequest():
                inviter = self.inviter
                if inviter is None:
                    raise LinkError(LinkReason.BAD_CODE, "no link code is shown here")
                nonce = inviter.on_request(sender, message, now_ms)
                # the new device is a stranger until the list names it: answer in its session
                return [
                    *self._send(sender, nonce.encode(), now_ms),
                    self._progress(EXISTING, inviter),
                ]
            case LinkReveal():
                inviter = self._inviter_of(sender)
                inviter.on_reveal(sender, message, now_ms)
                return [self._progress(EXISTING, inviter)]
            case LinkNonce():
                joiner = self._joiner_of(sender)
                reveal, _ = joiner.on_nonce(sender, message)
                return [*self._send(sender, reveal.encode(), now_ms), self._progress(NEW, joiner)]
            case LinkAccept():
                joiner = self._joiner_of(sender)
                listed = joiner.on_accept(sender, message)
                out = [] if listed is None else self._adopt(joiner, listed, now_ms)
                return [*out, self._progress(NEW, joiner)]
            case LinkRefuse():
                return self._on_refuse(sender, message, now_ms)
        raise LinkError(LinkReason.OUT_OF_ORDER, "unknown link message")

    def _on_refuse(self, sender: PublicIdentity, message: LinkRefuse, now_ms: int) -> list[Output]:
        joiner = self.joiner
        if (
            joiner is not None
            and joiner.existing == sender
            and joiner.state is not (LinkState.LINKED)
        ):
            joiner.on_refuse(sender, message)
            return [self._progress(NEW, joiner)]
        inviter = self._inviter_of(sender)
        accepted = inviter.state is LinkState.ACCEPTED
        inviter.on_refuse(sender, message)
        out: list[Output] = []
        if accepted and inviter.peer is not None:
            # the new device's person said no after ours said yes: take it off the list
            # again (everyone who got the list is told; its contact row goes)
            out.extend(self.engine.revoke_device(inviter.peer.node_id, now_ms))
        out.append(self._progress(EXISTING, inviter))
        return out

    def _inviter_of(self, sender: PublicIdentity) -> Inviter:
        inviter = self.inviter
        if inviter is None or inviter.peer != sender:
            raise LinkError(LinkReason.OUT_OF_ORDER, "a link message from another device")
        return inviter

    def _joiner_of(self, sender: PublicIdentity) -> Joiner:
        joiner = self.joiner
        if joiner is None or joiner.existing != sender:
            raise LinkError(LinkReason.OUT_OF_ORDER, "a link message from another device")
        return joiner

    # -- out -------------------------------------------------------------------------------

    def _send(self, recipient: PublicIdentity, blob: bytes, now_ms: int) -> list[Output]:
        """Queue a link blob for ``recipient`` as control parts, retried until acked for as
        long as a code lives."""
        engine = self.engine
        out: list[Output] = []
        for blob_id, index, count, chunk in split(blob):
            part = ControlPart(os.urandom(MSG_ID_SIZE), blob_id, index, count, chunk)
            item = OutboxItem(
                msg_id=part.msg_id,
                destination=Destination.node(recipient.node_id),
                text="",
                created_ms=now_ms,
                expires_ms=now_ms + LINK_TTL_MS,
                recipient=recipient,
                next_try_ms=now_ms,
                body=part.encode(),
            )
            engine.outbox.add(item)
            out.extend(engine.sending.attempt(item, now_ms))
        return out

    @staticmethod
    def _progress(role: str, side: Inviter | Joiner) -> LinkProgress:
        if isinstance(side, Inviter):
            peer, name = side.peer, side.peer_name
        else:
            peer, name = side.existing, ""
        reason = side.ended.value if side.ended is not None else None
        return LinkProgress(role, side.state.value, side.string, peer, name, reason)

    def status(self, role: str) -> LinkProgress | None:
        """Where the exchange of ``role`` stands (None: none on this device)."""
        side: Inviter | Joiner | None = self.inviter if role == EXISTING else self.joiner
        return None if side is None else self._progress(role, side)
