"""The link handshake: an encrypted Noise XX handshake, then each side proves its identity.

Nothing a passive observer of the link sees names either node: the handshake is
``Noise_XX_25519_ChaChaPoly_BLAKE2b`` with a fresh Noise static key per connection, and each
side's long-term identity (Ed25519 and X25519 public keys) travels only inside the encrypted
channel, with an Ed25519 signature over the Noise *handshake hash* (which covers both sides'
ephemeral and static keys). So a proof belongs to this one connection: it cannot be replayed on
another, relayed by a man in the middle (whose connections have other hashes), or reflected
(the signed text names the signer's role). Afterwards the link's frames are encrypted with the
Noise transport keys (:class:`LinkCipher`).

Theory of operation. The initiator is the side that dialled (for BLE: the central).

==========  ==================  ======================================================  =========
role        state               on event: do                                            next
==========  ==================  ======================================================  =========
initiator   START               ``start()``: send M1 = version byte + Noise ``e``       WAIT_M2
initiator   WAIT_M2             M2 (``e, ee, s, es``): send M3 (``s, se``), then the    WAIT_ID
                                encrypted ID (own keys, signature, listening port)
responder   START               ``start()``: nothing to send                            WAIT_M1
responder   WAIT_M1             M1: send M2                                             WAIT_M3
responder   WAIT_M3             M3: the handshake hash is known; send the encrypted ID  WAIT_ID
either      WAIT_ID             the peer's encrypted ID: verify its signature over      DONE
                                DOMAIN + peer's role + handshake hash; ``peer`` is set
any         any                 anything else, a frame that does not decrypt, or a bad  FAILED
                                signature: :class:`HandshakeError`
==========  ==================  ======================================================  =========

The ID message is the CBOR array ``[2, sign_public, box_public, signature, port]``, where
``port`` is the TCP port the sender listens on (or null); a transport may use it to recognise
the sender's adverts. Who learns what: a passive observer, nothing but sizes and timing; a peer
that runs the handshake to the ID step (anyone who connects, or anyone a node dials) learns the
other side's identity, as any neighbour must. See docs/security.md.
"""

from __future__ import annotations

from enum import Enum, auto

import cbor2
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from noise.connection import Keypair, NoiseConnection
from noise.exceptions import (
    NoiseHandshakeError,
    NoiseInvalidMessage,
    NoiseMaxNonceError,
    NoiseValidationError,
    NoiseValueError,
)

from meshchat.errors import FramingError, HandshakeError, IdentityError, PacketError
from meshchat.identity import Identity, PublicIdentity
from meshchat.wire.cborcheck import check_cbor

__all__ = [
    "CIPHER_OVERHEAD",
    "HANDSHAKE_VERSION",
    "MAX_HANDSHAKE_FRAME",
    "NOISE_PROTOCOL",
    "LinkCipher",
    "LinkHandshake",
]

HANDSHAKE_VERSION = 2
MAX_HANDSHAKE_FRAME = 256
NOISE_PROTOCOL = b"Noise_XX_25519_ChaChaPoly_BLAKE2b"
#: bytes an encrypted frame is longer than its plaintext (the Poly1305 tag)
CIPHER_OVERHEAD = 16
_PROLOGUE = b"meshchat-link-v2"
_DOMAIN = b"meshchat-link-id-v2\x00"
_ROLE = {True: b"I", False: b"R"}
_KEY_SIZE = 32
#: what the Noise library (and the cryptography it calls) raises on bad input
_NOISE_ERRORS = (
    NoiseHandshakeError,
    NoiseInvalidMessage,
    NoiseMaxNonceError,
    NoiseValidationError,
    NoiseValueError,
    InvalidTag,
    ValueError,
    TypeError,
    IndexError,
)


class _State(Enum):
    START = auto()
    WAIT_M1 = auto()
    WAIT_M2 = auto()
    WAIT_M3 = auto()
    WAIT_ID = auto()
    DONE = auto()
    FAILED = auto()


def _fresh_static() -> bytes:
    return X25519PrivateKey.generate().private_bytes(
        Encoding.Raw, PrivateFormat.Raw, NoEncryption()
    )


class LinkCipher:
    """The encryption of a link's frames after the handshake (one per direction, in order)."""

    __slots__ = ("_noise",)

    def __init__(self, noise: NoiseConnection) -> None:
        self._noise = noise

    def encrypt(self, frame: bytes) -> bytes:
        """``frame`` sealed for the peer; frames must be decrypted in the order encrypted."""
        try:
            return bytes(self._noise.encrypt(frame))
        except _NOISE_ERRORS as exc:
            raise FramingError(f"cannot encrypt a {len(frame)}-byte frame") from exc

    def decrypt(self, frame: bytes) -> bytes:
        """The plaintext of the peer's next frame. Raises :class:`FramingError` if it was
        altered, replayed, reordered or not sealed for this link."""
        try:
            return bytes(self._noise.decrypt(frame))
        except _NOISE_ERRORS as exc:
            raise FramingError("a frame did not decrypt") from exc


