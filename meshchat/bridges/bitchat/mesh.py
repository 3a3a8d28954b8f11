"""A bitchat mesh node, sans-IO: frames in, decisions out.

Theory of operation
-------------------
:meth:`BitchatMesh.receive` takes one frame (a GATT write or notification) and the time, and
returns what to do as values: :class:`Relay` (send this packet, TTL already lowered, to every
other link after a short random delay), :class:`PeerSeen` (a verified announce),
:class:`Heard` (a verified public message for the ``#bitchat`` conversation), and for direct
messages (Noise, :mod:`.dm`) :class:`Send` (frames of ours for every link: handshake replies,
queued messages, delivery acks, read receipts), :class:`Private` (a decrypted private
message), :class:`Delivered` and :class:`Read` (receipts, :mod:`.receipts`). Anything
refused raises :class:`BridgeError`, so the adapter can count reasons.

Per frame, in order: decode (strict); drop our own packets and anything seen before (the key
is what the signature covers, so a relayed copy with a lower TTL is the same packet);
fragments are reassembled (bounded) and the completed packet handled like a received one;
announces go to :class:`BitchatPeers` (sender-id check, pinned signing key); public messages
must verify against the pinned key and pass the replay window. What is relayed follows
upstream's ``RelayController``: nothing whose TTL is 1 or less, no sync requests (0x21, local
only), TTL capped at 7 and lowered by one. Unlike upstream, a public message or announce that
fails verification is not relayed (a bridge should not spread forgeries); packets we do not
interpret (Noise, files, other types) are relayed as they are.

Noise packets addressed to us are taken, not relayed; they must come from a peer whose
announce we verified and, when signed, verify against its pinned key. Our own are signed and
padded (upstream pads Noise frames over BLE). Messages to a peer without a session wait (16
per peer, 64 peers) while the handshake runs.

Limits: the dedupe memory holds 8,192 packet ids; what reaches ``#bitchat`` is capped per
peer (5 texts, then one per 6 s) and in total (20, then one per second), so a bitchat flood
does not become a meshchat flood; relaying follows upstream's TTL rule only.
"""

from __future__ import annotations

import hashlib
import uuid
from collections import OrderedDict
from dataclasses import dataclass, replace

from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from meshchat.bridges._ratelimit import TokenBucket
from meshchat.bridges.bitchat.announce import Announcement, check_signature
from meshchat.bridges.bitchat.dm import (
    DELIVERED,
    PRIVATE_MESSAGE,
    READ_RECEIPT,
    DmSessions,
    decode_private,
    encode_private,
    noise_payload,
)
from meshchat.bridges.bitchat.fragments import CHUNK_SIZE, Reassembler, split
from meshchat.bridges.bitchat.packet import (
    DEFAULT_TTL,
    NETWORK,
    BitchatPacket,
    MessageType,
    decode,
    encode,
    signing_bytes,
)
from meshchat.bridges.bitchat.peers import BitchatPeers, PublicText
from meshchat.bridges.bitchat.public import BitchatIdentity, message_id
from meshchat.bridges.bitchat.receipts import Receipt, decode_receipt
from meshchat.errors import BridgeError, BridgeReason

__all__ = [
    "BitchatMesh",
    "Delivered",
    "DirectText",
    "Heard",
    "PeerSeen",
    "Private",
    "Read",
    "Relay",
    "Send",
]

SEEN_CAPACITY = 8192
#: A frame larger than this is sent as fragments (upstream: 512-byte writes).
FRAME_LIMIT = 512


@dataclass(frozen=True, slots=True)
class Relay:
    """Send ``frame`` to every link but the one it came from, after ``delay_ms``."""

    frame: bytes
    delay_ms: tuple[int, int]


@dataclass(frozen=True, slots=True)
class PeerSeen:
    announcement: Announcement


@dataclass(frozen=True, slots=True)
class Heard:
    message: PublicText


@dataclass(frozen=True, slots=True)
class DirectText:
    """A private message from a bitchat peer (Noise-encrypted to us). ``nickname`` is the
    name its announce claims; ``message_id`` is the sender's (a UUID string upstream)."""

    peer_id: bytes
    nickname: str
    message_id: str
    text: str
    timestamp: int


@dataclass(frozen=True, slots=True)
class Send:
    """Frames of ours to send on every link (both roles)."""

    frames: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class Private:
    message: DirectText


@dataclass(frozen=True, slots=True)
class Delivered:
    """``peer_id`` says our private message ``message_id`` reached its device."""

    peer_id: bytes
    message_id: str


@dataclass(frozen=True, slots=True)
class Read:
    """``peer_id`` says its user read our private message ``message_id``."""

    peer_id: bytes
    message_id: str


Decision = Relay | PeerSeen | Heard | Send | Private | Delivered | Read
PENDING_PER_PEER = 16
PENDING_PEERS = 64


