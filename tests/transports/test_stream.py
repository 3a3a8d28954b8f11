"""StreamLink over real TCP on 127.0.0.1 (and socket pairs for the fuzzing)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshchat.errors import FramingError, HandshakeError, TransportError
from meshchat.identity import Identity
from meshchat.transports.stream import (
    BULK_QUEUE_FRAMES,
    MAX_WIRE_FRAME,
    StreamLink,
    enable_tcp_keepalive,
    open_stream_link,
)
from meshchat.wire.framing import frame
from meshchat.wire.handshake import MAX_HANDSHAKE_FRAME, LinkHandshake
from meshchat.wire.packet import MAX_PACKET_SIZE

Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@pytest.fixture
async def tcp_pair() -> AsyncIterator[Callable[[], Awaitable[tuple[Streams, Streams]]]]:
    """Makes connected (client, server) stream pairs over real TCP on 127.0.0.1."""
    accepted: asyncio.Queue[Streams] = asyncio.Queue()

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await accepted.put((reader, writer))

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    writers: list[asyncio.StreamWriter] = []

    async def connect() -> tuple[Streams, Streams]:
        client = await asyncio.open_connection("127.0.0.1", port)
        served = await accepted.get()
        writers.extend([client[1], served[1]])
        return client, served

    yield connect
    server.close()
    for writer in writers:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    await server.wait_closed()


async def _link_pair(
    connect: Callable[[], Awaitable[tuple[Streams, Streams]]],
    handler_a: Any,
    handler_b: Any,
    **options: Any,
) -> tuple[StreamLink, StreamLink, Identity, Identity]:
    (reader_a, writer_a), (reader_b, writer_b) = await connect()
    alice, bob = Identity.generate(), Identity.generate()
    link_a, link_b = await asyncio.gather(
        open_stream_link(
            reader_a,
            writer_a,
            alice,
            handler_a,
            transport_name="test",
            link_id="test:a",
            initiator=True,
            describe="b",
            **options,
        ),
        open_stream_link(
            reader_b,
            writer_b,
            bob,
            handler_b,
            transport_name="test",
            link_id="test:b",
            initiator=False,
            describe="a",
            **options,
        ),
    )
    return link_a, link_b, alice, bob


async def test_links_prove_peers_and_carry_frames_both_ways(
    tcp_pair: Any, make_handler: Any
) -> None:
    ha, hb = make_handler(), make_handler()
    link_a, link_b, alice, bob = await _link_pair(tcp_pair, ha, hb)
    assert link_a.peer == bob.public and link_b.peer == alice.public
    assert link_a.initiator and not link_b.initiator
    assert ha.ups == [link_a] and hb.ups == [link_b]
    assert link_a.describe() == "b" and link_a.transport == "test"

    sent_ab = [os.urandom(n) for n in (1, 100, MAX_PACKET_SIZE)]
    sent_ba = [b"x" * 7, b"y" * 300]
    for payload in sent_ab:
        assert link_a.send(payload)
    for payload in sent_ba:
        assert link_b.send(payload)
    await hb.until(lambda: len(hb.frames) == 3)
    await ha.until(lambda: len(ha.frames) == 2)
    assert hb.payloads() == sent_ab and ha.payloads() == sent_ba
    assert all(link is link_b for link, _ in hb.frames)

    await link_a.close()
    await hb.until(lambda: hb.downs == [link_b])
    assert ha.downs == [link_a]
    await link_a.close()
    await link_b.close()
    assert ha.downs == [link_a] and hb.downs == [link_b]  # exactly once each
    assert not link_a.send(b"late")


async def test_close_flushes_queued_frames(tcp_pair: Any, make_handler: Any) -> None:
    ha, hb = make_handler(), make_handler()
    link_a, link_b, _, _ = await _link_pair(tcp_pair, ha, hb)
    payloads = [bytes([i]) * 50 for i in range(20)]
    for payload in payloads:
        assert link_a.send(payload)
    await link_a.close()  # nothing awaited between send and close: all still queued
    await hb.until(lambda: bool(hb.downs))
    assert hb.payloads() == payloads
    await link_b.close()


async def test_unstarted_link_closes_without_reports(tcp_pair: Any, make_handler: Any) -> None:
    ha, hb = make_handler(), make_handler()
    link_a, link_b, _, _ = await _link_pair(tcp_pair, ha, hb, start=False)
    assert not link_a.started and ha.events == [] and hb.events == []
    link_b.start()
    await link_a.close()
    await hb.until(lambda: bool(hb.downs))
    assert ha.events == [] and [kind for kind, _ in hb.events] == ["up", "down"]
    with pytest.raises(TransportError):
        link_a.start()


async def _backed_up_pair(
    make_handler: Any, queue_frames: int
) -> tuple[StreamLink, StreamLink, Any]:
    """Two links over a socket pair with small buffers; the second is not started, so nobody
    reads its socket and the first one's sends back up once the buffers are full."""
    left, right = socket.socketpair()
    for sock in (left, right):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    reader_a, writer_a = await asyncio.open_connection(sock=left)
    reader_b, writer_b = await asyncio.open_connection(sock=right)
    hb = make_handler()
    link_a, link_b = await asyncio.gather(
        open_stream_link(
            reader_a, writer_a, Identity.generate(), make_handler(), transport_name="t",
            link_id="t:a", initiator=True, queue_frames=queue_frames,
        ),
        open_stream_link(
            reader_b, writer_b, Identity.generate(), hb, transport_name="t",
            link_id="t:b", initiator=False, start=False,
        ),
    )  # fmt: skip
    return link_a, link_b, hb


