"""Two islands of in-process nodes joined through a 3-node Kademlia swarm on loopback."""

from __future__ import annotations

import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from kademlia.network import Server
from kademlia.utils import digest

sys.path.insert(0, str(Path(__file__).parents[1] / "relay"))

from islands import (
    Member,
    befriend,
    delivered,
    start_member,
    stop_member,
    texts,
    wait_for,
)
from nacl.signing import SigningKey

from meshchat.crypto.direct import anonymous_packet
from meshchat.crypto.tags import EPOCH_MS
from meshchat.identity import Identity
from meshchat.transports.base import Transport
from meshchat.transports.dht import (
    SEALED_SLOTS,
    SLOTS,
    DhtConfig,
    DhtTransport,
    build_record,
    epoch_tags,
    mailbox_signer,
    record_key,
    seal_record,
    sealed_envelope_key,
    sealed_record_key,
    sealed_signer,
)
from meshchat.transports.memory import MemoryHub
from meshchat.wire import BROADCAST, Destination, PacketKind, Suite, build, encode


@pytest.fixture
async def seed() -> AsyncIterator[Server]:
    """The swarm's third node: a plain kademlia node (it stores whatever it is sent)."""
    server = Server()
    await server.listen(0, interface="127.0.0.1")
    yield server
    server.stop()


def port_of(server: Server) -> int:
    return int(server.transport.get_extra_info("sockname")[1])


def dht(seed: Server) -> Callable[[Identity], list[Transport]]:
    config = DhtConfig(host="127.0.0.1", bootstrap=(("127.0.0.1", port_of(seed)),), poll_s=0.2)
    return lambda identity: [DhtTransport(identity, config)]


def dht_of(member: Member) -> DhtTransport:
    transport = member.extra[0]
    assert isinstance(transport, DhtTransport)
    return transport


async def joined(*members: Member) -> None:
    async def check() -> bool:
        return all(dht_of(m).status().up for m in members)

    await wait_for(check)


async def test_message_crosses_islands_over_the_dht_and_the_ack_returns(
    tmp_path: Path, seed: Server
) -> None:
    hub = MemoryHub()
    a = await start_member(tmp_path, hub, "alice")
    g1 = await start_member(tmp_path, hub, "g1", dht(seed))
    g2 = await start_member(tmp_path, hub, "g2", dht(seed))
    b = await start_member(tmp_path, hub, "bob")
    try:
        hub.connect(a.mem, g1.mem)
        hub.connect(g2.mem, b.mem)
        await befriend(a, b, sealed=False)  # BOX: this test is about mailboxes
        await joined(g1, g2)
        sent = await a.node.send_text("bob", "over the dht")
        await delivered(a, sent.msg_id, timeout=15)
        assert await texts(b, a) == ["over the dht"]
        assert dht_of(g1).counters.get("tx.stored", 0) >= 1
        assert dht_of(g2).counters.get("rx.frames", 0) >= 1
        assert "up" in dht_of(g1).status().detail
    finally:
        for m in (a, g1, g2, b):
            await stop_member(m)


async def test_recipient_offline_when_sent_gets_it_when_its_gateway_joins(
    tmp_path: Path, seed: Server
) -> None:
    hub = MemoryHub()
    a = await start_member(tmp_path, hub, "alice")
    g1 = await start_member(tmp_path, hub, "g1", dht(seed))
    live = [a, g1]
    try:
        bob_identity = Identity.generate()
        b_stub = await start_member(tmp_path, hub, "bob", identity=bob_identity)
        await befriend(a, b_stub, sealed=False)  # BOX, as above
        await stop_member(b_stub)  # bob was only needed to exchange cards: he is offline now
        hub.connect(a.mem, g1.mem)
        await joined(g1)
        sent = await a.node.send_text("bob", "left in the dht")

        async def stored() -> bool:
            return dht_of(g1).counters.get("tx.stored", 0) >= 1

        await wait_for(stored)
        await stop_member(a)  # no retry can carry it later: only the DHT holds it
        live.remove(a)
        g2 = await start_member(tmp_path, hub, "g2", dht(seed))
        b = await start_member(tmp_path, hub, "bob", identity=bob_identity)
        live += [g2, b]
        hub.connect(g2.mem, b.mem)

        async def arrived() -> bool:
            return await texts(b, a) == ["left in the dht"]

        await wait_for(arrived, timeout=15)
        a = await start_member(tmp_path, hub, "alice", identity=a.identity)
        live.append(a)
        hub.connect(a.mem, g1.mem)
        await delivered(a, sent.msg_id, timeout=15)
    finally:
        for m in live:
            await stop_member(m)


