"""The node's side of the bitchat bridge (opt-in: ``meshchat daemon --bitchat``).

Theory of operation
-------------------
The node becomes one bitchat node in both roles, as upstream's phones are: upstream's GATT
service on a bumble controller (:class:`~meshchat.bridges.bitchat.ble.BitchatGatt`, the
peripheral that phones dial) and a central that dials bitchat peripherals it sees advertising
(:class:`~meshchat.bridges.bitchat.central.BitchatCentral`), one mesh behind both (one dedupe;
what one role relays the other sends on too), a bitchat identity derived from the
meshchat identity (so its peer id stays the same across restarts, and tells nothing about the
meshchat keys), announced under the user's display name. It relays bitchat packets as a bitchat
node does (:mod:`meshchat.bridges.bitchat.mesh`).

bitchat's public chat is the conversation ``#bitchat``, which is also meshchat's *public*
channel ``#bitchat`` (signed, not encrypted): that channel is how public bitchat text crosses
meshchat, over LAN, Bluetooth and the relay (the daemon adds ``#bitchat`` to the channels its
relays bridge), so a gateway on another island re-emits it to its own bitchat crowd.

=====================  ===================================================================
bitchat text heard     stored in ``#bitchat`` as from ``<nick>@bitchat:<peer id>`` with its
                       bitchat message id as msg id; carried into the meshchat channel as
                       ``<nick>@bitchat: <text>`` under the same msg id (rate limited)
meshchat ``#bitchat``  a channel message from another meshchat node (a remote gateway's
message                carrier, or a meshchat user): re-emitted once, signed by our bitchat
                       identity, as ``⇄ <meshchat sender> (meshchat): <text>`` (rate limited)
the user sends         a signed bitchat public message from our identity, stored as ours,
                       and carried into the channel under its bitchat message id
=====================  ===================================================================

Once each, no loops: every text is named by one 16-byte id on both sides (the bitchat message
id of its first bitchat form; a meshchat-born text keeps its meshchat msg id), and the gateway
remembers the ids it has carried or emitted. Two gateways that hear the same bitchat text
carry it under the same msg id, which meshchat stores once. A bitchat text that starts with
the re-emission mark ``⇄`` is never carried (it is a gateway's re-emission, whose carrier
already crossed; a person who types the mark only keeps their own text on their island).

bitchat DMs (Noise XX, :mod:`meshchat.bridges.bitchat.dm`) end at this node: a private
message from a bitchat peer is shown in the conversation ``#bitchat:dm:<peer id>`` (marked as a
bitchat DM, another network, not a meshchat contact), and what the user sends there is
encrypted to that peer alone (:mod:`._bitchat_dm`). DMs are never carried to other meshchat
nodes; at most 20 are taken in, then one per second. The peer's DELIVERED marks what the user
sent it delivered; the node's ``read`` notice (the user read the conversation) answers the
peer's messages with read receipts (:mod:`meshchat.bridges.bitchat.receipts`).

Nothing else crosses: only messages of the conversation ``#bitchat`` from the public channel
are re-emitted, and none at all while a private channel of that name is joined.

Several gateways in one crowd: each would re-emit the same meshchat message. A gateway learns
the others from their re-emissions (marked texts from their bitchat peer ids); from then on,
for each message, the gateway whose SHA-256(msg id || peer id) is lowest re-emits at once and
the others wait 1.5 s and re-emit only if they did not hear it (so one copy reaches the crowd,
and another if the first gateway is gone). Until both gateways have heard each other, a
message may come twice (measured: one or two such messages).

A meshchat message older than 6 hours (a late delivery, history caught up) is not re-emitted:
bitchat refuses public messages that old. Names put into re-emitted text are escaped.

Limits: bitchat -> meshchat 10 carried texts, then one per 3 s (after the per-peer and total
caps of :class:`~meshchat.bridges.bitchat.mesh.BitchatMesh`); meshchat -> bitchat 10
re-emitted texts, then one per 2 s; 16,384 ids remembered.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections import OrderedDict, deque
from typing import TYPE_CHECKING, Any

from meshchat.bridges._ratelimit import TokenBucket
from meshchat.bridges.marks import BITCHAT_CONVERSATION as CONVERSATION
from meshchat.bridges.marks import BITCHAT_MARK as MARK
from meshchat.crypto.channel import ChannelKey
from meshchat.display import safe_line
from meshchat.errors import MeshchatError, UsageError
from meshchat.identity import clean_name
from meshchat.node._bitchat_dm import BitchatDirect
from meshchat.node._types import NodeNotice

if TYPE_CHECKING:
    from bumble.device import Device

    from meshchat.bridges.bitchat.ble import BitchatGatt
    from meshchat.bridges.bitchat.central import BitchatCentral
    from meshchat.bridges.bitchat.peers import PublicText
    from meshchat.bridges.bitchat.public import BitchatIdentity
    from meshchat.node import Node
    from meshchat.store import Message

__all__ = ["CONVERSATION", "ECHO_MARK", "BitchatGateway", "bitchat_identity", "carrier_text"]

log = logging.getLogger(__name__)
NOTICE_SENDER = "bitchat bridge"
#: what starts a text a gateway re-emits into bitchat (never carried back)
ECHO_MARK = "\u21c4"
SEEN_CAPACITY = 16_384
#: how long opening the Bluetooth controller may take
OPEN_TIMEOUT_S = 10.0
#: how often our announce is repeated to the centrals
ANNOUNCE_EVERY_S = 30.0
#: how long a gateway not first in turn waits for another gateway of its crowd to re-emit
STANDBY_S = 1.5
#: other gateways remembered, and their recent re-emissions
MAX_GATEWAYS = 64
MAX_ECHOES = 256
#: what is older is not re-emitted (bitchat's own limit for public messages: 6 hours)
MAX_AGE_MS = 6 * 3600 * 1000
#: longest text carried or re-emitted, in UTF-8 bytes (meshchat's text limit, with room)
MAX_CARRIED_BYTES = 900


def _id(*parts: bytes) -> bytes:
    return hashlib.sha256(b"\x00".join((b"meshchat bitchat", *parts))).digest()[:16]


def _cut(text: str) -> str:
    body = text.encode("utf-8")
    if len(body) <= MAX_CARRIED_BYTES:
        return text
    return body[: MAX_CARRIED_BYTES - 3].decode("utf-8", "ignore") + "\u2026"


def carrier_text(heard: PublicText) -> str:
    """How a bitchat text reads inside meshchat's ``#bitchat`` channel."""
    return _cut(f"{heard.nickname}@bitchat: {heard.text}")