async def test_send_returns_false_when_queue_full(make_handler: Any) -> None:
    link_a, link_b, hb = await _backed_up_pair(make_handler, queue_frames=4)
    # No await between the calls, so the writer task cannot drain the queue meanwhile: the
    # socket takes frames until it is backed up, then the queue takes 4, then none.
    results = [link_a.send(b"%06d" % i + b"f" * 1200) for i in range(200)]
    taken = results.index(False)
    assert taken > 4 and not any(results[taken:])
    assert link_a.queued == 4
    assert link_a.dropped_frames == 200 - taken
    assert not link_a.send(b"")
    assert not link_a.send(b"z" * (MAX_PACKET_SIZE + 1))
    link_b.start()
    await hb.until(lambda: len(hb.frames) == taken)
    assert hb.payloads() == [b"%06d" % i + b"f" * 1200 for i in range(taken)]
    assert link_a.send(b"room again")
    await link_a.close()
    await link_b.close()


async def test_a_frame_goes_to_the_socket_at_once(tcp_pair: Any, make_handler: Any) -> None:
    """With nothing queued and the socket keeping up, a frame is written by ``send`` itself,
    not a loop turn later by the writer task (an ack waits for nothing else the node does)."""
    ha, hb = make_handler(), make_handler()
    link_a, link_b, _, _ = await _link_pair(tcp_pair, ha, hb)
    assert link_a.send(b"ack")
    assert link_a.queued == 0
    transport = link_a._writer.transport
    assert transport.get_write_buffer_size() == 0  # the kernel has it already
    await hb.until(lambda: len(hb.frames) == 1)
    assert hb.payloads() == [b"ack"]
    await link_a.close()
    await link_b.close()


async def test_frames_keep_their_order_while_the_socket_backs_up(make_handler: Any) -> None:
    """Frames sent at once, queued, and sent while the queue drains arrive in send order: a
    frame skips the queue only when nothing is queued and the socket holds nothing back."""
    link_a, link_b, hb = await _backed_up_pair(make_handler, queue_frames=64)
    sent: list[bytes] = []
    for i in range(400):
        payload = b"%06d" % i + b"o" * 900
        if link_a.send(payload):
            sent.append(payload)
        if i == 100:
            link_b.start()  # the reader starts: the socket and the queue drain meanwhile
        if i % 7 == 0:
            await asyncio.sleep(0)
    assert link_a.dropped_frames > 0 or len(sent) == 400
    await hb.until(lambda: len(hb.frames) == len(sent))
    assert hb.payloads() == sent
    await link_a.close()
    await link_b.close()