async def test_forged_oversized_and_expired_records_are_ignored(
    tmp_path: Path, seed: Server
) -> None:
    hub = MemoryHub()
    a = await start_member(tmp_path, hub, "alice")
    g1 = await start_member(tmp_path, hub, "g1", dht(seed))
    g2 = await start_member(tmp_path, hub, "g2", dht(seed))
    b = await start_member(tmp_path, hub, "bob")
    members = [a, g1, g2, b]
    try:
        hub.connect(a.mem, g1.mem)
        hub.connect(g2.mem, b.mem)
        await befriend(a, b, sealed=False)  # BOX: this test is about mailboxes
        await joined(g1, g2)
        now = int(time.time())
        packet = build(
            a.identity,
            PacketKind.MESSAGE,
            Destination.node(b.node_id),
            Suite.SIGNED,
            b"x",
            now * 1000,
            4,
        )
        frame = encode(packet)
        vk = bytes(mailbox_signer(b.node_id).verify_key)
        stranger = Identity.generate()
        bad: dict[int, bytes] = {}
        # forged: a well-formed record, but signed for another mailbox
        bad[0] = build_record(stranger.node_id, 0, frame, now + 3600)[1]
        # forged: the right mailbox key, but the signature does not verify
        good = build_record(b.node_id, 1, frame, now + 3600)[1]
        bad[1] = good[:50] + bytes([good[50] ^ 1]) + good[51:]
        # oversized
        bad[2] = b"MD\x01" + bytes(4000)
        # expired (signed correctly, but its time is over)
        bad[3] = build_record(b.node_id, 3, frame, now - 10)[1]
        # a correct record around a packet whose own signature is broken
        forged_packet = bytearray(frame)
        forged_packet[-1] ^= 1
        bad[4] = build_record(b.node_id, 4, bytes(forged_packet), now + 3600)[1]
        # not even bytes
        bad[5] = "a string"  # type: ignore[assignment]
        # The seed is a plain kademlia node: it answers with whatever it was given.
        for slot, value in bad.items():
            seed.storage[digest(record_key(vk, slot))] = value

        async def all_rejected() -> bool:
            counters = dht_of(g2).counters
            rejected = sum(v for k, v in counters.items() if k.startswith("rx.rejected"))
            # the oversized value and the string are not even answers: dropped on arrival
            malformed = dht_of(g2).guard_counters().get("dropped.answer.find_value", 0)
            return rejected >= 4 and malformed >= 2

        await wait_for(all_rejected, timeout=15)
        assert dht_of(g2).counters.get("rx.frames", 0) == 0
        assert await texts(b, a) == []
        # A meshchat node's own storage refuses such records outright, except the one whose
        # flaw is inside the sealed envelope: only the recipient's gateways can see that.
        storage = dht_of(g1).storage
        for slot, value in bad.items():
            storage[digest(record_key(vk, slot))] = value
        assert storage.get(digest(record_key(vk, 4))) == bad[4]
        assert [storage.get(digest(record_key(vk, s))) for s in (0, 1, 2, 3, 5)] == [None] * 5
        assert storage.refused >= 5
        # ... and the node keeps working.
        sent = await a.node.send_text("bob", "still fine")
        await delivered(a, sent.msg_id, timeout=15)
        assert await texts(b, a) == ["still fine"]
    finally:
        for m in members:
            await stop_member(m)


async def test_a_sealed_message_and_its_ack_travel_through_the_dht_only(
    tmp_path: Path, seed: Server
) -> None:
    hub = MemoryHub()  # never connected: the DHT is the only way between the two
    a = await start_member(tmp_path, hub, "alice", dht(seed))
    b = await start_member(tmp_path, hub, "bob", dht(seed))
    try:
        await befriend(a, b)  # current cards: direct messages are sealed (RATCHET)
        await joined(a, b)
        sent = await a.node.send_text("bob", "sealed over the dht")
        await delivered(a, sent.msg_id, timeout=15)  # bob's ack came back the same way
        assert await texts(b, a) == ["sealed over the dht"]
        da, db = dht_of(a).counters, dht_of(b).counters
        assert da.get("tx.sealed", 0) >= 1 and db.get("rx.frames", 0) >= 1  # the message
        assert db.get("tx.sealed", 0) >= 1 and da.get("rx.frames", 0) >= 1  # the ack
        assert da.get("tx.mailbox", 0) == db.get("tx.mailbox", 0) == 0  # no mailbox used
        assert db.get("rx.sealed-lookups", 0) > 0
        assert "polling 4 sealed tags" in dht_of(b).status().detail  # 2 sources x 2 epochs
        # The plain seed stored what it was sent: nothing in it names either node or the text.
        stored = [value for _, value in seed.storage]
        assert stored
        for value in stored:
            for secret in (a.node_id, b.node_id, b"sealed over the dht"):
                assert secret not in value and secret.hex().encode() not in value
    finally:
        for m in (a, b):
            await stop_member(m)


