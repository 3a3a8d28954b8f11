"""bitchat's wire protocol (``permissionlesstech/bitchat``): packets, announces, signed
public messages, fragments and the Noise handshake, as pure code."""

from meshchat.bridges.bitchat.announce import (
    Announcement,
    decode_announcement,
    encode_announcement,
    peer_id,
    verify_announce,
)
from meshchat.bridges.bitchat.fragments import Reassembler, parse_fragment, split
from meshchat.bridges.bitchat.packet import (
    BitchatPacket,
    MessageType,
    decode,
    encode,
    signing_bytes,
)
from meshchat.bridges.bitchat.public import BitchatIdentity, ReplayWindow, verify_message

__all__ = [
    "Announcement",
    "BitchatIdentity",
    "BitchatPacket",
    "MessageType",
    "Reassembler",
    "ReplayWindow",
    "decode",
    "decode_announcement",
    "encode",
    "encode_announcement",
    "parse_fragment",
    "peer_id",
    "signing_bytes",
    "split",
    "verify_announce",
    "verify_message",
]
