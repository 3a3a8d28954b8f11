"""One BLE connection carried from its first ATT value to its end, and the link it becomes.

A :class:`Session` sits on one :class:`~.seam.BleConnection`. Every frame it sends or receives
is one byte of *channel* followed by a body, cut into fragments (:mod:`.fragment`):

=======  ============  ======================================================================
channel  name          body
=======  ============  ======================================================================
0        handshake     a :class:`~meshchat.wire.handshake.LinkHandshake` frame
1        data          a meshchat packet, for the node (at most ``MAX_PACKET_SIZE`` bytes),
                       sealed with the handshake's :class:`LinkCipher`
2        control       ``01`` + the sender's current advertisement id (sent after the
                       handshake and at each rotation, so a peer that was dialled by us also
                       recognises our advertisements and does not dial back), sealed too
=======  ============  ======================================================================

Theory of operation:

============  ===============================  ==============================================
state         event                            action, next state
============  ===============================  ==============================================
HANDSHAKE     :meth:`begin`                    start the handshake (the central sends its
                                               first message); start the handshake timer
HANDSHAKE     handshake frame                  feed it; send replies; when done: UP and
                                               ``on_ready`` (the transport decides to keep
                                               the session or close it)
HANDSHAKE     data or control frame            dropped (counted)
HANDSHAKE     HandshakeError or timer expires  close; CLOSED
UP            data frame                       decrypt; ``on_frame``
UP            control frame                    decrypt; ``on_control``
UP            a frame that does not decrypt    close (the two directions' nonces are out of
                                               step for good); CLOSED
any           connection ends / :meth:`close`  drop partial frames and the queue; CLOSED;
                                               ``on_closed`` once
============  ===============================  ==============================================

Sending is never blocking: :meth:`enqueue` puts a frame on a queue bounded in frames and bytes
and returns False when it is full. One writer task per session takes frames in order, cuts
each at the connection's current value size (:attr:`~.seam.BleConnection.value_size`), and
awaits each write, so a slow radio holds at most the bounded queue plus one frame in memory.
Handshake and control frames (a few small ones per session) bypass the bounds so that a full
data queue cannot stall the protocol.

File frames (:meth:`enqueue_bulk`, the link's ``send_bulk``) wait in a second queue, bounded
apart (``bulk_frames``, ``bulk_bytes``), which the writer takes from only when the first is
empty, one whole frame at a time: a text or ack queued during a transfer waits for at most
the file frame on the air (at MTU 517 four ATT values, a few milliseconds at radio speed), and
a full file queue never refuses a text. Frames of the first queue are sealed as they are
queued; a file frame is sealed when the writer takes it, which is after every frame written
before it was sealed, so the peer opens frames in the order the link cipher's nonces advance.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum, auto

from meshchat.errors import FramingError, HandshakeError, TransportError
from meshchat.identity import Identity, PublicIdentity
from meshchat.transports.base import Link
from meshchat.transports.ble.fragment import Fragmenter, Reassembler, ReassemblyStats
from meshchat.transports.ble.rotating_id import ADV_ID_SIZE
from meshchat.transports.ble.seam import BleConnection
from meshchat.wire.handshake import CIPHER_OVERHEAD, LinkCipher, LinkHandshake
from meshchat.wire.packet import MAX_PACKET_SIZE

__all__ = [
    "CHANNEL_CONTROL",
    "CHANNEL_DATA",
    "CHANNEL_HANDSHAKE",
    "MAX_LINK_FRAME",
    "BleLink",
    "Session",
    "SessionLimits",
]

_log = logging.getLogger(__name__)

CHANNEL_HANDSHAKE = 0
CHANNEL_DATA = 1
CHANNEL_CONTROL = 2
_CONTROL_ADV_ID = 0x01
#: a link frame: channel byte + the largest meshchat packet, sealed
MAX_LINK_FRAME = 1 + MAX_PACKET_SIZE + CIPHER_OVERHEAD


@dataclass(frozen=True, slots=True)
class SessionLimits:
    """Bounds of one session's memory and patience."""

    queue_frames: int = 64
    queue_bytes: int = 64 * 1024
    #: file frames (``send_bulk``): beyond either bound refused, the receiver asks again
    bulk_frames: int = 128
    bulk_bytes: int = 192 * 1024
    handshake_timeout: float = 10.0
    reassembly_timeout: float = 15.0
    max_reassemblies: int = 8
    reassembly_bytes: int = 16 * 1024


class _State(Enum):
    HANDSHAKE = auto()
    UP = auto()
    CLOSED = auto()


