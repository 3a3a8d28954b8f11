"""The bitchat peers a bridge has heard, and the public messages it accepts from them.

A peer is known from a verified announce (``verify_announce``).
Like upstream (``BLEAnnounceTrustPolicy``), the first Ed25519 signing key seen for a peer id is
kept, and a later announce with another key for the same peer id is refused: the announce's
self-signature cannot tell a copied Noise key from the real one, so first sight wins.
A public message is accepted only from a known peer, signed by its pinned key, inside the
replay window, once.

Bounded: at most ``capacity`` peers, the least recently heard forgotten first (a forgotten
peer is pinned afresh by its next announce).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from meshchat.bridges.bitchat.announce import Announcement, verify_announce
from meshchat.bridges.bitchat.packet import NETWORK, BitchatPacket
from meshchat.bridges.bitchat.public import ReplayWindow, message_id, verify_message
from meshchat.bridges.marks import BITCHAT_MARK
from meshchat.errors import BridgeError, BridgeReason

__all__ = ["MARK", "BitchatPeers", "PublicText"]

#: How a bridged bitchat conversation is marked wherever it is shown.
MARK = BITCHAT_MARK


@dataclass(frozen=True, slots=True)
class PublicText:
    """A public message accepted from bitchat. ``nickname`` is the sender's claim;
    ``message_id`` names the message wherever it travels (:func:`message_id`)."""

    peer_id: bytes
    nickname: str
    text: str
    timestamp: int
    message_id: bytes = b""


class BitchatPeers:
    """Known peers (pinned signing keys) and the replay window for their public messages."""

    def __init__(self, capacity: int = 1024, window: ReplayWindow | None = None) -> None:
        self.capacity = capacity
        self.window = window or ReplayWindow()
        self._peers: OrderedDict[bytes, Announcement] = OrderedDict()

    def __len__(self) -> int:
        return len(self._peers)

    def get(self, peer_id: bytes) -> Announcement | None:
        return self._peers.get(peer_id)

    def accept_announce(self, packet: BitchatPacket, now_ms: int) -> Announcement:
        """Verify an announce and remember its peer; SENDER_MISMATCH if its signing key is not
        the one pinned for its peer id (and every error of ``verify_announce``)."""
        announcement = verify_announce(packet, now_ms)
        known = self._peers.pop(announcement.peer_id, None)
        if known is not None and known.signing_key != announcement.signing_key:
            self._peers[announcement.peer_id] = known
            raise BridgeError(
                NETWORK, BridgeReason.SENDER_MISMATCH, "a new signing key for a pinned peer"
            )
        self._peers[announcement.peer_id] = announcement
        while len(self._peers) > self.capacity:
            self._peers.popitem(last=False)
        return announcement

    def accept_message(self, packet: BitchatPacket, now_ms: int) -> PublicText:
        """A public message from a known peer, verified and admitted once; UNKNOWN_SENDER,
        NOT_TEXT, STALE, FROM_FUTURE, UNSIGNED, BAD_SIGNATURE or DUPLICATE otherwise."""
        peer = self._peers.get(packet.sender_id)
        if peer is None:
            raise BridgeError(NETWORK, BridgeReason.UNKNOWN_SENDER, packet.sender_id.hex())
        text = verify_message(packet, peer.signing_key, now_ms)
        self.window.admit(packet, now_ms)
        return PublicText(
            packet.sender_id, peer.nickname, text, packet.timestamp, message_id(packet)
        )