class BitchatMesh:
    """One bitchat node: our identity and nickname, the peers heard, dedupe and fragments."""

    def __init__(self, identity: BitchatIdentity, nickname: str) -> None:
        self.identity = identity
        self.nickname = nickname
        self.peers = BitchatPeers()
        self.fragments = Reassembler()
        self._seen: OrderedDict[bytes, None] = OrderedDict()
        self._per_peer: OrderedDict[bytes, TokenBucket] = OrderedDict()
        self._total = TokenBucket(20, 1.0)
        raw = identity.noise_private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        self.dms = DmSessions(raw, identity.peer_id)
        self._pending: OrderedDict[bytes, list[bytes]] = OrderedDict()

    def _first_time(self, packet: BitchatPacket) -> bool:
        key = hashlib.sha256(signing_bytes(packet)).digest()[:16]
        if key in self._seen:
            return False
        self._seen[key] = None
        while len(self._seen) > SEEN_CAPACITY:
            self._seen.popitem(last=False)
        return True

    def receive(self, frame: bytes, now_ms: int) -> list[Decision]:
        """What to do with one frame (see the module docstring)."""
        packet = decode(frame)
        if packet.sender_id == self.identity.peer_id:
            raise BridgeError(NETWORK, BridgeReason.DUPLICATE, "our own packet")
        if not self._first_time(packet):
            raise BridgeError(NETWORK, BridgeReason.DUPLICATE, "seen before")
        decisions: list[Decision] = []
        if packet.type == MessageType.FRAGMENT:
            whole = self.fragments.add(packet, now_ms)
            decisions.extend(self._relay(packet))
            if whole is not None:
                inner = decode(whole)
                if inner.sender_id != packet.sender_id:
                    raise BridgeError(NETWORK, BridgeReason.FRAGMENT, "inner sender differs")
                decisions.extend(self._interpret(inner, now_ms))
            return decisions
        decisions.extend(self._interpret(packet, now_ms))
        decisions.extend(self._relay(packet))
        return decisions

    def _interpret(self, packet: BitchatPacket, now_ms: int) -> list[Decision]:
        if packet.recipient_id == self.identity.peer_id and packet.type in (
            MessageType.NOISE_HANDSHAKE,
            MessageType.NOISE_ENCRYPTED,
        ):
            return self._noise(packet, now_ms)
        if packet.type == MessageType.ANNOUNCE:
            return [PeerSeen(self.peers.accept_announce(packet, now_ms))]
        if packet.type == MessageType.MESSAGE and packet.is_broadcast:
            text = self.peers.accept_message(packet, now_ms)
            bucket = self._per_peer.pop(packet.sender_id, None) or TokenBucket(5, 6.0)
            self._per_peer[packet.sender_id] = bucket
            while len(self._per_peer) > len(self.peers) + 16:
                self._per_peer.popitem(last=False)
            now_s = now_ms / 1000
            if not (bucket.take(now_s) and self._total.take(now_s)):
                # verified but over the rate: relayed on the bitchat side, not shown here
                return []
            return [Heard(text)]
        return []

    def _relay(self, packet: BitchatPacket) -> list[Decision]:
        ttl = min(packet.ttl, DEFAULT_TTL)
        if ttl <= 1 or packet.type == MessageType.REQUEST_SYNC:
            return []
        if packet.recipient_id == self.identity.peer_id:
            return []  # addressed to us: it ends here
        delay = (8, 25) if packet.type == MessageType.FRAGMENT else (10, 40)
        return [Relay(encode(replace(packet, ttl=ttl - 1)), delay)]

    def _frames(self, packet: BitchatPacket) -> list[bytes]:
        self._first_time(packet)  # our own copy, relayed back, is a duplicate
        noise = packet.type in (MessageType.NOISE_HANDSHAKE, MessageType.NOISE_ENCRYPTED)
        whole = encode(packet, padding=noise)
        if len(whole) <= FRAME_LIMIT:
            return [whole]
        return [encode(part) for part in split(packet, chunk=CHUNK_SIZE)]

    def announce(self, now_ms: int) -> list[bytes]:
        """Frames of our signed announce."""
        return self._frames(self.identity.announce(self.nickname, now_ms))

    def send_text(self, text: str, now_ms: int) -> list[bytes]:
        """Frames of a signed public message to bitchat's #mesh."""
        return self.public(text, now_ms)[1]

    def public(self, text: str, now_ms: int) -> tuple[bytes, list[bytes]]:
        """The message id (:func:`~meshchat.bridges.bitchat.public.message_id`) and frames
        of a signed public message to bitchat's #mesh."""
        packet = self.identity.message(text, now_ms)
        return message_id(packet), self._frames(packet)

    # -- direct messages (Noise) -----------------------------------------------------------

    def _noise_frames(
        self, kind: MessageType, peer: bytes, payload: bytes, now_ms: int
    ) -> list[bytes]:
        packet = BitchatPacket(
            type=kind,
            sender_id=self.identity.peer_id,
            timestamp=now_ms,
            payload=payload,
            ttl=DEFAULT_TTL,
            recipient_id=peer,
        )
        return self._frames(self.identity.sign(packet))

    def _encrypted(self, peer: bytes, plaintext: bytes, now_ms: int) -> list[bytes]:
        frame = self.dms.encrypt(peer, plaintext)
        return self._noise_frames(MessageType.NOISE_ENCRYPTED, peer, frame, now_ms)

    def _noise(self, packet: BitchatPacket, now_ms: int) -> list[Decision]:
        sender = packet.sender_id
        peer = self.peers.get(sender)
        if peer is None:
            raise BridgeError(NETWORK, BridgeReason.UNKNOWN_SENDER, sender.hex())
        if packet.signature is not None:
            check_signature(packet, peer.signing_key)
        if packet.type == MessageType.NOISE_HANDSHAKE:
            reply, done = self.dms.handshake(sender, packet.payload)
            frames: list[bytes] = []
            if reply is not None:
                frames += self._noise_frames(MessageType.NOISE_HANDSHAKE, sender, reply, now_ms)
            if done:
                for plaintext in self._pending.pop(sender, []):
                    frames += self._encrypted(sender, plaintext, now_ms)
            return [Send(tuple(frames))] if frames else []
        plaintext = self.dms.decrypt(sender, packet.payload)
        if not plaintext:
            raise BridgeError(NETWORK, BridgeReason.BAD_FIELD, "an empty Noise payload")
        kind, data = plaintext[0], plaintext[1:]
        if kind == PRIVATE_MESSAGE:
            message_id, text = decode_private(data)
            if not message_id:
                raise BridgeError(NETWORK, BridgeReason.BAD_FIELD, "a private message without id")
            ack = self._encrypted(sender, Receipt(DELIVERED, message_id).encode(), now_ms)
            direct = DirectText(sender, peer.nickname, message_id, text, packet.timestamp)
            return [Private(direct), Send(tuple(ack))]
        if kind == DELIVERED:
            return [Delivered(sender, decode_receipt(kind, data).message_id)]
        if kind == READ_RECEIPT:
            return [Read(sender, decode_receipt(kind, data).message_id)]
        return []  # files, voice, verification: not handled

    def send_private(self, peer: bytes, text: str, now_ms: int) -> tuple[str, list[bytes]]:
        """A private message to ``peer``: its message id and the frames to send now (the
        message itself, or the first handshake message while it waits for the session).
        UNKNOWN_SENDER for a peer whose announce we have not verified; OVERSIZED over 255
        bytes of text (upstream's limit)."""
        if self.peers.get(peer) is None:
            raise BridgeError(NETWORK, BridgeReason.UNKNOWN_SENDER, peer.hex())
        message_id = str(uuid.uuid4()).upper()
        plaintext = noise_payload(PRIVATE_MESSAGE, encode_private(message_id, text))
        return message_id, self.send_payload(peer, plaintext, now_ms)

    def send_read(self, peer: bytes, message_ids: list[str], now_ms: int) -> list[bytes]:
        """Read receipts to ``peer`` for its private messages ``message_ids`` (queued like a
        private message while a handshake runs); UNKNOWN_SENDER, RATE_LIMITED as
        :meth:`send_private`."""
        if self.peers.get(peer) is None:
            raise BridgeError(NETWORK, BridgeReason.UNKNOWN_SENDER, peer.hex())
        frames: list[bytes] = []
        for read in message_ids:
            plaintext = Receipt(READ_RECEIPT, read).encode()
            frames += self.send_payload(peer, plaintext, now_ms)
        return frames

    def send_payload(self, peer: bytes, plaintext: bytes, now_ms: int) -> list[bytes]:
        """Frames for one Noise plaintext to ``peer``: encrypted now, or queued behind a
        handshake (its first message when none runs yet)."""
        if self.dms.established(peer):
            return self._encrypted(peer, plaintext, now_ms)
        waiting = self._pending.pop(peer, [])
        if len(waiting) >= PENDING_PER_PEER:
            raise BridgeError(NETWORK, BridgeReason.RATE_LIMITED, "too many waiting messages")
        self._pending[peer] = [*waiting, plaintext]
        while len(self._pending) > PENDING_PEERS:
            self._pending.popitem(last=False)
        if self.dms.handshaking(peer) and waiting:
            return []
        first = self.dms.start(peer)
        return self._noise_frames(MessageType.NOISE_HANDSHAKE, peer, first, now_ms)