class LinkHandshake:
    """One side of a link handshake. Feed it frames; send what it returns."""

    __slots__ = ("_identity", "_initiator", "_noise", "_peer", "_peer_port", "_port", "_state")

    def __init__(self, identity: Identity, *, initiator: bool, port: int | None = None) -> None:
        if port is not None and not 0 < port < 65536:
            raise ValueError(f"port {port} out of range")
        self._identity = identity
        self._initiator = initiator
        self._port = port
        self._state = _State.START
        self._peer: PublicIdentity | None = None
        self._peer_port: int | None = None
        noise = NoiseConnection.from_name(NOISE_PROTOCOL)
        if initiator:
            noise.set_as_initiator()
        else:
            noise.set_as_responder()
        noise.set_prologue(_PROLOGUE)
        noise.set_keypair_from_private_bytes(Keypair.STATIC, _fresh_static())
        self._noise = noise

    @property
    def initiator(self) -> bool:
        return self._initiator

    @property
    def done(self) -> bool:
        return self._state is _State.DONE

    @property
    def peer(self) -> PublicIdentity:
        """The proven identity of the other side; only valid once :attr:`done`."""
        if self._peer is None or not self.done:
            raise HandshakeError("handshake not complete")
        return self._peer

    @property
    def peer_port(self) -> int | None:
        """The port the peer says it listens on (authenticated, but only its word)."""
        return self._peer_port if self.done else None

    def cipher(self) -> LinkCipher:
        """The link's frame encryption; only once :attr:`done`."""
        if not self.done:
            raise HandshakeError("handshake not complete")
        return LinkCipher(self._noise)

    def start(self) -> list[bytes]:
        """The frames to send first (the initiator's M1; nothing for the responder)."""
        if self._state is not _State.START:
            raise HandshakeError("handshake already started")
        try:
            self._noise.start_handshake()
            if not self._initiator:
                self._state = _State.WAIT_M1
                return []
            first = bytes([HANDSHAKE_VERSION]) + bytes(self._noise.write_message())
        except _NOISE_ERRORS as exc:  # pragma: no cover - a fresh Noise state always starts
            self._state = _State.FAILED
            raise HandshakeError("cannot start the handshake") from exc
        self._state = _State.WAIT_M2
        return [first]

    def receive(self, frame: bytes) -> list[bytes]:
        """Handle one handshake frame from the peer; returns frames to send back."""
        try:
            return self._receive(frame)
        except HandshakeError:
            self._state = _State.FAILED
            raise
        except _NOISE_ERRORS as exc:
            state, self._state = self._state, _State.FAILED
            raise HandshakeError(f"handshake message refused in {state.name}") from exc

    def _receive(self, frame: bytes) -> list[bytes]:
        if len(frame) > MAX_HANDSHAKE_FRAME:
            raise HandshakeError("handshake frame too large")
        state = self._state
        if state is _State.WAIT_M1:
            if len(frame) != 1 + _KEY_SIZE or frame[0] != HANDSHAKE_VERSION:
                raise HandshakeError("not a meshchat v2 handshake")
            self._expect_empty(self._noise.read_message(frame[1:]))
            self._state = _State.WAIT_M3
            return [bytes(self._noise.write_message())]
        if state is _State.WAIT_M2:
            self._expect_empty(self._noise.read_message(frame))
            third = bytes(self._noise.write_message())
            self._state = _State.WAIT_ID
            return [third, self._id_message()]
        if state is _State.WAIT_M3:
            self._expect_empty(self._noise.read_message(frame))
            self._state = _State.WAIT_ID
            return [self._id_message()]
        if state is _State.WAIT_ID:
            self._on_id(self._noise.decrypt(frame))
            self._state = _State.DONE
            return []
        raise HandshakeError(f"unexpected handshake frame in state {state.name}")

    @staticmethod
    def _expect_empty(payload: bytes | bytearray) -> None:
        if payload:
            raise HandshakeError("unexpected payload in a Noise handshake message")

    def _signed(self, initiator: bool) -> bytes:
        return _DOMAIN + _ROLE[initiator] + bytes(self._noise.get_handshake_hash())

    def _id_message(self) -> bytes:
        public = self._identity.public
        signature = self._identity.sign(self._signed(self._initiator))
        body = cbor2.dumps(
            [HANDSHAKE_VERSION, public.sign_public, public.box_public, signature, self._port],
            canonical=True,
        )
        return bytes(self._noise.encrypt(body))

    def _on_id(self, body: bytes) -> None:
        try:
            check_cbor(body, max_items=8, max_depth=1)
            fields = cbor2.loads(body)
        except (PacketError, ValueError, cbor2.CBORDecodeError) as exc:
            raise HandshakeError("the peer's ID is not valid CBOR") from exc
        if not isinstance(fields, list) or len(fields) != 5 or fields[0] != HANDSHAKE_VERSION:
            raise HandshakeError("unsupported ID version or layout")
        _, sign_public, box_public, signature, port = fields
        if not (
            isinstance(sign_public, bytes)
            and isinstance(box_public, bytes)
            and isinstance(signature, bytes)
        ):
            raise HandshakeError("malformed ID")
        if port is not None and not (type(port) is int and 0 < port < 65536):
            raise HandshakeError("malformed ID port")
        try:
            peer = PublicIdentity(sign_public, box_public)
        except IdentityError as exc:
            raise HandshakeError("malformed ID keys") from exc
        if peer == self._identity.public:
            raise HandshakeError("connected to ourselves")
        if not peer.verify(self._signed(not self._initiator), signature):
            raise HandshakeError("the peer's identity proof does not verify")
        self._peer = peer
        self._peer_port = port
