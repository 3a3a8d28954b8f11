"""The two sides of a link exchange as state machines (pure; messages in :mod:`.link`).

Theory of operation. The existing device holds an :class:`Inviter` per code it showed, the new
device a :class:`Joiner` per code it was given. Each is fed the link messages its peer sends
(already opened from a sealed session, so the sender's keys are authenticated) and the user's
answer, and returns the message to send back. Every step is in this table; anything else raises
:class:`~meshchat.errors.LinkError` (``OUT_OF_ORDER``) and changes nothing.

=========  ==================  ====================  ===============  ==========================
side       state               input                 next state       sends
=========  ==================  ====================  ===============  ==========================
inviter    WAITING             request, MAC good     NONCE_SENT       nonce
inviter    WAITING             request, MAC bad      WAITING / ENDED  (nothing; ENDED after
                                                                      MAX_BAD_REQUESTS)
inviter    any but WAITING     request               same             (nothing: USED)
inviter    NONCE_SENT          reveal, opens commit  CONFIRMING       (shows the string)
inviter    CONFIRMING          user yes              ACCEPTED         accept (the new list)
inviter    CONFIRMING          user no               ENDED            refuse
inviter    any                 refuse                ENDED            (nothing)
joiner     READY               start(existing)       REQUESTED        request
joiner     REQUESTED           nonce, MAC good       CONFIRMING       reveal (shows the string)
joiner     CONFIRMING          accept, MAC good      CONFIRMING       (kept until the user
                                                                      answers)
joiner     CONFIRMING          user yes + accept     LINKED           (the list is adopted)
joiner     CONFIRMING          user no               ENDED            refuse
joiner     any                 refuse                ENDED            (nothing)
=========  ==================  ====================  ===============  ==========================

A code ends :data:`~.link.LINK_TTL_MS` after it was made, whatever its state (an inviter past
its time answers nothing, and its accept is not sent).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from enum import Enum

from meshchat.account.link import (
    LINK_TTL_MS,
    MAX_BAD_REQUESTS,
    NONCE_SIZE,
    LinkAccept,
    LinkCode,
    LinkNonce,
    LinkRefuse,
    LinkRequest,
    LinkReveal,
    RefuseReason,
    Transcript,
    commitment,
    confirmation,
    normalise_confirmation,
)
from meshchat.errors import LinkError, LinkReason
from meshchat.identity import PublicIdentity

__all__ = ["Inviter", "Joiner", "LinkState", "answer_matches"]


class LinkState(Enum):
    WAITING = "waiting"  #: inviter: the code is shown, no request yet
    READY = "ready"  #: joiner: the code is read, the existing device not yet found
    REQUESTED = "requested"  #: joiner: the request is sent
    NONCE_SENT = "nonce-sent"  #: inviter: waiting for the new device's reveal
    CONFIRMING = "confirming"  #: both: the string is shown, waiting for the person
    ACCEPTED = "accepted"  #: inviter: the accept is sent
    LINKED = "linked"  #: joiner: the list is adopted
    ENDED = "ended"  #: refused, declined, expired or withdrawn


def answer_matches(shown: str, answer: str) -> bool:
    """Whether the person's answer confirms the string ``shown``: ``y``/``yes``, or the
    string itself as the other device shows it (spaces and dashes ignored)."""
    text = answer.strip().lower()
    if text in ("y", "yes"):
        return True
    return bool(normalise_confirmation(text)) and normalise_confirmation(text) == shown


def _out_of_order(what: str) -> LinkError:
    return LinkError(LinkReason.OUT_OF_ORDER, f"{what} does not fit the exchange")


@dataclass(slots=True)
class Inviter:
    """The existing device's side of one code."""

    me: PublicIdentity
    code: LinkCode
    created_ms: int
    state: LinkState = LinkState.WAITING
    bad_requests: int = 0
    peer: PublicIdentity | None = None
    peer_name: str = ""
    commit: bytes = b""
    nonce: bytes = field(default_factory=lambda: os.urandom(NONCE_SIZE))
    #: the new device's nonce, once revealed
    revealed: bytes = b""
    string: str = ""
    #: why the exchange ended (ENDED), or None
    ended: LinkReason | None = None

    @classmethod
    def start(cls, me: PublicIdentity, now_ms: int) -> Inviter:
        """A fresh code for the device ``me``."""
        return cls(me, LinkCode.generate(me.node_id), now_ms)

    @property
    def expires_ms(self) -> int:
        return self.created_ms + LINK_TTL_MS

    def expired(self, now_ms: int) -> bool:
        return now_ms >= self.expires_ms

    def _end(self, reason: LinkReason) -> None:
        self.state = LinkState.ENDED
        self.ended = reason

    def _live(self, now_ms: int) -> None:
        if self.state is LinkState.ENDED:
            raise LinkError(self.ended or LinkReason.USED, "this link code has ended")
        if self.expired(now_ms):
            self._end(LinkReason.EXPIRED)
            raise LinkError(LinkReason.EXPIRED, "the link code expired")

    def transcript(self, new: PublicIdentity) -> Transcript:
        return Transcript(self.code.secret, self.me, new)

    def on_request(self, sender: PublicIdentity, request: LinkRequest, now_ms: int) -> LinkNonce:
        """A request from ``sender`` (the session's authenticated peer). Raises
        :class:`LinkError`: ``USED`` if a request was taken already, ``EXPIRED``,
        ``BAD_MAC`` (after :data:`MAX_BAD_REQUESTS` of them the code is ``WITHDRAWN``)."""
        if self.state is not LinkState.WAITING:
            if self.ended in (LinkReason.EXPIRED, LinkReason.WITHDRAWN):
                raise LinkError(self.ended, "this link code has ended")
            raise LinkError(LinkReason.USED, "this link code was used already")
        self._live(now_ms)
        if request.identity != sender or sender == self.me:
            raise LinkError(LinkReason.BAD_MAC, "the request names other keys than its sender")
        transcript = self.transcript(sender)
        if not request.verify(transcript):
            self.bad_requests += 1
            if self.bad_requests >= MAX_BAD_REQUESTS:
                self._end(LinkReason.WITHDRAWN)
                raise LinkError(LinkReason.WITHDRAWN, "too many wrong link attempts")
            raise LinkError(LinkReason.BAD_MAC, "the request's MAC does not check")
        self.state = LinkState.NONCE_SENT
        self.peer, self.peer_name, self.commit = sender, request.name, request.commit
        return LinkNonce.make(transcript, self.commit, self.nonce)

    def _from_peer(self, sender: PublicIdentity, what: str) -> PublicIdentity:
        if self.peer is None or sender != self.peer:
            raise _out_of_order(f"a {what} from another device")
        return self.peer

    def on_reveal(self, sender: PublicIdentity, reveal: LinkReveal, now_ms: int) -> str:
        """The new device opened its commitment: the confirmation string to show."""
        peer = self._from_peer(sender, "reveal")
        if self.state is not LinkState.NONCE_SENT:
            raise _out_of_order("a reveal")
        self._live(now_ms)
        if commitment(reveal.nonce) != self.commit:
            self._end(LinkReason.BAD_COMMITMENT)
            raise LinkError(LinkReason.BAD_COMMITMENT, "the reveal does not open the commitment")
        self.state = LinkState.CONFIRMING
        self.string = confirmation(self.transcript(peer), self.commit, reveal.nonce, self.nonce)
        self.revealed = reveal.nonce
        return self.string

    def accept(self, device_list: bytes, now_ms: int) -> LinkAccept:
        """The person said yes: the accept carrying ``device_list`` (the account's new list,
        the new device on it, signed by this device)."""
        if self.state is not LinkState.CONFIRMING or self.peer is None:
            raise _out_of_order("an accept")
        self._live(now_ms)
        self.state = LinkState.ACCEPTED
        transcript = self.transcript(self.peer)
        return LinkAccept.make(transcript, self.commit, self.revealed, self.nonce, device_list)

    def decline(self) -> LinkRefuse:
        """The person said no (or gave a string that differs)."""
        self._end(LinkReason.DECLINED)
        return LinkRefuse(RefuseReason.DECLINED)

    def on_refuse(self, sender: PublicIdentity, refuse: LinkRefuse) -> LinkReason:
        """The new device ended the exchange; what happened (a refuse after our accept means
        the new device must be taken off the list again)."""
        self._from_peer(sender, "refuse")
        reason = refuse.reason.link_reason()
        self._end(reason)
        return reason


