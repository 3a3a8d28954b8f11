"""A hostile or broken peer on a BLE link: bad fragments, bad handshakes, silence."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import Callable

from ble_world import FAST, World, link, linked

from meshchat.errors import TransportError
from meshchat.identity import Identity
from meshchat.transports.ble import GattProfile, ScanResult, ScanSettings
from meshchat.transports.ble.fragment import Fragmenter, Reassembler
from meshchat.transports.ble.seam import BleConnection
from meshchat.transports.ble.session import (
    CHANNEL_CONTROL,
    CHANNEL_DATA,
    CHANNEL_HANDSHAKE,
    MAX_LINK_FRAME,
)
from meshchat.transports.ble.virtual import make_virtual_backends
from meshchat.wire.handshake import LinkHandshake
from meshchat.wire.packet import MAX_PACKET_SIZE


def fragment(frame_id: int, index: int, count: int, body: bytes) -> bytes:
    return frame_id.to_bytes(2, "big") + bytes([index, count]) + body


async def test_hostile_fragments_keep_memory_bounded_and_link_working(
    ble_world: Callable[..., World],
) -> None:
    world = ble_world(2, mtu=247)
    await world.start()
    await linked(world, (0, 1))
    a, b = world.nodes
    ab, ba = link(a, b), link(b, a)
    raw = ab.session.connection  # write straight onto A's GATT connection, beneath framing
    victim = ba.session
    limits = victim.limits
    hostile = [
        b"\x01",  # shorter than a header
        fragment(0x9000, 0, 5, b"x"),
        fragment(0x9000, 1, 6, b"x"),  # count changed
        fragment(0x9001, 0, 3, b"x"),
        fragment(0x9001, 0, 3, b"y"),  # overlapping index
        fragment(0x9002, 7, 3, b"x"),  # index out of range
        fragment(0x9003, 0, 0, b"x"),  # count zero
        fragment(0x9004, 0, 1, b"\x07junk"),  # a whole frame on an unknown channel
    ]
    for value in hostile:
        await raw.write(value)
    peak_pending = peak_bytes = 0
    for n in range(10_000):  # frames that are never finished
        await raw.write(fragment(0xA000 + n, 0, 200, b"z" * 200))
        if n % 50 == 0:
            await asyncio.sleep(0)
            peak_pending = max(peak_pending, victim.partial_frames)
            peak_bytes = max(peak_bytes, victim.buffered_bytes)
    await b.recorder.until(lambda: victim.reassembly.evicted >= 10_000 - limits.max_reassemblies)
    assert 0 < peak_pending <= limits.max_reassemblies
    assert 0 < peak_bytes <= limits.reassembly_bytes
    assert victim.reassembly.rejected == 5
    assert victim.framing_errors == 6  # the rejected fragments plus the unknown channel
    assert b.recorder.frames == []
    # The link is the same one and still carries full-size frames both ways.
    frame = random.Random(9).randbytes(MAX_PACKET_SIZE)
    assert ab.send(frame) and ba.send(frame[::-1])
    await b.recorder.until(lambda: frame in b.recorder.payloads())
    await a.recorder.until(lambda: frame[::-1] in a.recorder.payloads())
    assert b.recorder.payloads() == [frame]
    assert a.recorder.downs == [] and b.recorder.downs == []


async def raw_dial(world: World, target: int) -> BleConnection:
    """Dial node ``target`` with a bare backend that speaks GATT but not meshchat."""
    (raw,) = make_virtual_backends(1, link=world.link)
    world.extras.append(raw)
    await raw.start(GattProfile(), lambda connection: None)
    seen: asyncio.Queue[ScanResult] = asyncio.Queue()
    await raw.start_scanning(seen.put_nowait, ScanSettings(interval_ms=20, window_ms=20))
    wanted = world.nodes[target].transport.adv_id
    async with asyncio.timeout(5):
        while (result := await seen.get()).adv_id != wanted:
            pass
    await raw.stop_scanning()
    return await raw.connect(result.address, 2.0)


async def test_bad_handshake_closes_the_connection(ble_world: Callable[..., World]) -> None:
    world = ble_world(1)
    await world.start()
    connection = await raw_dial(world, 0)
    closed = asyncio.Event()
    connection.attach(lambda value: None, closed.set)
    await connection.write(fragment(1, 0, 1, bytes([CHANNEL_HANDSHAKE]) + b"\x82\x01\x02"))
    async with asyncio.timeout(3):
        await closed.wait()
    assert world.nodes[0].recorder.events == []
    assert world.nodes[0].transport.sessions == []
    try:
        await connection.write(b"late")
    except TransportError:
        pass
    else:  # pragma: no cover
        raise AssertionError("write on a closed connection must fail")


async def test_silent_peer_is_dropped_after_handshake_timeout(
    ble_world: Callable[..., World],
) -> None:
    impatient = dataclasses.replace(
        FAST, limits=dataclasses.replace(FAST.limits, handshake_timeout=0.5)
    )
    world = ble_world(1, options=impatient)
    await world.start()
    connection = await raw_dial(world, 0)
    values: list[bytes] = []
    closed = asyncio.Event()
    connection.attach(values.append, closed.set)
    async with asyncio.timeout(3):
        await closed.wait()
    # the dialled side (the handshake's responder) waits for our first message, then gives up
    assert values == []
    assert world.nodes[0].recorder.events == []


async def test_data_before_handshake_is_not_delivered(ble_world: Callable[..., World]) -> None:
    world = ble_world(1)
    await world.start()
    connection = await raw_dial(world, 0)
    connection.attach(lambda value: None, lambda: None)
    await connection.write(fragment(1, 0, 1, b"\x01not a proven peer"))
    await asyncio.sleep(0.2)
    (session,) = world.nodes[0].transport.sessions
    assert session.framing_errors == 1
    assert world.nodes[0].recorder.frames == []
    await connection.close()


async def test_frames_on_the_air_are_sealed_and_a_clear_one_closes_the_link(
    ble_world: Callable[..., World],
) -> None:
    """A central that speaks the protocol by hand sees node 0's identity only inside the
    handshake's encryption, and every later frame sealed; a frame in clear ends the link."""
    world = ble_world(1)
    await world.start()
    connection = await raw_dial(world, 0)
    values: asyncio.Queue[bytes] = asyncio.Queue()
    connection.attach(values.put_nowait, lambda: None)
    loop = asyncio.get_running_loop()
    reassembler = Reassembler(max_frame_size=MAX_LINK_FRAME)
    fragmenter = Fragmenter(MAX_LINK_FRAME)
    air: list[bytes] = []

    async def send(channel: int, body: bytes) -> None:
        for piece in fragmenter.split(bytes([channel]) + body, connection.max_value_size):
            await connection.write(piece)

    async def receive() -> bytes:
        while True:
            value = await asyncio.wait_for(values.get(), 5)
            air.append(value)
            frame = reassembler.feed(value, loop.time())
            if frame is not None:
                return frame

    handshake = LinkHandshake(Identity.generate(), initiator=True)
    for first in handshake.start():
        await send(CHANNEL_HANDSHAKE, first)
    second = await receive()
    for reply in handshake.receive(second[1:]):
        await send(CHANNEL_HANDSHAKE, reply)
    handshake.receive((await receive())[1:])
    node = world.nodes[0]
    assert handshake.done and handshake.peer == node.identity.public
    await node.recorder.until(lambda: len(node.recorder.ups) == 1)
    (up,) = node.recorder.ups
    assert up.send(b"a packet for the air")
    cipher = handshake.cipher()
    while (frame := await receive())[0] != CHANNEL_DATA:
        assert frame[0] == CHANNEL_CONTROL
        assert cipher.decrypt(frame[1:])[0] == 0x01  # its advertisement id, sealed
    assert cipher.decrypt(frame[1:]) == b"a packet for the air"
    on_air = b"".join(air)
    public = node.identity.public
    for secret in (b"a packet for the air", public.sign_public, public.box_public):
        assert secret not in on_air
    # a data frame in clear does not decrypt: the link ends
    await send(CHANNEL_DATA, b"an unsealed packet")
    await node.recorder.until(lambda: len(node.recorder.downs) == 1)
    assert node.recorder.frames == []
