"""Meshtastic's MQTT envelopes and channel encryption, pure code over the ``meshtastic``
package's protobufs.

Facts from the firmware (``meshtastic/firmware``):

- A channel key (PSK) of one byte is an alias: 0 means no encryption, 1 the public default
  key ``defaultpsk`` (``src/mesh/Channels.h``), n > 1 the default key with its last byte
  raised by n - 1; a key shorter than 16 bytes is zero-padded to 16, one between 17 and 31 to
  32 (``Channels::getKey``). 16 bytes is AES-128, 32 AES-256.
- The channel hash a packet carries is the XOR of the channel name's bytes, XORed with the XOR
  of the expanded key's bytes (``Channels::generateHash``).
- Payloads are AES-CTR with the 16-byte counter block ``packet id (u64 LE) || from node
  (u32 LE) || 4 zero bytes``, counting in the last 4 bytes (``CryptoEngine::initNonce``,
  ``encryptAESCtr``, ``setCounterSize(4)``); the plaintext is a ``Data`` protobuf.
- The firmware refuses to decrypt more than 256 bytes (``perhapsDecode``), a ``Data`` payload
  holds at most 233 bytes (``DATA_PAYLOAD_LEN``), hop limits above 7 are refused
  (``HOP_MAX``), and a decrypt that parses as a Data with port 0 (``UNKNOWN_APP``) counts as
  a failure (that is how a wrong key usually shows).
- On MQTT a packet travels in a ``ServiceEnvelope`` (packet, channel_id, gateway_id) on topic
  ``msh/<REGION>/2/e/<CHANNEL>/!<gateway node id>`` (``src/mqtt/MQTT.cpp``).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from functools import reduce
from typing import Any

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from google.protobuf.message import DecodeError
from meshtastic.protobuf import mesh_pb2, mqtt_pb2, portnums_pb2

from meshchat.errors import BridgeError, BridgeReason

__all__ = [
    "BROADCAST_NODE",
    "DEFAULT_KEY",
    "MAX_TEXT_BYTES",
    "Channel",
    "Inbound",
    "build_envelope",
    "decode_envelope",
    "expand_key",
    "node_id",
    "nodeinfo_payload",
    "text_of",
]

NETWORK = "meshtastic"
#: ``defaultpsk``: the public key every device ships with (alias 1, base64 "AQ==").
DEFAULT_KEY = bytes.fromhex("d4f1bb3a20290759f0bcffabcf4e6901")
BROADCAST_NODE = 0xFFFFFFFF
#: ``meshtastic_Constants_DATA_PAYLOAD_LEN``
MAX_TEXT_BYTES = 233
#: The firmware's decrypt buffer (``perhapsDecode``: rawSize > 256 is fatal).
MAX_ENCRYPTED = 256
#: Largest envelope we parse; a real one is under 400 bytes.
MAX_ENVELOPE = 1024
HOP_MAX = 7
TEXT_PORT = portnums_pb2.TEXT_MESSAGE_APP
NODEINFO_PORT = portnums_pb2.NODEINFO_APP
#: Reserved node numbers (0 to 3 and broadcast) a node may not use.
RESERVED_NODES = frozenset({0, 1, 2, 3, BROADCAST_NODE})


def _bad(reason: BridgeReason, detail: str) -> BridgeError:
    return BridgeError(NETWORK, reason, detail)


def expand_key(b64: str) -> bytes:
    """The AES key a channel's base64 PSK stands for (``Channels::getKey``)."""
    text = b64.strip().replace("-", "+").replace("_", "/")
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _bad(BridgeReason.BAD_FIELD, "the channel key is not base64") from exc
    if len(raw) == 1:
        if raw[0] == 0:
            raise _bad(BridgeReason.BAD_FIELD, "unencrypted channels are not bridged")
        return DEFAULT_KEY[:-1] + bytes(((DEFAULT_KEY[-1] + raw[0] - 1) & 0xFF,))
    if not raw or len(raw) > 32:
        raise _bad(BridgeReason.BAD_FIELD, f"a {len(raw)}-byte channel key")
    return raw.ljust(16 if len(raw) <= 16 else 32, b"\x00")


def _xor(data: bytes) -> int:
    return reduce(lambda acc, byte: acc ^ byte, data, 0)


@dataclass(frozen=True, slots=True)
class Channel:
    """A Meshtastic channel: its name (as in topics and ``channel_id``) and expanded key."""

    name: str
    key: bytes

    def __post_init__(self) -> None:
        if not self.name or len(self.name.encode()) > 11 or "/" in self.name or "#" in self.name:
            raise _bad(BridgeReason.BAD_FIELD, f"channel name {self.name!r}")
        if len(self.key) not in (16, 32):
            raise _bad(BridgeReason.BAD_FIELD, "channel keys are 16 or 32 bytes")

    @classmethod
    def from_psk(cls, name: str, b64: str = "AQ==") -> Channel:
        return cls(name, expand_key(b64))

    @property
    def hash(self) -> int:
        """The one-byte channel hash packets carry."""
        return _xor(self.name.encode("utf-8")) ^ _xor(self.key)

    @property
    def key_is_public(self) -> bool:
        """True for the default key family that every device knows."""
        return self.key[:-1] == DEFAULT_KEY[:-1] and len(self.key) == 16

    @property
    def conversation(self) -> str:
        """The meshchat conversation this channel is shown as."""
        return f"#meshtastic-{self.name.lower()}"

    @property
    def mark(self) -> str:
        """How the conversation is marked wherever it is shown."""
        key = "channel key is public" if self.key_is_public else "shared channel key"
        return f"other network, {key}"

    def crypt(self, packet_id: int, from_node: int, data: bytes) -> bytes:
        """AES-CTR both ways (``CryptoEngine::encryptPacket``)."""
        counter = packet_id.to_bytes(8, "little") + from_node.to_bytes(4, "little") + bytes(4)
        cipher = Cipher(algorithms.AES(self.key), modes.CTR(counter)).encryptor()
        return cipher.update(data) + cipher.finalize()