class Session:
    """Handshake, framing and the send queue of one BLE connection."""

    def __init__(
        self,
        connection: BleConnection,
        identity: Identity,
        limits: SessionLimits,
        *,
        on_ready: Callable[[Session], None],
        on_frame: Callable[[Session, bytes], None],
        on_control: Callable[[Session, bytes], None],
        on_closed: Callable[[Session], None],
        peer_adv_id: bytes | None = None,
    ) -> None:
        self.connection = connection
        self.limits = limits
        #: the peer's advertisement id when known (from the scan that led to dialling, or from
        #: its control frames)
        self.peer_adv_id = peer_adv_id
        #: the BleLink once the transport reported this session up
        self.link: BleLink | None = None
        self.framing_errors = 0
        self.dropped_frames = 0
        # the central dialled: it is the handshake's initiator
        self._handshake = LinkHandshake(identity, initiator=connection.initiator)
        self._cipher: LinkCipher | None = None
        self._state = _State.HANDSHAKE
        self._fragmenter = Fragmenter(MAX_LINK_FRAME)
        self._reassembler = Reassembler(
            max_frame_size=MAX_LINK_FRAME,
            max_pending=limits.max_reassemblies,
            max_buffered=limits.reassembly_bytes,
            timeout=limits.reassembly_timeout,
        )
        self._queue: deque[tuple[int, bytes]] = deque()
        self._queued_bytes = 0
        #: file frames, plaintext until the writer takes them (see the module's docstring)
        self._bulk: deque[bytes] = deque()
        self._bulk_bytes = 0
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._on_ready = on_ready
        self._on_frame = on_frame
        self._on_control = on_control
        self._on_closed = on_closed
        self._loop = asyncio.get_running_loop()

    # -- state -----------------------------------------------------------------------------

    @property
    def initiator(self) -> bool:
        return self.connection.initiator

    @property
    def up(self) -> bool:
        return self._state is _State.UP

    @property
    def closed(self) -> bool:
        return self._state is _State.CLOSED

    @property
    def peer(self) -> PublicIdentity:
        """The proven peer; only once the session is up."""
        return self._handshake.peer

    @property
    def reassembly(self) -> ReassemblyStats:
        return self._reassembler.stats

    @property
    def partial_frames(self) -> int:
        """Frames being reassembled now."""
        return self._reassembler.pending

    @property
    def buffered_bytes(self) -> int:
        """Bytes held by this session: partial frames received plus frames queued to send."""
        return self._reassembler.buffered + self._queued_bytes + self._bulk_bytes

    # -- lifecycle -------------------------------------------------------------------------

    def begin(self) -> None:
        """Start the handshake; call once, right after creating the session."""
        self._writer = asyncio.ensure_future(self._write_loop())
        self._timer = self._loop.call_later(self.limits.handshake_timeout, self._handshake_expired)
        # Start first: values that arrived early are delivered by attach() and the handshake
        # must already be started to take the peer's first message.
        for first in self._handshake.start():
            self._push(CHANNEL_HANDSHAKE, first)
        self.connection.attach(self._on_value, self._connection_closed)

    async def close(self) -> None:
        """Disconnect; ``on_closed`` follows once."""
        if self.closed:
            return
        await self.connection.close()
        self._connection_closed()

    def tick(self, now: float) -> None:
        """Housekeeping: drop partial frames that timed out."""
        self._reassembler.expire(now)

    def _handshake_expired(self) -> None:
        if self._state is _State.HANDSHAKE:
            _log.info("BLE handshake with %s timed out", self.connection.address)
            self._spawn_close()

    def _spawn_close(self) -> None:
        task = asyncio.ensure_future(self.close())
        task.add_done_callback(_ignore_result)

    def _connection_closed(self) -> None:
        if self._state is _State.CLOSED:
            return
        self._state = _State.CLOSED
        if self._timer is not None:
            self._timer.cancel()
        if self._writer is not None and self._writer is not _current_task():
            self._writer.cancel()
        self._reassembler.clear()
        self._queue.clear()
        self._queued_bytes = 0
        self._bulk.clear()
        self._bulk_bytes = 0
        self._on_closed(self)

    # -- sending ---------------------------------------------------------------------------

    def enqueue(self, frame: bytes) -> bool:
        """Queue a data frame; False if the session is not up, the frame too large, or the
        queue full."""
        if self._state is not _State.UP or not 0 < len(frame) <= MAX_PACKET_SIZE:
            return False
        if (
            len(self._queue) >= self.limits.queue_frames
            or self._queued_bytes + len(frame) > self.limits.queue_bytes
        ):
            self.dropped_frames += 1
            return False
        self._push(CHANNEL_DATA, frame)
        return True

    def enqueue_bulk(self, frame: bytes) -> bool:
        """Queue a data frame at file priority (after every frame of :meth:`enqueue`);
        False if the session is not up, the frame too large, or the file queue full."""
        if self._state is not _State.UP or not 0 < len(frame) <= MAX_PACKET_SIZE:
            return False
        if (
            len(self._bulk) >= self.limits.bulk_frames
            or self._bulk_bytes + len(frame) > self.limits.bulk_bytes
        ):
            self.dropped_frames += 1
            return False
        self._bulk.append(frame)
        self._bulk_bytes += len(frame)
        self._wake.set()
        return True

    def send_adv_id(self, adv_id: bytes) -> None:
        """Tell the peer which advertisement id we use now."""
        if self._state is _State.UP:
            self._push(CHANNEL_CONTROL, bytes([_CONTROL_ADV_ID]) + adv_id)

    def _push(self, channel: int, body: bytes) -> None:
        if channel != CHANNEL_HANDSHAKE and self._cipher is not None:
            body = self._cipher.encrypt(body)  # in queue order, which is the order written
        self._queue.append((channel, body))
        self._queued_bytes += len(body)
        self._wake.set()

    async def _write_loop(self) -> None:
        try:
            while not self.closed:
                if self._queue:
                    channel, body = self._queue.popleft()
                    self._queued_bytes -= len(body)
                elif self._bulk and self._cipher is not None:
                    body = self._bulk.popleft()
                    self._bulk_bytes -= len(body)
                    channel, body = CHANNEL_DATA, self._cipher.encrypt(body)
                else:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                frame = bytes([channel]) + body
                for fragment in self._fragmenter.split(frame, self.connection.value_size):
                    await self.connection.write(fragment)
        except TransportError as exc:
            _log.debug("BLE write to %s ended: %s", self.connection.address, exc)
        except FramingError as exc:  # an ATT MTU too small for a frame: the link is unusable
            _log.warning("BLE link to %s cannot carry frames: %s", self.connection.address, exc)
        if not self.closed:
            await self.close()

    # -- receiving -------------------------------------------------------------------------

    def _on_value(self, value: bytes) -> None:
        if self.closed:
            return
        try:
            frame = self._reassembler.feed(value, self._loop.time())
        except FramingError as exc:
            self.framing_errors += 1
            _log.debug("bad fragment from %s: %s", self.connection.address, exc)
            return
        if frame is None:
            return
        if not frame:  # pragma: no cover - fragments always carry at least one byte
            return
        channel, body = frame[0], frame[1:]
        if channel == CHANNEL_HANDSHAKE:
            self._on_handshake(body)
        elif (
            self._state is not _State.UP
            or self._cipher is None
            or channel not in (CHANNEL_DATA, CHANNEL_CONTROL)
        ):
            self.framing_errors += 1
        else:
            try:
                body = self._cipher.decrypt(body)
            except FramingError as exc:
                self.framing_errors += 1
                _log.info("BLE link with %s: %s; closing", self.connection.address, exc)
                self._spawn_close()
                return
            self._on_sealed(channel, body)

    def _on_sealed(self, channel: int, body: bytes) -> None:
        if channel == CHANNEL_DATA:
            if body:
                self._on_frame(self, body)
        elif len(body) == 1 + ADV_ID_SIZE and body[0] == _CONTROL_ADV_ID:  # CHANNEL_CONTROL
            self._on_control(self, body[1:])

    def _on_handshake(self, body: bytes) -> None:
        if self._state is not _State.HANDSHAKE:
            self.framing_errors += 1
            return
        try:
            replies = self._handshake.receive(body)
        except HandshakeError as exc:
            _log.info("BLE handshake with %s failed: %s", self.connection.address, exc)
            self._spawn_close()
            return
        for reply in replies:
            self._push(CHANNEL_HANDSHAKE, reply)
        if self._handshake.done:
            self._cipher = self._handshake.cipher()
            self._state = _State.UP
            if self._timer is not None:
                self._timer.cancel()
            self._on_ready(self)


class BleLink(Link):
    """A proven BLE link as the node sees it."""

    transport = "ble"

    def __init__(self, session: Session, link_id: str) -> None:
        self.link_id = link_id
        self.peer = session.peer
        self.initiator = session.initiator
        self._session = session

    def send(self, frame: bytes) -> bool:
        return self._session.enqueue(frame)

    def send_bulk(self, frame: bytes) -> bool:
        return self._session.enqueue_bulk(frame)

    async def close(self) -> None:
        await self._session.close()

    def describe(self) -> str:
        connection = self._session.connection
        role = "central" if connection.initiator else "peripheral"
        rssi = f", {connection.rssi} dBm" if connection.rssi is not None else ""
        return f"BLE {connection.address} (we are {role}, MTU {connection.mtu}{rssi})"

    @property
    def session(self) -> Session:
        return self._session


def _current_task() -> asyncio.Task[object] | None:
    with contextlib.suppress(RuntimeError):
        return asyncio.current_task()
    return None  # pragma: no cover


def _ignore_result(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        _log.debug("closing a BLE session failed: %r", task.exception())
