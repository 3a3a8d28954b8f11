"""bitchat direct messages: a Noise XX session per peer, and the private-message payloads, as
pure code (no clock of its own, no I/O).

Theory of operation
-------------------
Upstream (``noise/NoiseSession.kt``, ``model/NoiseEncrypted.kt`` on Android; the iOS
``Noise/`` folder) runs ``Noise_XX_25519_ChaChaPoly_SHA256`` with empty handshake payloads and
no prologue between the two peers' static keys (the key whose SHA-256 gives the peer id):
handshake messages (32, 96, 64 bytes) travel in type 0x10 packets, transport messages in type
0x11 packets as ``nonce(4, big-endian) || ciphertext``, addressed to the peer, signed, padded.
A finished handshake whose remote static key does not hash to the peer id it came from is
refused (``NoisePeerIdentity.matchesClaimedPeerID``). A transport plaintext is a
``NoisePayload``: one type byte (0x01 private message, 0x02 read receipt, 0x03 delivered, ...)
then its data; a private message is the TLV list ``0x00 message id (UTF-8)``, ``0x01 content
(UTF-8)``, each at most 255 bytes. A received private message is answered with DELIVERED
carrying its message id.

:class:`DmSessions` keeps the sessions: :meth:`~DmSessions.start` (initiator, first
message), :meth:`~DmSessions.handshake` (the next message, as either role; a first message
from the peer starts a responder session and replaces one we had, unless we are mid-way as
initiator and our peer id is the lower one: the tie-break), :meth:`~DmSessions.encrypt` and
:meth:`~DmSessions.decrypt` with upstream's explicit nonce and a 1,024-nonce replay window.
Bounded: at most 64 sessions (the least recently used goes first). Every refusal is a
:class:`BridgeError`.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from meshchat.bridges.bitchat.announce import peer_id
from meshchat.bridges.bitchat.noise import split_nonce, with_nonce, xx_connection
from meshchat.bridges.bitchat.packet import NETWORK
from meshchat.errors import BridgeError, BridgeReason

__all__ = [
    "DELIVERED",
    "PRIVATE_MESSAGE",
    "READ_RECEIPT",
    "DmSessions",
    "decode_private",
    "encode_private",
    "noise_payload",
]

PRIVATE_MESSAGE = 0x01
READ_RECEIPT = 0x02
DELIVERED = 0x03
MAX_SESSIONS = 64
REPLAY_WINDOW = 1024
TLV_MESSAGE_ID = 0x00
TLV_CONTENT = 0x01
FIRST_MESSAGE_SIZE = 32


def _bad(reason: BridgeReason, detail: str) -> BridgeError:
    return BridgeError(NETWORK, reason, detail)


def encode_private(message_id: str, content: str) -> bytes:
    """A private message's TLVs; OVERSIZED past 255 bytes a field (upstream's limit)."""
    fields = (
        (TLV_MESSAGE_ID, message_id.encode("utf-8")),
        (TLV_CONTENT, content.encode("utf-8")),
    )
    out = bytearray()
    for kind, value in fields:
        if len(value) > 0xFF:
            raise _bad(BridgeReason.OVERSIZED, f"a private message field of {len(value)} bytes")
        out += bytes((kind, len(value))) + value
    return bytes(out)


def decode_private(data: bytes) -> tuple[str, str]:
    """(message id, content) of a private message; TRUNCATED or BAD_FIELD otherwise (an
    unknown TLV type is refused, as upstream refuses it)."""
    values: dict[int, str] = {}
    at = 0
    while at < len(data):
        if at + 2 > len(data):
            raise _bad(BridgeReason.TRUNCATED, "a TLV header runs past the end")
        kind, length = data[at], data[at + 1]
        at += 2
        if at + length > len(data):
            raise _bad(BridgeReason.TRUNCATED, f"TLV {kind:#04x} runs past the end")
        if kind not in (TLV_MESSAGE_ID, TLV_CONTENT):
            raise _bad(BridgeReason.BAD_FIELD, f"unknown private message TLV {kind:#04x}")
        try:
            values[kind] = data[at : at + length].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _bad(BridgeReason.BAD_FIELD, "private message is not UTF-8") from exc
        at += length
    if TLV_MESSAGE_ID not in values or TLV_CONTENT not in values:
        raise _bad(BridgeReason.BAD_FIELD, "a private message needs an id and content")
    return values[TLV_MESSAGE_ID], values[TLV_CONTENT]


def noise_payload(kind: int, data: bytes) -> bytes:
    """A transport plaintext: the payload type byte, then its data."""
    return bytes((kind,)) + data


@dataclass
class _Session:
    conn: Any
    initiator: bool
    handshake: Any = None  #: noiseprotocol's handshake state, kept to read the remote key
    established: bool = False
    highest: int = -1
    seen: set[int] = field(default_factory=set)


class DmSessions:
    """Noise sessions with bitchat peers, for one static X25519 key."""

    def __init__(self, static_private: bytes, own_peer_id: bytes) -> None:
        self._static = static_private
        self._own = own_peer_id
        self._sessions: OrderedDict[bytes, _Session] = OrderedDict()

    def __len__(self) -> int:
        return len(self._sessions)

    def _keep(self, peer: bytes, session: _Session) -> _Session:
        self._sessions.pop(peer, None)
        self._sessions[peer] = session
        while len(self._sessions) > MAX_SESSIONS:
            self._sessions.popitem(last=False)
        return session

    def established(self, peer: bytes) -> bool:
        session = self._sessions.get(peer)
        return session is not None and session.established

    def handshaking(self, peer: bytes) -> bool:
        session = self._sessions.get(peer)
        return session is not None and not session.established

    def start(self, peer: bytes) -> bytes:
        """Begin a handshake with ``peer`` as initiator; the first message."""
        conn = xx_connection(initiator=True, static_private=self._static)
        session = self._keep(peer, _Session(conn, True, conn.noise_protocol.handshake_state))
        return bytes(session.conn.write_message())

    def handshake(self, peer: bytes, message: bytes) -> tuple[bytes | None, bool]:
        """Take a handshake message from ``peer``: (our reply or None, whether the session is
        now established). NOISE if it does not verify, SENDER_MISMATCH if the peer's static key
        is not the one its id names."""
        session = self._sessions.get(peer)
        if len(message) == FIRST_MESSAGE_SIZE:
            mid_way = session is not None and session.initiator and not session.established
            if mid_way and self._own < peer:
                return None, False  # both started: the lower peer id's handshake goes on
            conn = xx_connection(initiator=False, static_private=self._static)
            session = self._keep(peer, _Session(conn, False, conn.noise_protocol.handshake_state))
        elif session is None or session.established:
            raise _bad(BridgeReason.NOISE, "a handshake message out of turn")
        try:
            session.conn.read_message(message)
            reply = None
            if not session.conn.handshake_finished:
                reply = bytes(session.conn.write_message())
        except Exception as exc:  # noiseprotocol raises several kinds for a bad message
            self._sessions.pop(peer, None)
            raise _bad(BridgeReason.NOISE, f"handshake with {peer.hex()}: {exc!r}") from exc
        if session.conn.handshake_finished:
            remote = session.handshake.rs
            if remote is None or peer_id(bytes(remote.public_bytes)) != peer:
                self._sessions.pop(peer, None)
                raise _bad(BridgeReason.SENDER_MISMATCH, f"Noise key is not {peer.hex()}'s")
            session.established = True
            session.handshake = None
        return reply, session.established

    def encrypt(self, peer: bytes, plaintext: bytes) -> bytes:
        """A transport frame for ``peer`` (NOISE when there is no session)."""
        session = self._sessions.get(peer)
        if session is None or not session.established:
            raise _bad(BridgeReason.NOISE, f"no Noise session with {peer.hex()}")
        nonce = int(session.conn.noise_protocol.cipher_state_encrypt.n)
        return with_nonce(nonce, bytes(session.conn.encrypt(plaintext)))

    def decrypt(self, peer: bytes, frame: bytes) -> bytes:
        """The plaintext of a transport frame from ``peer``; NOISE when there is no session,
        the nonce is replayed or outside the window, or it does not decrypt."""
        session = self._sessions.get(peer)
        if session is None or not session.established:
            raise _bad(BridgeReason.NOISE, f"no Noise session with {peer.hex()}")
        nonce, ciphertext = split_nonce(frame)
        if nonce + REPLAY_WINDOW <= session.highest or nonce in session.seen:
            raise _bad(BridgeReason.DUPLICATE, f"Noise nonce {nonce} replayed or too old")
        session.conn.noise_protocol.cipher_state_decrypt.n = nonce
        try:
            plaintext = bytes(session.conn.decrypt(ciphertext))
        except Exception as exc:  # InvalidTag and noiseprotocol's own errors
            raise _bad(BridgeReason.NOISE, f"a frame from {peer.hex()} does not decrypt") from exc
        session.seen.add(nonce)
        if nonce > session.highest:
            session.highest = nonce
            session.seen = {n for n in session.seen if n + REPLAY_WINDOW > nonce}
        self._keep(peer, session)
        return plaintext