def node_id(num: int) -> str:
    """The ``!xxxxxxxx`` form of a node number."""
    return f"!{num:08x}"


@dataclass(frozen=True, slots=True)
class Inbound:
    """A packet of our channel, decrypted."""

    from_node: int
    to_node: int
    packet_id: int
    portnum: int
    payload: bytes
    hop_limit: int
    gateway_id: str


def _parse(message: Any, data: bytes, what: str) -> Any:
    try:
        message.ParseFromString(data)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise _bad(BridgeReason.BAD_FIELD, f"{what} is not a valid protobuf") from exc
    return message


def decode_envelope(data: bytes, channel: Channel) -> Inbound:
    """Decrypt a ServiceEnvelope of ``channel``. Raises :class:`BridgeError`: OVERSIZED,
    BAD_FIELD (not a protobuf, no packet, bad hop limit), WRONG_CHANNEL (another channel id
    or hash), UNDECRYPTABLE (not encrypted, or not a Data under our key)."""
    if len(data) > MAX_ENVELOPE:
        raise _bad(BridgeReason.OVERSIZED, f"a {len(data)}-byte envelope")
    envelope = _parse(mqtt_pb2.ServiceEnvelope(), data, "the envelope")
    if not envelope.HasField("packet"):
        raise _bad(BridgeReason.BAD_FIELD, "an envelope without a packet")
    if envelope.channel_id != channel.name:
        raise _bad(BridgeReason.WRONG_CHANNEL, f"channel id {envelope.channel_id[:32]!r}")
    packet = envelope.packet
    if packet.hop_limit > HOP_MAX or packet.hop_start > HOP_MAX:
        raise _bad(BridgeReason.BAD_FIELD, f"hop limit {packet.hop_limit}/{packet.hop_start}")
    if packet.WhichOneof("payload_variant") != "encrypted":
        raise _bad(BridgeReason.UNDECRYPTABLE, "a plaintext packet on an encrypted channel")
    if len(packet.encrypted) > MAX_ENCRYPTED:
        raise _bad(BridgeReason.OVERSIZED, f"{len(packet.encrypted)} encrypted bytes")
    if packet.channel != channel.hash:
        raise _bad(BridgeReason.WRONG_CHANNEL, f"channel hash {packet.channel:#x}")
    sender = getattr(packet, "from")
    plain = channel.crypt(packet.id, sender, packet.encrypted)
    try:
        decoded = _parse(mesh_pb2.Data(), plain, "the decrypted payload")
    except BridgeError as exc:
        raise _bad(BridgeReason.UNDECRYPTABLE, "does not decrypt to a Data") from exc
    if decoded.portnum == portnums_pb2.UNKNOWN_APP:
        raise _bad(BridgeReason.UNDECRYPTABLE, "decrypts to port 0")
    if len(decoded.payload) > MAX_TEXT_BYTES:
        raise _bad(BridgeReason.OVERSIZED, f"a {len(decoded.payload)}-byte payload")
    return Inbound(
        from_node=sender,
        to_node=packet.to,
        packet_id=packet.id,
        portnum=decoded.portnum,
        payload=bytes(decoded.payload),
        hop_limit=packet.hop_limit,
        gateway_id=envelope.gateway_id,
    )


def text_of(inbound: Inbound) -> str:
    """The text of a TEXT_MESSAGE_APP packet; NOT_TEXT or BAD_FIELD otherwise."""
    if inbound.portnum != TEXT_PORT:
        raise _bad(BridgeReason.NOT_TEXT, f"port {inbound.portnum}")
    try:
        return inbound.payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _bad(BridgeReason.BAD_FIELD, "text is not UTF-8") from exc


def nodeinfo_payload(num: int, long_name: str, short_name: str) -> bytes:
    """A ``User`` for NODEINFO_APP, names cut to the firmware's 39 and 4 bytes."""

    def cut(text: str, limit: int) -> str:
        raw = text.encode("utf-8")[:limit]
        return raw.decode("utf-8", "ignore")

    user = mesh_pb2.User(
        id=node_id(num),
        long_name=cut(long_name, 39),
        short_name=cut(short_name, 4),
        hw_model=mesh_pb2.PRIVATE_HW,
    )
    return bytes(user.SerializeToString())


def build_envelope(
    channel: Channel,
    *,
    from_node: int,
    packet_id: int,
    portnum: int,
    payload: bytes,
    to_node: int = BROADCAST_NODE,
    hop_limit: int = 3,
) -> bytes:
    """An encrypted ServiceEnvelope as a gateway node publishes it."""
    if len(payload) > MAX_TEXT_BYTES:
        raise _bad(BridgeReason.OVERSIZED, f"a {len(payload)}-byte payload")
    if from_node in RESERVED_NODES or not 0 < packet_id < 2**32:
        raise _bad(BridgeReason.BAD_FIELD, "reserved node number or bad packet id")
    data = mesh_pb2.Data(portnum=portnum, payload=payload)
    packet = mesh_pb2.MeshPacket(
        to=to_node,
        id=packet_id,
        channel=channel.hash,
        hop_limit=hop_limit,
        hop_start=hop_limit,
        encrypted=channel.crypt(packet_id, from_node, data.SerializeToString()),
    )
    setattr(packet, "from", from_node)  # "from" is a Python keyword
    envelope = mqtt_pb2.ServiceEnvelope(
        packet=packet, channel_id=channel.name, gateway_id=node_id(from_node)
    )
    return bytes(envelope.SerializeToString())
