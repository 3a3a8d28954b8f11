"""The link handshake: each side of a new link proves it holds the key it claims.

Theory of operation. The protocol is symmetric; both sides run the same state machine:

====================  =========================  ==========================================
state                 on event                   do, and go to
====================  =========================  ==========================================
START                 ``start()``                send HELLO(own keys, fresh 32-byte nonce);
                                                 SENT_HELLO
SENT_HELLO            receive HELLO              check it; send PROOF = Ed25519 signature of
                                                 DOMAIN + own HELLO bytes + peer HELLO bytes;
                                                 SENT_PROOF
SENT_PROOF            receive PROOF              verify it over DOMAIN + peer HELLO bytes +
                                                 own HELLO bytes; DONE (``peer`` is set)
any                   anything else              :class:`HandshakeError`; FAILED
====================  =========================  ==========================================

Each proof covers the peer's fresh nonce, so a recorded proof cannot be replayed, and puts the
signer's own HELLO first, so a proof cannot be reflected back to its sender. The HELLO also
carries the X25519 key, so the node id of the peer is known once the handshake is done. Frames
are small CBOR arrays and go over the link's ordinary framing before any packet may flow.
"""

from __future__ import annotations

import os
from enum import Enum, auto

import cbor2

from meshchat.errors import HandshakeError, PacketError
from meshchat.identity import Identity, PublicIdentity
from meshchat.wire.cborcheck import check_cbor

__all__ = ["HANDSHAKE_VERSION", "MAX_HANDSHAKE_FRAME", "LinkHandshake"]

HANDSHAKE_VERSION = 1
MAX_HANDSHAKE_FRAME = 256
_DOMAIN = b"meshchat-link-v1\x00"
_HELLO = "mc-hello"
_PROOF = "mc-proof"
NONCE_SIZE = 32


class _State(Enum):
    START = auto()
    SENT_HELLO = auto()
    SENT_PROOF = auto()
    DONE = auto()
    FAILED = auto()


class LinkHandshake:
    """One side of a link handshake. Feed it frames; send what it returns."""

    __slots__ = ("_identity", "_own_hello", "_peer", "_peer_hello", "_state")

    def __init__(self, identity: Identity) -> None:
        self._identity = identity
        self._state = _State.START
        self._own_hello = b""
        self._peer_hello = b""
        self._peer: PublicIdentity | None = None

    @property
    def done(self) -> bool:
        return self._state is _State.DONE

    @property
    def peer(self) -> PublicIdentity:
        """The proven identity of the other side; only valid once :attr:`done`."""
        if self._peer is None or not self.done:
            raise HandshakeError("handshake not complete")
        return self._peer

    def start(self) -> bytes:
        """The HELLO frame to send first."""
        if self._state is not _State.START:
            raise HandshakeError("handshake already started")
        public = self._identity.public
        self._own_hello = cbor2.dumps(
            [_HELLO, HANDSHAKE_VERSION, public.sign_public, public.box_public, os.urandom(32)],
            canonical=True,
        )
        self._state = _State.SENT_HELLO
        return self._own_hello

    def receive(self, frame: bytes) -> list[bytes]:
        """Handle one handshake frame from the peer; returns frames to send back."""
        try:
            return self._receive(frame)
        except HandshakeError:
            self._state = _State.FAILED
            raise

    def _receive(self, frame: bytes) -> list[bytes]:
        if len(frame) > MAX_HANDSHAKE_FRAME:
            raise HandshakeError("handshake frame too large")
        try:
            check_cbor(frame, max_items=8, max_depth=1)
            fields = cbor2.loads(frame)
        except (PacketError, Exception) as exc:
            raise HandshakeError("handshake frame is not valid CBOR") from exc
        if not isinstance(fields, list) or not fields:
            raise HandshakeError("handshake frame has no type")
        if self._state is _State.SENT_HELLO and fields[0] == _HELLO:
            return [self._on_hello(frame, fields)]
        if self._state is _State.SENT_PROOF and fields[0] == _PROOF:
            self._on_proof(fields)
            return []
        raise HandshakeError(f"unexpected {str(fields[0])[:16]!r} in state {self._state.name}")

    def _on_hello(self, frame: bytes, fields: list[object]) -> bytes:
        if len(fields) != 5 or type(fields[1]) is not int or fields[1] != HANDSHAKE_VERSION:
            raise HandshakeError("unsupported handshake version or layout")
        _, _, sign_public, box_public, nonce = fields
        if not (
            isinstance(sign_public, bytes)
            and isinstance(box_public, bytes)
            and isinstance(nonce, bytes)
            and len(nonce) == NONCE_SIZE
        ):
            raise HandshakeError("malformed HELLO")
        try:
            peer = PublicIdentity(sign_public, box_public)
        except Exception as exc:
            raise HandshakeError("malformed HELLO keys") from exc
        if peer == self._identity.public:
            raise HandshakeError("connected to ourselves")
        self._peer = peer
        self._peer_hello = frame
        self._state = _State.SENT_PROOF
        proof = self._identity.sign(_DOMAIN + self._own_hello + self._peer_hello)
        return cbor2.dumps([_PROOF, proof], canonical=True)

    def _on_proof(self, fields: list[object]) -> None:
        if len(fields) != 2 or not isinstance(fields[1], bytes):
            raise HandshakeError("malformed PROOF")
        assert self._peer is not None
        if not self._peer.verify(_DOMAIN + self._peer_hello + self._own_hello, fields[1]):
            raise HandshakeError("peer's proof does not verify")
        self._state = _State.DONE