async def test_a_frame_never_passes_queued_ones(tcp_pair: Any, make_handler: Any) -> None:
    """Frames queued before the link started are still queued when it starts (its writer
    task has not run yet) although the socket holds nothing: the next frame queues behind."""
    ha, hb = make_handler(), make_handler()
    link_a, link_b, _, _ = await _link_pair(tcp_pair, ha, hb, start=False)
    link_b.start()
    assert link_a.send(b"first") and link_a.send(b"second")
    link_a.start()
    assert link_a.send(b"third")  # no await since start: the first two are still queued
    assert link_a.queued == 3
    await hb.until(lambda: len(hb.frames) == 3)
    assert hb.payloads() == [b"first", b"second", b"third"]
    await link_a.close()
    await link_b.close()


async def test_links_turn_nagle_off(tcp_pair: Any, make_handler: Any) -> None:
    ha, hb = make_handler(), make_handler()
    link_a, link_b, _, _ = await _link_pair(tcp_pair, ha, hb)
    for link in (link_a, link_b):
        sock = link._writer.get_extra_info("socket")
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    await link_a.close()
    await link_b.close()


async def test_slow_reader_fills_queue_instead_of_memory(make_handler: Any) -> None:
    """A peer that stops reading: drain() blocks the writer, so the bounded queue fills."""
    ha = make_handler()
    left, right = socket.socketpair()
    for sock in (left, right):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    alice, bob = Identity.generate(), Identity.generate()
    reader_a, writer_a = await asyncio.open_connection(sock=left)
    reader_b, writer_b = await asyncio.open_connection(sock=right)
    link_a, link_b = await asyncio.gather(
        open_stream_link(
            reader_a,
            writer_a,
            alice,
            ha,
            transport_name="t",
            link_id="t:a",
            initiator=True,
            queue_frames=8,
        ),
        open_stream_link(
            reader_b,
            writer_b,
            bob,
            make_handler(),
            transport_name="t",
            link_id="t:b",
            initiator=False,
            start=False,
        ),
    )
    # link_b never starts, so nobody reads its socket.
    accepted = 0
    for _ in range(5000):
        if not link_a.send(b"p" * MAX_PACKET_SIZE):
            break
        accepted += 1
        await asyncio.sleep(0)
    assert 8 <= accepted < 5000
    await link_a.close()
    await link_b.close()