async def test_forged_oversized_and_expired_records_under_a_tag_are_ignored(
    tmp_path: Path, seed: Server
) -> None:
    hub = MemoryHub()
    a = await start_member(tmp_path, hub, "alice", dht(seed))
    b = await start_member(tmp_path, hub, "bob", dht(seed))
    try:
        await befriend(a, b)
        await joined(a, b)
        now = int(time.time())
        now_ms = now * 1000
        # bob's tags of this epoch: his pair tag for alice and his prekey tag
        t0, t1 = epoch_tags(b.node.engine.direct, now * 1000 // EPOCH_MS)

        def ratchet(tag: bytes) -> bytes:
            key = SigningKey.generate()
            msg = anonymous_packet(key, PacketKind.MESSAGE, Destination.node(tag), b"x", now_ms, 4)
            return encode(msg)

        def filed(tag: bytes, slot: int, frame: bytes, expires: int) -> bytes:
            signer, envelope_key = sealed_signer(tag), sealed_envelope_key(tag)
            return seal_record(signer, envelope_key, slot, frame, expires)[1]

        bad: dict[tuple[bytes, int], object] = {}
        # forged: a well-formed record, but signed for another tag
        bad[t0, 0] = filed(bytes(16), 0, ratchet(t0), now + 600)
        # forged: the tag's own key, but the signature does not verify
        good = filed(t0, 1, ratchet(t0), now + 600)
        bad[t0, 1] = good[:50] + bytes([good[50] ^ 1]) + good[51:]
        # oversized
        bad[t0, 2] = b"MD\x01" + bytes(4000)
        # expired
        bad[t0, 3] = filed(t0, 3, ratchet(t0), now - 10)
        # correctly filed, but the packet inside is for another tag
        bad[t1, 0] = filed(t1, 0, ratchet(bytes(16)), now + 600)
        # correctly filed, but the packet's own signature is broken
        broken = bytearray(ratchet(t1))
        broken[-1] ^= 1
        bad[t1, 1] = filed(t1, 1, bytes(broken), now + 600)
        for (tag, slot), value in bad.items():
            seed.storage[digest(sealed_record_key(tag, slot))] = value

        async def all_rejected() -> bool:
            counters = dht_of(b).counters
            return (
                counters.get("rx.rejected.bad-field", 0) >= 2  # other tag; other packet
                and counters.get("rx.rejected.bad-signature", 0) >= 2  # record; packet
                and counters.get("rx.rejected.expired", 0) >= 1
                and dht_of(b).guard_counters().get("dropped.answer.find_value", 0) >= 1
            )  # the oversized value is not even an answer: dropped on arrival

        await wait_for(all_rejected, timeout=15)
        counters = dht_of(b).counters
        assert counters.get("rx.frames", 0) == 0
        assert await texts(b, a) == []
        # A meshchat node's own storage refuses the forged, oversized and expired ones.
        storage = dht_of(a).storage
        for (tag, slot), value in bad.items():
            storage[digest(sealed_record_key(tag, slot))] = value
        kept = [storage.get(digest(sealed_record_key(t, s))) is not None for t, s in bad]
        assert kept == [False, False, False, False, True, True]
        # ... and the node keeps working.
        sent = await a.node.send_text("bob", "still fine")
        await delivered(a, sent.msg_id, timeout=15)
        assert await texts(b, a) == ["still fine"]
        assert SEALED_SLOTS == 4
    finally:
        for m in (a, b):
            await stop_member(m)


def test_every_slot_has_its_own_key() -> None:
    vk = bytes(mailbox_signer(bytes(16)).verify_key)
    assert len({record_key(vk, s) for s in range(SLOTS)}) == SLOTS
    assert BROADCAST is not None