@dataclass(slots=True)
class Joiner:
    """The new device's side of one code."""

    me: PublicIdentity
    name: str
    code: LinkCode
    started_ms: int
    state: LinkState = LinkState.READY
    existing: PublicIdentity | None = None
    nonce: bytes = field(default_factory=lambda: os.urandom(NONCE_SIZE))
    commit: bytes = b""
    peer_nonce: bytes = b""
    string: str = ""
    #: the person's answer: None until given
    confirmed: bool | None = None
    #: the accepted device list (MAC checked), once it came
    device_list: bytes | None = None
    ended: LinkReason | None = None

    def transcript(self) -> Transcript:
        if self.existing is None:
            raise _out_of_order("a message before the request")
        return Transcript(self.code.secret, self.existing, self.me)

    def request(self, existing: PublicIdentity) -> LinkRequest:
        """The request to the device the code names (found among announced devices)."""
        if self.state is not LinkState.READY:
            raise _out_of_order("a second request")
        if not self.code.names(existing.node_id):
            raise LinkError(LinkReason.NOT_FOUND, "that device did not make this code")
        self.existing = existing
        request, self.commit = LinkRequest.make(self.transcript(), self.name, self.nonce)
        self.state = LinkState.REQUESTED
        return request

    def _from_existing(self, sender: PublicIdentity, what: str) -> Transcript:
        if self.existing is None or sender != self.existing:
            raise _out_of_order(f"a {what} from another device")
        return self.transcript()

    def on_nonce(self, sender: PublicIdentity, message: LinkNonce) -> tuple[LinkReveal, str]:
        """The existing device's nonce: the reveal to send and the string to show."""
        transcript = self._from_existing(sender, "nonce")
        if self.state is not LinkState.REQUESTED:
            raise _out_of_order("a nonce")
        if not message.verify(transcript, self.commit):
            self.state, self.ended = LinkState.ENDED, LinkReason.BAD_MAC
            raise LinkError(LinkReason.BAD_MAC, "the other device does not know the code")
        self.peer_nonce = message.nonce
        self.string = confirmation(transcript, self.commit, self.nonce, message.nonce)
        self.state = LinkState.CONFIRMING
        return LinkReveal(self.nonce), self.string

    def on_accept(self, sender: PublicIdentity, accept: LinkAccept) -> bytes | None:
        """The accept: its device list once the person also said yes (else kept)."""
        transcript = self._from_existing(sender, "accept")
        if self.state is not LinkState.CONFIRMING or self.device_list is not None:
            raise _out_of_order("an accept")
        if not accept.verify(transcript, self.commit, self.nonce, self.peer_nonce):
            self.state, self.ended = LinkState.ENDED, LinkReason.BAD_MAC
            raise LinkError(LinkReason.BAD_MAC, "the accept's MAC does not check")
        self.device_list = accept.device_list
        return self.ready()

    def confirm(self, answer: str) -> tuple[bytes | None, LinkRefuse | None]:
        """The person's answer (``y``, ``n``, or the other device's string). Returns the
        device list to adopt if it came already, or the refuse to send when the answer was
        no or the strings differ."""
        if self.state is not LinkState.CONFIRMING or self.confirmed is not None:
            raise _out_of_order("an answer")
        if not answer_matches(self.string, answer):
            self.confirmed = False
            mismatch = bool(normalise_confirmation(answer))
            self.state = LinkState.ENDED
            self.ended = LinkReason.MISMATCH if mismatch else LinkReason.DECLINED
            return None, LinkRefuse(RefuseReason.DECLINED)
        self.confirmed = True
        return self.ready(), None

    def ready(self) -> bytes | None:
        """The list to adopt, once both the accept came and the person said yes."""
        if self.confirmed and self.device_list is not None and self.state is LinkState.CONFIRMING:
            return self.device_list
        return None

    def linked(self) -> None:
        """The list was adopted."""
        self.state = LinkState.LINKED

    def fail(self, reason: LinkReason) -> LinkRefuse:
        """The exchange broke here (e.g. the list cannot be adopted)."""
        self.state, self.ended = LinkState.ENDED, reason
        return LinkRefuse(RefuseReason.FAILED)

    def on_refuse(self, sender: PublicIdentity, refuse: LinkRefuse) -> LinkReason:
        self._from_existing(sender, "refuse")
        reason = refuse.reason.link_reason()
        self.state, self.ended = LinkState.ENDED, reason
        return reason