async def _respond(
    identity: Identity, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> tuple[LinkHandshake, bytes]:
    """Play the responder by hand up to the point where only our ID is left to send."""
    peer = LinkHandshake(identity, initiator=False)
    assert peer.start() == []
    (second,) = peer.receive(await _read_one_frame(reader))
    writer.write(frame(second, 256))
    (own_id,) = peer.receive(await _read_one_frame(reader))  # their M3
    assert peer.receive(await _read_one_frame(reader)) == []  # their ID
    assert peer.done
    return peer, own_id


async def test_frames_in_the_same_read_as_the_last_handshake_frame(
    tcp_pair: Any, make_handler: Any
) -> None:
    (reader_a, writer_a), (reader_b, writer_b) = await tcp_pair()
    ha = make_handler()
    alice, bob = Identity.generate(), Identity.generate()
    opening = asyncio.create_task(
        open_stream_link(
            reader_a, writer_a, alice, ha, transport_name="t", link_id="t:1", initiator=True
        )
    )
    peer, own_id = await _respond(bob, reader_b, writer_b)
    cipher = peer.cipher()
    # The last handshake frame and two data frames in one write: they arrive in one read.
    writer_b.write(
        frame(own_id, 256)
        + frame(cipher.encrypt(b"early"), 100)
        + frame(cipher.encrypt(b"bird"), 100)
    )
    link = await opening
    await ha.until(lambda: len(ha.frames) == 2)
    assert ha.payloads() == [b"early", b"bird"]
    assert ha.events[0] == ("up", link)
    assert link.peer == bob.public
    await link.close()


async def _raw_server_side(
    tcp_pair: Any, make_handler: Any, script: Callable[[Streams], Awaitable[None]], **options: Any
) -> tuple[BaseException | None, Any, bytes]:
    """Run open_stream_link against a raw peer scripted by ``script``.

    Returns the exception raised, the handler, and what the raw peer read after the script.
    """
    client, served = await tcp_pair()
    handler = make_handler()
    opening = asyncio.create_task(
        open_stream_link(
            served[0],
            served[1],
            Identity.generate(),
            handler,
            transport_name="t",
            link_id="t:1",
            initiator=False,
            **options,
        )
    )
    await script(client)
    error: BaseException | None = None
    try:
        link = await opening
        await link.close()
    except TransportError as exc:
        error = exc
    rest = await asyncio.wait_for(client[0].read(), 2.0)  # returns at EOF
    return error, handler, rest


async def _read_one_frame(reader: asyncio.StreamReader) -> bytes:
    size = int.from_bytes(await reader.readexactly(2), "big")
    return await reader.readexactly(size)


async def test_garbage_handshake_gets_no_link_and_is_closed(
    tcp_pair: Any, make_handler: Any
) -> None:
    async def script(streams: Streams) -> None:
        streams[1].write(frame(b"\xff\x00 not a handshake at all", 256))

    error, handler, rest = await _raw_server_side(tcp_pair, make_handler, script)
    assert isinstance(error, TransportError)
    assert error.reason == "handshake-failed" and error.transport == "t"
    assert isinstance(error.__cause__, HandshakeError)
    assert handler.events == []
    assert rest == b""  # the responder said nothing at all, then hung up


class _Liar(Identity):
    """An identity whose proofs are random bytes (it claims keys it cannot sign for)."""

    def sign(self, message: bytes) -> bytes:
        return os.urandom(64)


async def test_wrong_proof_gets_no_link(tcp_pair: Any, make_handler: Any) -> None:
    liar = Identity.generate()
    impostor = LinkHandshake(_Liar(liar._signing, liar._box), initiator=True)

    async def script(streams: Streams) -> None:
        reader, writer = streams
        (first,) = impostor.start()
        writer.write(frame(first, 256))
        third, forged = impostor.receive(await _read_one_frame(reader))
        writer.write(frame(third, 256) + frame(forged, 256))

    error, handler, _ = await _raw_server_side(tcp_pair, make_handler, script)
    assert isinstance(error, TransportError)
    assert isinstance(error.__cause__, HandshakeError)
    assert "verify" in str(error.__cause__)
    assert handler.events == []


@pytest.mark.parametrize("size", [MAX_HANDSHAKE_FRAME + 1, MAX_PACKET_SIZE, 60000])
async def test_oversized_handshake_frame_is_rejected(
    tcp_pair: Any, make_handler: Any, size: int
) -> None:
    async def script(streams: Streams) -> None:
        streams[1].write(size.to_bytes(2, "big") + b"\xa0" * min(size, MAX_PACKET_SIZE))

    error, handler, _ = await _raw_server_side(tcp_pair, make_handler, script)
    assert isinstance(error, TransportError)
    assert isinstance(error.__cause__, (HandshakeError, FramingError))
    assert handler.events == []


async def test_silent_peer_times_out(tcp_pair: Any, make_handler: Any) -> None:
    async def script(streams: Streams) -> None:
        return None

    loop = asyncio.get_running_loop()
    began = loop.time()
    error, handler, _ = await _raw_server_side(
        tcp_pair, make_handler, script, handshake_timeout=0.2
    )
    assert isinstance(error, TransportError)
    assert isinstance(error.__cause__, TimeoutError)
    assert loop.time() - began < 2.0
    assert handler.events == []


async def _linked_by_hand(
    tcp_pair: Any, make_handler: Any
) -> tuple[Any, StreamLink, LinkHandshake, asyncio.StreamReader, asyncio.StreamWriter]:
    (reader_a, writer_a), (reader_b, writer_b) = await tcp_pair()
    ha = make_handler()
    opening = asyncio.create_task(
        open_stream_link(
            reader_a,
            writer_a,
            Identity.generate(),
            ha,
            transport_name="t",
            link_id="t:1",
            initiator=True,
        )
    )
    peer, own_id = await _respond(Identity.generate(), reader_b, writer_b)
    writer_b.write(frame(own_id, 256))
    link = await opening
    return ha, link, peer, reader_b, writer_b


async def test_oversized_frame_after_handshake_closes_link(
    tcp_pair: Any, make_handler: Any
) -> None:
    ha, link, peer, reader_b, writer_b = await _linked_by_hand(tcp_pair, make_handler)
    writer_b.write(frame(peer.cipher().encrypt(b"fine"), 100))
    await ha.until(lambda: bool(ha.frames))
    writer_b.write((MAX_WIRE_FRAME + 1).to_bytes(2, "big") + b"x" * 100)
    await ha.until(lambda: bool(ha.downs))
    assert ha.payloads() == [b"fine"]
    assert link.closed and [kind for kind, _ in ha.events] == ["up", "down"]
    assert await asyncio.wait_for(reader_b.read(), 2.0) == b""  # the link hung up
    await link.close()
    assert len(ha.downs) == 1


@pytest.mark.parametrize("tamper", ["plain", "flipped", "replayed"])
async def test_a_frame_that_does_not_decrypt_closes_the_link(
    tcp_pair: Any, make_handler: Any, tamper: str
) -> None:
    ha, link, peer, _, writer_b = await _linked_by_hand(tcp_pair, make_handler)
    cipher = peer.cipher()
    good = cipher.encrypt(b"fine")
    writer_b.write(frame(good, 100))
    await ha.until(lambda: bool(ha.frames))
    bad = {
        "plain": b"not sealed at all, just a packet",
        "flipped": bytes([cipher.encrypt(b"next")[0] ^ 1]) + cipher.encrypt(b"x")[1:],
        "replayed": good,
    }[tamper]
    writer_b.write(frame(bad, 100))
    await ha.until(lambda: bool(ha.downs))
    assert ha.payloads() == [b"fine"]
    await link.close()


async def test_frames_on_the_wire_are_sealed(tcp_pair: Any, make_handler: Any) -> None:
    _, link, peer, reader_b, _ = await _linked_by_hand(tcp_pair, make_handler)
    assert link.send(b"a packet the neighbour reads")
    sealed = await _read_one_frame(reader_b)
    assert b"neighbour" not in sealed
    assert len(sealed) == len(b"a packet the neighbour reads") + 16
    assert peer.cipher().decrypt(sealed) == b"a packet the neighbour reads"
    await link.close()


async def test_peer_hangup_reports_down_once(tcp_pair: Any, make_handler: Any) -> None:
    ha, hb = make_handler(), make_handler()
    link_a, link_b, _, _ = await _link_pair(tcp_pair, ha, hb)
    waiter = asyncio.create_task(link_b.wait_closed())
    link_a.shutdown("test")
    assert ha.downs == [link_a]  # reported synchronously
    await waiter
    assert hb.downs == [link_b]
    await link_a.close()
    await link_b.close()
    assert len(ha.downs) == 1 and len(hb.downs) == 1


async def test_handler_errors_do_not_kill_the_link(tcp_pair: Any, make_handler: Any) -> None:
    ha, hb = make_handler(), make_handler()
    calls: list[bytes] = []

    class Grumpy:
        def link_up(self, link: Any) -> None:
            raise RuntimeError("up")

        def link_down(self, link: Any) -> None:
            raise RuntimeError("down")

        def frame_received(self, link: Any, data: bytes) -> None:
            calls.append(data)
            raise RuntimeError("frame")

    link_a, link_b, _, _ = await _link_pair(tcp_pair, Grumpy(), hb)
    assert link_b.send(b"one") and link_b.send(b"two")
    async with asyncio.timeout(5):
        while len(calls) < 2:
            await asyncio.sleep(0.01)
    assert calls == [b"one", b"two"] and not link_a.closed
    await link_a.close()
    await link_b.close()
    del ha


async def test_keepalive_options_are_set(tcp_pair: Any) -> None:
    (_, writer), _ = await tcp_pair()
    enable_tcp_keepalive(writer, idle=7, interval=2, count=4)
    sock = writer.get_extra_info("socket")
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
    if hasattr(socket, "TCP_KEEPIDLE"):
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 7
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == 4


async def _handshake_against(data: bytes) -> BaseException | None:
    left, right = socket.socketpair()
    reader, writer = await asyncio.open_connection(sock=left)
    _, peer_writer = await asyncio.open_connection(sock=right)
    peer_writer.write(data)
    peer_writer.write_eof()
    error: BaseException | None = None
    try:
        link = await open_stream_link(
            reader,
            writer,
            Identity.generate(),
            _Null(),
            transport_name="t",
            link_id="t:f",
            initiator=False,
            handshake_timeout=2.0,
        )
        await link.close()
    except TransportError as exc:
        error = exc
    peer_writer.close()
    await peer_writer.wait_closed()
    return error


class _Null:
    def link_up(self, link: Any) -> None: ...

    def link_down(self, link: Any) -> None: ...

    def frame_received(self, link: Any, data: bytes) -> None: ...


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        st.binary(max_size=600),
        st.lists(st.binary(min_size=1, max_size=300), max_size=4).map(
            lambda parts: b"".join(len(p).to_bytes(2, "big") + p for p in parts)
        ),
        st.lists(
            st.one_of(st.text(max_size=10), st.binary(max_size=40), st.integers()), max_size=6
        ).map(lambda fields: frame(cbor2.dumps(["mc-hello", *fields]), 65535)),
    )
)
def test_any_bytes_in_the_handshake_raise_transport_error(data: bytes) -> None:
    error = asyncio.run(_handshake_against(data))
    assert isinstance(error, TransportError)
    assert isinstance(error.__cause__, (HandshakeError, FramingError, OSError, TimeoutError))


