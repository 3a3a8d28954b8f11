"""bitchat's Noise handshake: ``Noise_XX_25519_ChaChaPoly_SHA256`` over the ``noiseprotocol``
package, and the 4-byte nonce prefix bitchat puts on transport messages.

Handshake messages travel in type 0x10 packets and transport messages in type 0x11 packets
(``MessageType.swift``). After the handshake, upstream sends each transport ciphertext as
``nonce(4, big-endian) || ciphertext`` so a receiver can accept messages out of order within
a window (``NoiseProtocol.swift``, ``extractNonceFromCiphertextPayload``). Upstream replays the
standard Noise test vectors (``bitchatTests/Noise/NoiseTestVectors.json``) against its
implementation; this module is checked against the same file.
"""

from __future__ import annotations

from noise.connection import Keypair, NoiseConnection

from meshchat.bridges.bitchat.packet import NETWORK
from meshchat.errors import BridgeError, BridgeReason

__all__ = ["PROTOCOL_NAME", "split_nonce", "with_nonce", "xx_connection"]

PROTOCOL_NAME = b"Noise_XX_25519_ChaChaPoly_SHA256"
NONCE_PREFIX = 4


def xx_connection(
    *,
    initiator: bool,
    static_private: bytes,
    prologue: bytes = b"",
    ephemeral_private: bytes | None = None,
) -> NoiseConnection:
    """A started XX handshake; ``ephemeral_private`` is for replaying test vectors only."""
    conn = NoiseConnection.from_name(PROTOCOL_NAME)
    if initiator:
        conn.set_as_initiator()
    else:
        conn.set_as_responder()
    conn.set_keypair_from_private_bytes(Keypair.STATIC, static_private)
    if ephemeral_private is not None:
        conn.set_keypair_from_private_bytes(Keypair.EPHEMERAL, ephemeral_private)
    if prologue:
        conn.set_prologue(prologue)
    conn.start_handshake()
    return conn


def with_nonce(nonce: int, ciphertext: bytes) -> bytes:
    """A transport frame as bitchat sends it."""
    if not 0 <= nonce < 2**32:
        raise BridgeError(NETWORK, BridgeReason.BAD_FIELD, f"nonce {nonce} exceeds 4 bytes")
    return nonce.to_bytes(NONCE_PREFIX, "big") + ciphertext


def split_nonce(frame: bytes) -> tuple[int, bytes]:
    """The nonce and ciphertext of a transport frame; a frame without room for the 16-byte
    tag is TRUNCATED."""
    if len(frame) < NONCE_PREFIX + 16:
        raise BridgeError(NETWORK, BridgeReason.TRUNCATED, f"{len(frame)}-byte transport frame")
    return int.from_bytes(frame[:NONCE_PREFIX], "big"), frame[NONCE_PREFIX:]
