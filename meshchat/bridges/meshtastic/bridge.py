"""The Meshtastic bridge's state, sans-IO: MQTT messages in, texts out; texts in, MQTT
publications out.

Theory of operation
-------------------
The bridge is one Meshtastic node on one channel. :meth:`MeshtasticBridge.receive` takes a
``(topic, payload, now)`` from the broker and returns a :class:`Heard` text, or None for
packets it takes in silently (NODEINFO names, other ports are refused with NOT_TEXT); it raises
:class:`BridgeError` for whatever it refuses, so the caller can count reasons.
:meth:`~MeshtasticBridge.send_text` turns a meshchat text into :class:`Publish` values (a
NODEINFO first when one is due, then the text). Nothing here touches a socket or a clock.

What is refused, in order: topics outside the channel, envelopes :func:`decode_envelope`
refuses, packets from our own node number (our echo), a (sender, packet id) seen before,
non-text ports, and senders over their rate. Outbound, texts are cut to 233 bytes, one
message id is published once, a text the bridge itself received from Meshtastic is not sent
back, and the channel's rate is capped.

Limits (both stated in docs/bridges.md): inbound, each Meshtastic node gets a bucket of 5
texts refilled at one per 6 s and the channel a bucket of 20 refilled at one per second;
outbound, a bucket of 3 texts refilled at one per 10 s (LoRa airtime is scarce: a LongFast
packet takes about a second on air and every radio repeats it).
"""

from __future__ import annotations

import hashlib
import secrets
from collections import OrderedDict
from dataclasses import dataclass

from meshchat.bridges._ratelimit import TokenBucket
from meshchat.bridges.meshtastic.codec import (
    MAX_TEXT_BYTES,
    NETWORK,
    NODEINFO_PORT,
    RESERVED_NODES,
    TEXT_PORT,
    Channel,
    build_envelope,
    decode_envelope,
    node_id,
    nodeinfo_payload,
    text_of,
)
from meshchat.errors import BridgeError, BridgeReason

__all__ = ["Heard", "MeshtasticBridge", "Publish", "TokenBucket", "node_number"]

NODEINFO_EVERY_S = 3 * 3600.0  #: the firmware's default NodeInfo broadcast interval
SEEN_CAPACITY = 4096
NAMES_CAPACITY = 1024


@dataclass(frozen=True, slots=True)
class Publish:
    """An MQTT publication for the adapter to make."""

    topic: str
    payload: bytes
    packet_id: int


@dataclass(frozen=True, slots=True)
class Heard:
    """A text from the Meshtastic channel. ``name`` is what the sender announced (untrusted,
    unsanitized; None before its NODEINFO arrives)."""

    from_node: int
    name: str | None
    text: str
    packet_id: int

    @property
    def sender(self) -> str:
        return node_id(self.from_node)


def node_number(seed: bytes) -> int:
    """A stable node number from ``seed`` that is not a reserved one."""
    num = int.from_bytes(hashlib.sha256(b"meshchat meshtastic node" + seed).digest()[:4], "big")
    return num if num not in RESERVED_NODES else 0x4D430000 | (num & 0xFFFF)


class _Seen:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.items: OrderedDict[object, None] = OrderedDict()

    def add(self, key: object) -> bool:
        """False when ``key`` was already there."""
        if key in self.items:
            return False
        self.items[key] = None
        while len(self.items) > self.capacity:
            self.items.popitem(last=False)
        return True


