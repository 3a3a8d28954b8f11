"""A link over a byte stream (TCP today), shared by every stream-based transport.

Theory of operation. A connection goes through three phases:

==============  ==================================================  ==========================
phase           what happens                                        ends when
==============  ==================================================  ==========================
handshake       :func:`open_stream_link` runs :class:`LinkHandshake`    the peer's identity proof
                (Noise XX, the dialler as initiator) over the       verifies (a
                framing; only frames up to ``MAX_HANDSHAKE_FRAME``  :class:`StreamLink` is
                bytes are accepted, all within                      returned), or any error or
                ``handshake_timeout``                               the timeout (raises
                                                                    :class:`TransportError`)
running         :meth:`StreamLink.start` reports ``link_up``; a     EOF, a framing error (also
                reader task feeds :class:`FrameDecoder`, decrypts   a frame that does not
                each frame with the handshake's :class:`LinkCipher` decrypt), an ``OSError``,
                and hands it to the handler; a writer task drains   or :meth:`StreamLink.close`
                the bounded send queue (frames are encrypted as
                they are queued), awaiting ``drain()`` so a slow
                peer fills the queue instead of memory
closed          the socket is closed (gracefully, aborted if it     (final)
                does not finish within a second); ``link_down``
                is reported once, and only if ``link_up`` was
==============  ==================================================  ==========================

A frame sent while nothing is queued and the socket has taken everything written so far goes
to the socket at once, not a loop turn later through the writer task: the queue holds frames
only while the socket is backed up, so the order of frames and the queue's bound are unchanged.
Nagle's algorithm is off on the socket (``TCP_NODELAY``, as asyncio's own TCP transports set
it), so a small frame, such as an ack, is not held back waiting for the peer's TCP ack of the
previous one.

A link that completed its handshake but was never started (a transport found it to be a
duplicate) is closed without any report, so the handler only ever sees ``link_up`` followed by
one ``link_down``. Frames that arrived in the same read as the last handshake frame are kept and
delivered right after ``link_up``.

There is no keepalive frame in the wire format (an empty frame is a framing error), so dead
peers are found by TCP itself; :func:`enable_tcp_keepalive` makes that take seconds, not hours.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import socket
from collections.abc import Callable, Sequence

from meshchat.errors import FramingError, HandshakeError, TransportError
from meshchat.identity import Identity, PublicIdentity
from meshchat.transports.base import Link, LinkHandler
from meshchat.wire.framing import FrameDecoder
from meshchat.wire.framing import frame as encode_frame
from meshchat.wire.handshake import (
    CIPHER_OVERHEAD,
    MAX_HANDSHAKE_FRAME,
    LinkCipher,
    LinkHandshake,
)
from meshchat.wire.packet import MAX_PACKET_SIZE

__all__ = [
    "DEFAULT_HANDSHAKE_TIMEOUT",
    "DEFAULT_QUEUE_FRAMES",
    "StreamLink",
    "abort_stream",
    "enable_tcp_keepalive",
    "open_stream_link",
]

logger = logging.getLogger(__name__)

DEFAULT_HANDSHAKE_TIMEOUT = 5.0
DEFAULT_QUEUE_FRAMES = 256
#: file frames a link queues (beyond: refused; the receiver asks again)
BULK_QUEUE_FRAMES = 512
#: file frames written before the writer looks at its text queue again
BULK_IN_WRITE = 4
#: the largest frame on the wire: a packet and its encryption tag
MAX_WIRE_FRAME = MAX_PACKET_SIZE + CIPHER_OVERHEAD
#: bytes asked of the socket per read; bounds what the decoder holds at once
READ_CHUNK = 16 * 1024
#: how long a graceful close may take to flush before the connection is aborted
CLOSE_TIMEOUT = 1.0

#: called once when a link closes, before ``link_down`` is reported (transports drop it from
#: their tables here)
ClosedCallback = Callable[["StreamLink"], None]


class StreamLink(Link):
    """A proven link over an asyncio stream pair. Made by :func:`open_stream_link`."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        handler: LinkHandler,
        *,
        peer: PublicIdentity,
        transport_name: str,
        link_id: str,
        initiator: bool,
        describe: str = "",
        decoder: FrameDecoder | None = None,
        pending: Sequence[bytes] = (),
        queue_frames: int = DEFAULT_QUEUE_FRAMES,
        on_closed: ClosedCallback | None = None,
        cipher: LinkCipher | None = None,
        peer_port: int | None = None,
    ) -> None:
        if queue_frames < 1:
            raise ValueError("queue_frames must be at least 1")
        self.link_id = link_id
        self.transport = transport_name
        self.peer = peer
        self.initiator = initiator
        #: the port the peer says it listens on (from its handshake), if it listens
        self.peer_port = peer_port
        self._cipher = cipher
        self._reader = reader
        self._writer = writer
        self._handler = handler
        self._describe = describe
        self._decoder = decoder if decoder is not None else FrameDecoder(MAX_WIRE_FRAME)
        self._pending = list(pending)
        self._queue: asyncio.Queue[bytes] = asyncio.Queue(queue_frames)
        #: file frames, sent only when ``_queue`` is empty (see :meth:`send_bulk`)
        self._bulk: collections.deque[bytes] = collections.deque()
        self._bulk_limit = max(queue_frames, BULK_QUEUE_FRAMES)
        self._bulk_ready = asyncio.Event()
        self._on_closed = on_closed
        self._reader_task: asyncio.Task[None] | None = None
        self._writer_task: asyncio.Task[None] | None = None
        self._started = False
        self._reported_up = False
        self._closed = False
        self._closed_event = asyncio.Event()
        #: the node's queue for this link is full: read again once this is done
        self._hold: asyncio.Future[None] | None = None
        #: frames read before the node held this link's reading, delivered when it lets go
        self._unread: list[bytes] = []
        #: frames refused because the send queue was full
        self.dropped_frames = 0
        #: when the link was made and when it last carried a useful frame (loop clock)
        self.since = asyncio.get_running_loop().time()
        self.last_useful: float | None = None
        #: frames the node found useful
        self.useful_frames = 0

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("up" if self._started else "new")
        return f"<StreamLink {self.link_id} peer={self.peer.short_id} {state}>"

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def started(self) -> bool:
        return self._started

    @property
    def queued(self) -> int:
        """Frames waiting in the send queue."""
        return self._queue.qsize()

    def describe(self) -> str:
        return self._describe

    @property
    def local_address(self) -> tuple[str, int] | None:
        """This end's socket address, e.g. ``("10.0.0.2", 51234)``."""
        return _address(self._writer.get_extra_info("sockname"))

    @property
    def remote_address(self) -> tuple[str, int] | None:
        """The far end's socket address."""
        return _address(self._writer.get_extra_info("peername"))

    def credit(self) -> None:
        self.last_useful = asyncio.get_running_loop().time()
        self.useful_frames += 1

    def start(self) -> None:
        """Report ``link_up`` and begin carrying frames both ways. Call once."""
        if self._started or self._closed:
            raise TransportError(
                f"link {self.link_id} cannot be started twice or after close",
                transport=self.transport,
                reason="misuse",
            )
        self._started = True
        self._reported_up = True
        try:
            self._handler.link_up(self)
        except Exception:
            logger.exception("link_up handler failed for %s", self.link_id)
        if self._closed:  # the handler closed it from link_up
            return
        self._reader_task = asyncio.create_task(self._read_loop(), name=f"{self.link_id}-read")
        self._writer_task = asyncio.create_task(self._write_loop(), name=f"{self.link_id}-write")

    def send(self, frame: bytes) -> bool:
        """Queue one frame; False when the link is closed, the queue is full, or the frame is
        empty or larger than ``MAX_PACKET_SIZE`` (the same contract as every other link)."""
        if self._closed:
            return False
        if not 0 < len(frame) <= MAX_PACKET_SIZE:
            logger.warning("%s: refusing to send a %d-byte frame", self.link_id, len(frame))
            return False
        if self._queue.full():
            self.dropped_frames += 1
            return False
        sealed = self._cipher.encrypt(frame) if self._cipher is not None else frame
        data = encode_frame(sealed, MAX_WIRE_FRAME)
        if self._started and self._queue.empty() and self._socket_keeps_up():
            # Nothing waits before it: straight to the socket, without waking the writer
            # task (a loop turn later, after whatever else the caller does first).
            self._writer.write(data)
        else:
            self._queue.put_nowait(data)
        return True

    def send_bulk(self, frame: bytes) -> bool:
        """Queue one frame at file priority: the writer takes it only when no frame queued
        with :meth:`send` waits, and keeps at most ``BULK_IN_WRITE`` in a write."""
        if self._closed or not 0 < len(frame) <= MAX_PACKET_SIZE:
            return False
        if len(self._bulk) >= self._bulk_limit:
            self.dropped_frames += 1
            return False
        self._bulk.append(frame)  # sealed when written: the cipher's nonces follow the wire
        self._bulk_ready.set()
        return True

    def _next_bulk(self) -> bytes:
        """The next file frame, sealed and framed now (frames written before it, of either
        queue, were sealed before it, so the peer opens them in order)."""
        frame = self._bulk.popleft()
        sealed = self._cipher.encrypt(frame) if self._cipher is not None else frame
        return encode_frame(sealed, MAX_WIRE_FRAME)

    def _socket_keeps_up(self) -> bool:
        """Whether the socket took everything written so far (asyncio holds nothing back):
        only then may a frame skip the queue, so the queue's bound and order still hold."""
        transport = self._writer.transport
        return not transport.is_closing() and transport.get_write_buffer_size() == 0

    def shutdown(self, reason: str = "closed locally") -> None:
        """Begin closing now, without awaiting: ``link_down`` (if due) is reported before this
        returns. Frames already queued are still written. The socket finishes closing in the
        background; :meth:`close` waits for it."""
        self._mark_closed(reason, flush=True)

    async def close(self) -> None:
        """Close the link and its socket; reports ``link_down`` once if ``link_up`` was.

        Frames already queued are written before the connection closes (within a second)."""
        self._mark_closed("closed locally", flush=True)
        current = asyncio.current_task()
        tasks = [t for t in (self._reader_task, self._writer_task) if t and t is not current]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        await self._finish_close()

    async def wait_closed(self) -> None:
        """Return once the link is closed (for whatever reason)."""
        await self._closed_event.wait()

    # -- the two pumps -------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        reason = "end of stream"
        try:
            pending, self._pending = self._pending, []
            self._deliver(pending)
            while not self._closed:
                await self._held()
                if self._unread:  # frames read before a hold: theirs is the first turn
                    unread, self._unread = self._unread, []
                    self._deliver(unread)
                    continue
                data = await self._reader.read(READ_CHUNK)
                if not data:
                    break
                self._deliver(self._decoder.feed(data))
        except FramingError as exc:
            reason = f"framing error: {exc}"
        except OSError as exc:
            reason = f"read failed: {exc!r}"
        except Exception as exc:  # a bug; keep the link table truthful all the same
            logger.exception("reader of %s failed", self.link_id)
            reason = f"reader failed: {exc!r}"
        self._mark_closed(reason)
        await self._finish_close()

    def hold_reading(self, until: asyncio.Future[None]) -> None:
        self._hold = until

    async def _held(self) -> None:
        """Wait while the node holds this link's reading (see :meth:`Link.hold_reading`)."""
        hold, self._hold = self._hold, None
        if hold is None or hold.done():
            return
        closed: asyncio.Future[object] = asyncio.ensure_future(self._closed_event.wait())
        waiting: set[asyncio.Future[object]] = {closed, asyncio.ensure_future(hold)}
        try:
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        finally:
            closed.cancel()

    def _deliver(self, frames: list[bytes]) -> None:
        for i, sealed in enumerate(frames):
            if self._closed:
                return
            if self._hold is not None and not self._hold.done():
                # The node asked to hold: the rest of this read waits for it, unopened,
                # rather than being opened and dropped (at most one read's frames)
                self._unread = frames[i:]
                return
            payload = self._cipher.decrypt(sealed) if self._cipher is not None else sealed
            try:
                self._handler.frame_received(self, payload)
            except Exception:
                logger.exception("frame handler failed on %s", self.link_id)

    async def _write_loop(self) -> None:
        reason = ""
        try:
            while not self._closed:
                if self._queue.empty() and not self._bulk:
                    await self._next_frame()
                while not self._queue.empty():
                    self._writer.write(self._queue.get_nowait())
                # file frames only in small runs, so a text queued meanwhile waits for at
                # most BULK_IN_WRITE of them (and what the socket buffer holds)
                for _ in range(min(BULK_IN_WRITE, len(self._bulk))):
                    if not self._queue.empty():
                        break
                    self._writer.write(self._next_bulk())
                await self._writer.drain()
        except OSError as exc:  # ConnectionError is an OSError
            reason = f"write failed: {exc!r}"
        except Exception as exc:  # a bug; keep the link table truthful all the same
            logger.exception("writer of %s failed", self.link_id)
            reason = f"writer failed: {exc!r}"
        if reason:
            self._mark_closed(reason)
            await self._finish_close()

    async def _next_frame(self) -> None:
        """Wait until a frame is queued, of either priority."""
        self._bulk_ready.clear()
        getter = asyncio.ensure_future(self._queue.get())
        bulk = asyncio.ensure_future(self._bulk_ready.wait())
        try:
            await asyncio.wait({getter, bulk}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            bulk.cancel()
            if getter.done() and not getter.cancelled():
                self._writer.write(getter.result())
            else:
                getter.cancel()

    # -- closing ---------------------------------------------------------------------------------

    def _mark_closed(self, reason: str, *, flush: bool = False) -> None:
        """The synchronous half of closing: idempotent, never awaits."""
        if self._closed:
            return
        self._closed = True
        logger.debug("link %s to %s closing: %s", self.link_id, self.peer.short_id, reason)
        current = asyncio.current_task()
        for task in (self._reader_task, self._writer_task):
            if task is not None and task is not current:
                task.cancel()
        if flush and self._started and not self._writer.is_closing():
            while not self._queue.empty():
                self._writer.write(self._queue.get_nowait())
            while self._bulk:
                self._writer.write(self._next_bulk())
        self._writer.close()
        self._closed_event.set()
        if self._on_closed is not None:
            try:
                self._on_closed(self)
            except Exception:
                logger.exception("close callback failed for %s", self.link_id)
        if self._reported_up:
            try:
                self._handler.link_down(self)
            except Exception:
                logger.exception("link_down handler failed for %s", self.link_id)

    async def _finish_close(self) -> None:
        await _wait_writer_closed(self._writer)


def _address(info: object) -> tuple[str, int] | None:
    if isinstance(info, tuple) and len(info) >= 2:
        return str(info[0]), int(info[1])
    return None


async def _wait_writer_closed(writer: asyncio.StreamWriter) -> None:
    """Wait for a closing socket to finish, aborting it if it cannot flush in time."""
    writer.close()
    # A task of its own, so that the timeout does not cancel the protocol's close future.
    waiter = asyncio.ensure_future(writer.wait_closed())
    try:
        done, _ = await asyncio.wait({waiter}, timeout=CLOSE_TIMEOUT)
        if not done:
            writer.transport.abort()
        with contextlib.suppress(OSError, RuntimeError):
            await waiter
    except asyncio.CancelledError:
        writer.transport.abort()
        waiter.cancel()
        raise


async def abort_stream(writer: asyncio.StreamWriter) -> None:
    """Drop a connection that never became a link, without flushing anything."""
    writer.transport.abort()
    with contextlib.suppress(OSError, RuntimeError):
        await writer.wait_closed()


async def _run_handshake(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    handshake: LinkHandshake,
    decoder: FrameDecoder,
) -> list[bytes]:
    """Run ``handshake`` to its end; returns the frames that followed its last message."""
    for first in handshake.start():
        writer.write(encode_frame(first, MAX_HANDSHAKE_FRAME))
    await writer.drain()
    while True:
        data = await reader.read(READ_CHUNK)
        if not data:
            raise ConnectionError("connection closed during the handshake")
        frames = decoder.feed(data)
        for index, received in enumerate(frames):
            if len(received) > MAX_HANDSHAKE_FRAME:
                raise HandshakeError(f"handshake frame of {len(received)} bytes")
            for reply in handshake.receive(received):
                writer.write(encode_frame(reply, MAX_HANDSHAKE_FRAME))
            if handshake.done:
                await writer.drain()
                return frames[index + 1 :]
        await writer.drain()


async def open_stream_link(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    identity: Identity,
    handler: LinkHandler,
    *,
    transport_name: str,
    link_id: str,
    initiator: bool,
    describe: str = "",
    handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
    queue_frames: int = DEFAULT_QUEUE_FRAMES,
    start: bool = True,
    on_closed: ClosedCallback | None = None,
    port: int | None = None,
) -> StreamLink:
    """Prove both sides over a fresh connection and wrap it in a :class:`StreamLink`.

    With ``start=True`` the link is reported up and running on return; with ``start=False`` the
    caller decides first (e.g. duplicate resolution) and then calls :meth:`StreamLink.start` or
    :meth:`StreamLink.close`. On any failure the connection is closed and
    :class:`TransportError` is raised, its ``__cause__`` telling what went wrong (a
    :class:`HandshakeError`, :class:`FramingError`, ``OSError`` or ``TimeoutError``).
    ``port`` is the port this side listens on, told to the peer inside the encrypted handshake.
    """
    _set_no_delay(writer)
    decoder = FrameDecoder(MAX_WIRE_FRAME)
    handshake = LinkHandshake(identity, initiator=initiator, port=port)
    try:
        async with asyncio.timeout(handshake_timeout):
            pending = await _run_handshake(reader, writer, handshake, decoder)
    except (HandshakeError, FramingError, OSError, TimeoutError) as exc:
        await abort_stream(writer)
        what = "timed out" if isinstance(exc, TimeoutError) else "failed"
        raise TransportError(
            f"{link_id}: handshake {what} ({describe}): {exc}",
            transport=transport_name,
            address=describe,
            reason="handshake-timeout" if isinstance(exc, TimeoutError) else "handshake-failed",
        ) from exc
    except BaseException:
        await abort_stream(writer)
        raise
    link = StreamLink(
        reader,
        writer,
        handler,
        peer=handshake.peer,
        transport_name=transport_name,
        link_id=link_id,
        initiator=initiator,
        describe=describe,
        decoder=decoder,
        pending=pending,
        queue_frames=queue_frames,
        on_closed=on_closed,
        cipher=handshake.cipher(),
        peer_port=handshake.peer_port,
    )
    if start:
        link.start()
    return link


def _set_no_delay(writer: asyncio.StreamWriter) -> None:
    """Turn Nagle's algorithm off on a TCP socket (a no-op for other sockets)."""
    sock = writer.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def enable_tcp_keepalive(
    writer: asyncio.StreamWriter, *, idle: int = 15, interval: int = 5, count: int = 3
) -> None:
    """Let the kernel notice a silently vanished peer within about ``idle + interval * count`` s.

    Also bounds how long unacknowledged data may wait (``TCP_USER_TIMEOUT``) where the platform
    offers it. Options a platform lacks are skipped.
    """
    sock = writer.get_extra_info("socket")
    if sock is None:
        return
    options = [
        (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1),
        (socket.IPPROTO_TCP, getattr(socket, "TCP_KEEPIDLE", None), idle),
        (socket.IPPROTO_TCP, getattr(socket, "TCP_KEEPINTVL", None), interval),
        (socket.IPPROTO_TCP, getattr(socket, "TCP_KEEPCNT", None), count),
        (
            socket.IPPROTO_TCP,
            getattr(socket, "TCP_USER_TIMEOUT", None),
            (idle + interval * count) * 1000,
        ),
    ]
    for level, option, value in options:
        if option is None:
            continue
        with contextlib.suppress(OSError):
            sock.setsockopt(level, option, value)