def sender_name(heard: PublicText) -> str:
    """A bitchat sender as stored: its claimed nickname, the network and its peer id (never
    a meshchat contact's name: contact names have no ``@``)."""
    return f"{heard.nickname}@bitchat:{heard.peer_id.hex()}"


def bitchat_identity(node: Node) -> BitchatIdentity:
    """Our bitchat keys, derived one-way from the meshchat signing seed."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    from meshchat.bridges.bitchat.public import BitchatIdentity

    seed = hashlib.blake2b(
        node.identity.private_bytes()[0], digest_size=64, person=b"mc-bitchat-keys"
    ).digest()
    return BitchatIdentity(
        X25519PrivateKey.from_private_bytes(seed[:32]),
        Ed25519PrivateKey.from_private_bytes(seed[32:]),
    )


class _Seen:
    def __init__(self) -> None:
        self.items: OrderedDict[bytes, None] = OrderedDict()

    def add(self, key: bytes) -> bool:
        """False when ``key`` was there already."""
        if key in self.items:
            return False
        self.items[key] = None
        while len(self.items) > SEEN_CAPACITY:
            self.items.popitem(last=False)
        return True


class BitchatGateway:
    """bitchat's public chat as the conversation ``#bitchat`` of ``node``."""

    def __init__(
        self,
        node: Node,
        controller: str = "usb:0",
        *,
        nickname: str | None = None,
        device: Device | None = None,
        central: bool = True,
        announce_every_s: float = ANNOUNCE_EVERY_S,
        read_receipts: bool = True,
    ) -> None:
        self.node = node
        self.controller = controller
        self.nickname = clean_name(nickname or node.name) or node.name
        self.conversation = CONVERSATION
        self.mark = MARK
        self.channel = ChannelKey.public(CONVERSATION)
        self.identity = bitchat_identity(node)
        self._device = device
        self._transport: Any = None
        self.gatt: BitchatGatt | None = None
        self.central: BitchatCentral | None = None
        self._want_central = central
        self.announce_every_s = announce_every_s
        self._seen = _Seen()
        self._carry = TokenBucket(10, 3.0)
        self._emit = TokenBucket(10, 2.0)
        self.direct = BitchatDirect(self, read_receipts=read_receipts)
        self._gateways: OrderedDict[bytes, None] = OrderedDict()
        self._echoes: deque[str] = deque(maxlen=MAX_ECHOES)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._unsubscribe: Any = None
        #: what was carried, emitted and refused, for status and tests
        self.counters: dict[str, int] = {}

    def count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1

    # -- life cycle ------------------------------------------------------------------------

    async def start(self) -> None:
        from meshchat.bridges.bitchat.ble import BitchatGatt
        from meshchat.bridges.bitchat.central import BitchatCentral
        from meshchat.bridges.bitchat.mesh import BitchatMesh

        channels = await self.node.channels()
        if any(c.name == CONVERSATION and c.key is not None for c in channels):
            raise UsageError(
                f"a private channel is named {CONVERSATION}: leave it before bridging bitchat"
            )
        try:
            async with asyncio.timeout(OPEN_TIMEOUT_S):
                device = self._device or await self._open()
        except TimeoutError as exc:
            raise UsageError(f"bitchat: no answer from the controller {self.controller}") from exc
        if not any(c.name == CONVERSATION for c in channels):
            await self.node.join(CONVERSATION)
        await self.node.submit(self._notice)
        mesh = BitchatMesh(self.identity, self.nickname)
        clock = lambda: int(self.node.clock())  # noqa: E731
        self.gatt = BitchatGatt(
            device,
            mesh,
            on_peer=self.direct.peer,
            on_text=self._heard,
            on_direct=self.direct.decision,
            clock_ms=clock,
        )
        await self.gatt.start()
        if self._want_central:
            self.central = BitchatCentral(
                device,
                mesh,
                on_text=self._heard,
                on_direct=self.direct.decision,
                on_peer=self.direct.peer,
                clock_ms=clock,
            )
            self.gatt.relay_hook = self.central.broadcast
            self.central.relay_hook = self.gatt.broadcast
            await self.central.start()
        self._unsubscribe = self.node.subscribe(self._on_notice)
        self.node.bridges[CONVERSATION] = self
        self.spawn(self._announce_loop())

    async def _open(self) -> Device:
        from bumble import hci
        from bumble.device import Device
        from bumble.transport import open_transport

        try:
            self._transport = await open_transport(self.controller)
        except Exception as exc:  # bumble raises several kinds for a missing controller
            raise UsageError(
                f"bitchat: no Bluetooth controller at {self.controller}: {exc!r}"
            ) from exc
        address = hci.Address.generate_static_address()
        return Device.with_hci(
            "meshchat-bitchat", address, self._transport.source, self._transport.sink
        )

    async def stop(self) -> None:
        self.node.bridges.pop(CONVERSATION, None)
        self.direct.forget()
        if self._unsubscribe is not None:
            self._unsubscribe()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.central is not None:
            with contextlib.suppress(Exception):
                await self.central.stop()
        if self.gatt is not None:
            with contextlib.suppress(Exception):
                await self.gatt.stop()
        if self._transport is not None:
            with contextlib.suppress(Exception):
                await self._transport.close()

    def spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _announce_loop(self) -> None:
        while True:
            await asyncio.sleep(self.announce_every_s)
            if self.gatt is not None:
                for frame in self.gatt.mesh.announce(int(self.node.clock())):
                    await self._broadcast(frame)

    async def _broadcast(self, frame: bytes) -> None:
        """A frame of ours to every bitchat link, in both roles."""
        if self.gatt is not None:
            await self.gatt.broadcast(frame)
        if self.central is not None:
            await self.central.broadcast(frame)

    async def _public(self, text: str) -> bytes:
        """Our signed public message on every link; its message id."""
        if self.gatt is None:
            raise UsageError("the bitchat bridge is not running")
        msg_id, frames = self.gatt.mesh.public(text, int(self.node.clock()))
        for frame in frames:
            await self._broadcast(frame)
        return msg_id

    async def _notice(self) -> None:
        now = self.node.clock()
        store = self.node.store
        text = (
            f"{MARK}. bitchat's public chat, through this node's Bluetooth as "
            f"{self.nickname!r} (peer id {self.identity.peer_id.hex()}), and carried between "
            "meshchat nodes in the public channel #bitchat. Anyone can read it and send as any "
            "nickname; names here are claims."
        )
        await store.call(
            store.store.add_incoming,
            CONVERSATION,
            _id(b"notice"),
            _id(b"bridge"),
            NOTICE_SENDER,
            text,
            now,
            now,
        )

    # -- bitchat -> meshchat ---------------------------------------------------------------

    def _heard(self, heard: PublicText) -> None:
        if heard.text.startswith(ECHO_MARK):
            # another gateway's re-emission: never carried; it tells us that gateway is here
            self.count("echo_heard")
            self._echoes.append(heard.text)
            self._gateways.pop(heard.peer_id, None)
            self._gateways[heard.peer_id] = None
            while len(self._gateways) > MAX_GATEWAYS:
                self._gateways.popitem(last=False)
            return
        self.spawn(self.node.submit(self._take, heard))

    async def _take(self, heard: PublicText) -> None:
        if not self._seen.add(heard.message_id):
            self.count("duplicate")
            return
        node = self.node
        now = node.clock()
        store = node.store
        try:
            message = await store.call(
                store.store.add_incoming,
                CONVERSATION,
                heard.message_id,
                _id(b"peer", heard.peer_id),
                sender_name(heard),
                heard.text,
                min(heard.timestamp, now),
                now,
            )
        except MeshchatError as exc:
            log.warning("bitchat text not stored: %s", exc)
            return
        if message is None:
            self.count("duplicate")  # carried here by another gateway first
            return
        node.notify(NodeNotice("message", message=message))
        self.count("heard")
        if not self._carry.take(now / 1000):
            self.count("carry_limited")
            return
        await self._carry_out(heard.message_id, carrier_text(heard), now)

    async def _carry_out(self, msg_id: bytes, text: str, now: int) -> None:
        """Send ``text`` into meshchat's ``#bitchat`` under ``msg_id``; nothing is stored."""
        node = self.node
        try:
            outputs = node.engine.send_channel(self.channel.channel_id, msg_id, text, now)
        except MeshchatError as exc:
            log.warning("bitchat text not carried: %s", exc)
            return
        await node.effects.run(outputs)
        self.count("carried")

    # -- meshchat -> bitchat ---------------------------------------------------------------

    def _on_notice(self, notice: NodeNotice) -> None:
        if notice.kind == "read" and notice.conversation is not None:
            self.direct.on_read(notice.conversation)
            return
        message = notice.message
        if notice.kind != "message" or message is None or message.outgoing:
            return
        if message.conversation != CONVERSATION or message.msg_id in self._seen.items:
            return
        if message.created_ms < self.node.clock() - MAX_AGE_MS:
            self.count("stale_not_emitted")  # bitchat would refuse it as a replay anyway
            return
        self.spawn(self._reemit(message))

    def _private_namesake(self) -> bool:
        return any(c.name == CONVERSATION and c.private for c in self.node.engine.channels)

    def _first_in_turn(self, msg_id: bytes) -> bool:
        """Whether we re-emit ``msg_id`` at once: of the gateways heard in our crowd and us,
        the one whose hash with the message id is lowest goes first, the others stand by."""

        def rank(peer: bytes) -> bytes:
            return hashlib.sha256(msg_id + peer).digest()

        own = rank(self.identity.peer_id)
        return all(own < rank(other) for other in self._gateways)

    def _echoed(self, text: str) -> bool:
        tail = f" (meshchat): {text[:200]}"
        return any(tail in echo for echo in self._echoes)

    async def _reemit(self, message: Message) -> None:
        if self.gatt is None or not self._seen.add(message.msg_id):
            return
        if self._private_namesake():
            self.count("private_refused")
            return
        if not self._first_in_turn(message.msg_id):
            await asyncio.sleep(STANDBY_S)
            if self._echoed(message.text):
                self.count("emitted_by_another")
                return
        if not self._emit.take(self.node.clock() / 1000):
            self.count("emit_limited")
            return
        text = _cut(f"{ECHO_MARK} {safe_line(message.sender_name)} (meshchat): {message.text}")
        emitted = await self._public(text)
        self._seen.add(emitted)
        self.count("emitted")

    # -- the user ----------------------------------------------------------------------------

    async def send_text(self, text: str) -> Message:
        """Send ``text`` to bitchat's public chat, store it as ours, carry it to meshchat."""
        if self.gatt is None:
            raise UsageError("the bitchat bridge is not running")
        if not text.strip():
            raise UsageError("nothing to send")
        text = _cut(text)
        node = self.node
        msg_id = await self._public(text)
        self._seen.add(msg_id)
        now = node.clock()
        store = node.store
        message = await store.call(
            store.store.add_own_copy,
            CONVERSATION,
            msg_id,
            node.identity.node_id,
            node.name,
            text,
            now,
            now,
        )
        if message is None:
            raise MeshchatError("the sent text could not be stored")
        await self._carry_out(msg_id, text, now)
        return message

    def status(self) -> dict[str, Any]:
        """What ``meshchat status --json`` shows of the bridge."""
        gatt = self.gatt
        return {
            "network": "bitchat",
            "conversation": CONVERSATION,
            "mark": MARK,
            "nickname": self.nickname,
            "peer_id": self.identity.peer_id.hex(),
            "centrals": 0 if gatt is None else gatt.centrals,
            "peripherals": 0 if self.central is None else len(self.central.links),
            "peers": 0 if gatt is None else len(gatt.mesh.peers),
            "refused": {} if gatt is None else {r.value: n for r, n in gatt.refused.items()},
            "counters": dict(self.counters),
            "dm": self.direct.listed(),
        }