class MeshtasticBridge:
    """One Meshtastic node on one channel, on the topics ``msh/<region>/2/e/<channel>/...``."""

    def __init__(
        self,
        channel: Channel,
        *,
        region: str = "US",
        node_num: int,
        long_name: str,
        short_name: str = "MC",
        root: str = "msh",
    ) -> None:
        if node_num in RESERVED_NODES or not 0 < node_num < 2**32:
            raise BridgeError(NETWORK, BridgeReason.BAD_FIELD, f"node number {node_num}")
        self.channel = channel
        self.node_num = node_num
        self.long_name = long_name
        self.short_name = short_name
        self.prefix = f"{root}/{region}/2/e/{channel.name}/"
        self._next_id = secrets.randbelow(2**31) + 1
        self._seen_in = _Seen(SEEN_CAPACITY)
        self._sent = _Seen(SEEN_CAPACITY)
        self._echo_guard = _Seen(SEEN_CAPACITY)
        self._names: OrderedDict[int, str] = OrderedDict()
        self._per_sender: OrderedDict[int, TokenBucket] = OrderedDict()
        self._channel_in = TokenBucket(20, 1.0)
        self._channel_out = TokenBucket(3, 10.0)
        self._nodeinfo_due = float("-inf")

    @property
    def subscribe_topic(self) -> str:
        return self.prefix + "#"

    @property
    def publish_topic(self) -> str:
        return self.prefix + node_id(self.node_num)

    def name_of(self, num: int) -> str | None:
        return self._names.get(num)

    def _packet_id(self) -> int:
        packet_id = self._next_id
        self._next_id = self._next_id % (2**32 - 1) + 1
        return packet_id

    def _bucket(self, num: int) -> TokenBucket:
        bucket = self._per_sender.pop(num, None) or TokenBucket(5, 6.0)
        self._per_sender[num] = bucket
        while len(self._per_sender) > NAMES_CAPACITY:
            self._per_sender.popitem(last=False)
        return bucket

    def receive(self, topic: str, payload: bytes, now: float) -> Heard | None:
        """One MQTT message from the broker (see the module docstring)."""
        if not topic.startswith(self.prefix):
            raise BridgeError(NETWORK, BridgeReason.WRONG_CHANNEL, f"topic {topic[:80]!r}")
        inbound = decode_envelope(payload, self.channel)
        if inbound.from_node == self.node_num:
            raise BridgeError(NETWORK, BridgeReason.DUPLICATE, "our own packet")
        if not self._seen_in.add((inbound.from_node, inbound.packet_id)):
            raise BridgeError(NETWORK, BridgeReason.DUPLICATE, f"packet {inbound.packet_id:#x}")
        if inbound.portnum == NODEINFO_PORT:
            self._learn_name(inbound.from_node, inbound.payload)
            return None
        text = text_of(inbound)
        if not (self._bucket(inbound.from_node).take(now) and self._channel_in.take(now)):
            raise BridgeError(NETWORK, BridgeReason.RATE_LIMITED, node_id(inbound.from_node))
        self._echo_guard.add(text)
        return Heard(inbound.from_node, self._names.get(inbound.from_node), text, inbound.packet_id)

    def _learn_name(self, num: int, payload: bytes) -> None:
        from meshtastic.protobuf import mesh_pb2

        user = mesh_pb2.User()
        try:
            user.ParseFromString(payload)
        except Exception as exc:  # protobuf raises DecodeError and, rarely, others
            raise BridgeError(NETWORK, BridgeReason.BAD_FIELD, "a bad NodeInfo") from exc
        if user.long_name:
            self._names.pop(num, None)
            self._names[num] = str(user.long_name)[:40]
            while len(self._names) > NAMES_CAPACITY:
                self._names.popitem(last=False)

    def nodeinfo(self, now: float) -> list[Publish]:
        """Our NODEINFO when one is due (first, then every 3 hours)."""
        if now < self._nodeinfo_due:
            return []
        self._nodeinfo_due = now + NODEINFO_EVERY_S
        packet_id = self._packet_id()
        payload = build_envelope(
            self.channel,
            from_node=self.node_num,
            packet_id=packet_id,
            portnum=NODEINFO_PORT,
            payload=nodeinfo_payload(self.node_num, self.long_name, self.short_name),
        )
        return [Publish(self.publish_topic, payload, packet_id)]

    def send_text(self, message_id: bytes, text: str, now: float) -> list[Publish]:
        """Publications for one meshchat text; DUPLICATE if ``message_id`` was sent, or the
        text came from this channel; RATE_LIMITED over the outbound rate."""
        if text in self._echo_guard.items:
            raise BridgeError(NETWORK, BridgeReason.DUPLICATE, "a text heard on this channel")
        if message_id in self._sent.items:
            raise BridgeError(NETWORK, BridgeReason.DUPLICATE, message_id.hex())
        if not self._channel_out.take(now):
            raise BridgeError(NETWORK, BridgeReason.RATE_LIMITED, "outbound")
        self._sent.add(message_id)
        body = text.encode("utf-8")
        if len(body) > MAX_TEXT_BYTES:
            body = body[: MAX_TEXT_BYTES - 3].decode("utf-8", "ignore").encode() + "…".encode()
        packet_id = self._packet_id()
        out = self.nodeinfo(now)
        out.append(
            Publish(
                self.publish_topic,
                build_envelope(
                    self.channel,
                    from_node=self.node_num,
                    packet_id=packet_id,
                    portnum=TEXT_PORT,
                    payload=body,
                ),
                packet_id,
            )
        )
        return out