async def test_a_frame_sent_after_many_file_frames_overtakes_them(
    tcp_pair: Any, make_handler: Any
) -> None:
    ha, hb = make_handler(), make_handler()
    link_a, link_b, _, _ = await _link_pair(tcp_pair, ha, hb)
    bulk = [b"f" + bytes([i % 256]) * 1500 for i in range(400)]
    for frame_ in bulk:
        assert link_a.send_bulk(frame_)
    assert link_a.send(b"text typed during the transfer")  # queued after all 400
    await hb.until(lambda: len(hb.frames) == 401)
    got = hb.payloads()
    position = got.index(b"text typed during the transfer")
    # it left after at most a few file frames (those in the writer's first run), not 400
    assert position <= 8, position
    assert [p for p in got if p.startswith(b"f")] == bulk  # file frames keep their order
    # the file queue is bounded: beyond it, send_bulk refuses (the asker asks again)
    await link_a.close()
    await link_b.close()
    assert not link_a.send_bulk(b"late")


async def test_the_file_queue_is_bounded(tcp_pair: Any, make_handler: Any) -> None:
    ha, hb = make_handler(), make_handler()
    link_a, link_b, _, _ = await _link_pair(tcp_pair, ha, hb, start=False)
    accepted = sum(link_a.send_bulk(b"x" * 100) for _ in range(BULK_QUEUE_FRAMES + 50))
    assert accepted == BULK_QUEUE_FRAMES and link_a.dropped_frames == 50
    await link_a.close()
    await link_b.close()


async def test_frames_read_before_a_hold_wait_for_it_unopened(
    tcp_pair: Any, make_handler: Any
) -> None:
    """The node holds a link's reading from inside the handler (its queue is full): the rest
    of the frames already read are not opened and dropped but delivered, in order, once the
    hold is let go."""
    hb = make_handler()
    link_a, link_b, _, _ = await _link_pair(tcp_pair, make_handler(), hb)
    hold: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    handled = hb.frame_received

    def holding(link: Any, payload: bytes) -> None:
        handled(link, payload)
        if len(hb.frames) == 3:
            link_b.hold_reading(hold)

    hb.frame_received = holding
    sent = [bytes([n]) * 40 for n in range(50)]
    for payload in sent:  # a small frame each: many of them in one read
        assert link_a.send(payload)
    await hb.until(lambda: len(hb.frames) == 3)
    await asyncio.sleep(0.1)
    assert len(hb.frames) == 3  # held: nothing more, though the rest was read
    hold.set_result(None)
    await hb.until(lambda: len(hb.frames) == 50)
    assert hb.payloads() == sent
    await link_a.close()
    await link_b.close()
