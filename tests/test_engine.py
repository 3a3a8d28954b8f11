"""The engine on its own and in an in-process mesh (tests/mesh.py): DMs (sealed and BOX), acks,
channels, store-and-forward, hostile packets, and a 50-node flood."""

from __future__ import annotations

import itertools
import random

import pytest
from mesh import EPOCH_MS, Mesh, distances, grid, link_id, strip_graph
from nacl.signing import SigningKey

from meshchat.crypto.box import BoxSuite
from meshchat.crypto.channel import ChannelKey, derive_channel_key
from meshchat.crypto.direct import anonymous_packet
from meshchat.crypto.tags import EPOCH_MS as EPOCH
from meshchat.engine import Engine, dm_conversation
from meshchat.errors import PacketError, PacketReason, UsageError
from meshchat.events import (
    AttemptMade,
    MessageDelivered,
    MessageExpired,
    MessageRejected,
    MessageSent,
    PeerAnnounced,
)
from meshchat.identity import Identity
from meshchat.router.actions import Transmit
from meshchat.router.policy import ManagedFlood, NaiveFlood
from meshchat.wire import codec
from meshchat.wire.packet import MAX_TTL, Destination, PacketKind, Suite
from meshchat.wire.payloads import AckBody, MessageBody

NOW = EPOCH_MS
PUBLIC = ChannelKey.public()


def _chain(*names: str, **kwargs: object) -> Mesh:
    mesh = Mesh(**kwargs)  # type: ignore[arg-type]
    mesh.add_many(names)
    for a, b in itertools.pairwise(names):
        mesh.connect(a, b)
    return mesh


# -- the engine alone -------------------------------------------------------------------------


def _engine(name: str, seed: int = 0) -> Engine:
    return Engine(Identity.generate(), name, rng=random.Random(seed))


def test_direct_message_waits_for_a_link_then_goes_out() -> None:
    alice, bob = _engine("alice"), _engine("bob")
    msg_id = b"\x01" * 16
    assert alice.send_direct(bob.identity.public, msg_id, "hi", NOW) == []
    assert alice.outbox.copies(msg_id)
    out = alice.link_up("l1", NOW + 10)
    [tx] = [o for o in out if isinstance(o, Transmit)]
    assert tx.links == ("l1",)
    [sent] = [o for o in out if isinstance(o, MessageSent)]
    assert sent == MessageSent(msg_id, tx.packet_id)
    [attempt] = [o for o in out if isinstance(o, AttemptMade)]
    assert attempt.attempts == 1
    assert NOW + 10 + 2250 <= attempt.next_try_ms <= NOW + 10 + 3750
    packet = codec.decode(tx.frame, NOW + 10)
    assert packet.suite is Suite.BOX
    assert packet.destination == Destination.node(bob.identity.node_id)
    assert b"hi" not in tx.frame


def test_retries_are_new_packets_with_growing_backoff() -> None:
    alice, bob = _engine("alice"), _engine("bob")
    alice.link_up("l1", NOW)
    msg_id = b"\x02" * 16
    out = alice.send_direct(bob.identity.public, msg_id, "hello", NOW)
    sent = [o for o in out if isinstance(o, Transmit)]
    waits = []
    t = NOW
    for _ in range(4):
        [attempt] = [o for o in out if isinstance(o, AttemptMade)]
        waits.append(attempt.next_try_ms - t)
        t = alice.next_deadline() or 0
        assert t == attempt.next_try_ms
        out = alice.tick(t)
        sent += [o for o in out if isinstance(o, Transmit)]
        assert not any(isinstance(o, MessageSent) for o in out)  # reported once only
    assert len({tx.packet_id for tx in sent}) == 5
    for earlier, later in itertools.pairwise(waits):
        assert later > earlier  # doubling outgrows the +-25% jitter
    # Every retry carries the same message to the same recipient.
    bob_box = BoxSuite(bob.identity)
    for tx in sent:
        _, plaintext = bob_box.open(codec.decode(tx.frame, t).payload)
        assert MessageBody.decode(plaintext) == MessageBody(msg_id, "hello", NOW)


def test_message_expires_if_never_acknowledged() -> None:
    alice, bob = _engine("alice"), _engine("bob")
    alice.link_up("l1", NOW)
    msg_id = b"\x03" * 16
    alice.send_direct(bob.identity.public, msg_id, "anyone?", NOW, expires_ms=NOW + 20_000)
    expired: list[MessageExpired] = []
    t = NOW
    while (deadline := alice.next_deadline()) is not None:
        assert deadline > t
        t = deadline
        expired += [o for o in alice.tick(t) if isinstance(o, MessageExpired)]
    assert expired == [MessageExpired(msg_id)]
    assert t == NOW + 20_000
    assert not alice.outbox.copies(msg_id)


def test_send_validates_text_and_channel() -> None:
    alice, bob = _engine("alice"), _engine("bob")
    with pytest.raises(PacketError) as info:
        alice.send_direct(bob.identity.public, b"\x04" * 16, "x" * 1001, NOW)
    assert info.value.reason is PacketReason.BAD_FIELD
    assert not alice.outbox.copies(b"\x04" * 16)
    with pytest.raises(UsageError):
        alice.send_channel(b"\x05" * 16, b"\x06" * 16, "hi", NOW)


def test_channel_message_leaves_the_outbox_once_transmitted() -> None:
    alice = _engine("alice")
    alice.join(PUBLIC)
    msg_id = b"\x07" * 16
    assert alice.send_channel(PUBLIC.channel_id, msg_id, "hi all", NOW) == []
    assert alice.outbox.copies(msg_id)
    out = alice.link_up("l1", NOW + 5)
    assert MessageSent in {type(o) for o in out}
    assert AttemptMade not in {type(o) for o in out}
    assert not alice.outbox.copies(msg_id)


def test_leaving_a_channel_before_sending_expires_the_message() -> None:
    alice = _engine("alice")
    alice.join(PUBLIC)
    alice.send_channel(PUBLIC.channel_id, b"\x08" * 16, "hi", NOW)
    alice.leave(PUBLIC)
    assert alice.channels == []
    out = alice.link_up("l1", NOW + 5)
    assert MessageExpired(b"\x08" * 16) in out


SEALED = pytest.mark.parametrize("cards", [False, True], ids=["box", "sealed"])


@SEALED
def test_received_message_comes_before_its_ack(cards: bool) -> None:
    mesh = _chain("a", "b", cards=cards)
    mesh.send_direct("a", "b", "order")
    mesh.run(100)
    outputs = mesh.outputs["b"]
    kinds = [type(o).__name__ for o in outputs]
    assert kinds.index("MessageReceived") < kinds.index("Transmit")


def test_next_deadline_reports_outbox_and_router() -> None:
    alice, bob = _engine("alice"), _engine("bob")
    assert alice.next_deadline() is None
    alice.link_up("l1", NOW)
    alice.send_direct(bob.identity.public, b"\x09" * 16, "x", NOW)
    deadline = alice.next_deadline()
    assert deadline is not None and NOW < deadline <= NOW + 3750


def test_next_deadline_of_zero_is_reported() -> None:
    alice, bob = _engine("alice"), _engine("bob")
    alice.link_up("l1", 0)
    alice.send_direct(bob.identity.public, b"\x0a" * 16, "x", 0, expires_ms=0)
    # expires at 0: the outbox's own deadline is 0 ...
    assert alice.outbox.next_deadline() == 0
    # ... and the engine should say so.
    assert alice.next_deadline() == 0


# -- direct messages across a mesh ------------------------------------------------------------


@SEALED
def test_dm_across_a_chain_is_received_once_and_acknowledged(cards: bool) -> None:
    mesh = _chain("a", "b", "c", cards=cards)
    msg_id = mesh.send_direct("a", "c", "hello c")
    mesh.run(10_000)
    [got] = mesh.received("c")
    a_public = mesh.engines["a"].identity.public
    assert got.text == "hello c"
    assert got.msg_id == msg_id
    assert got.sender == a_public
    assert got.sender_key == a_public.sign_public
    assert got.conversation == dm_conversation(a_public.node_id)
    assert got.hops == 1
    assert mesh.received("b") == []
    assert mesh.events("a", MessageDelivered) == [MessageDelivered(msg_id)]
    assert not mesh.engines["a"].outbox.copies(msg_id)
    # b carried the message and then the ack, and the ack uncarried the message.
    assert mesh.engines["b"].router.carried_count == 1  # only the ack remains


@SEALED
def test_dm_is_delivered_after_a_partition_heals(cards: bool) -> None:
    mesh = _chain("a", "b", "c", cards=cards)
    mesh.disconnect("b", "c")
    msg_id = mesh.send_direct("a", "c", "across the gap")
    mesh.run(60_000)
    assert mesh.received("c") == []
    assert mesh.events("a", MessageDelivered) == []
    attempts = mesh.events("a", AttemptMade)
    assert len(attempts) >= 3  # a kept retrying; b carried every try
    assert mesh.engines["b"].router.carried_count == len(attempts)
    mesh.connect("b", "c")  # b re-offers what it carries
    mesh.run(10_000)
    received = mesh.received("c")
    assert received and {r.msg_id for r in received} == {msg_id}
    assert {r.text for r in received} == {"across the gap"}
    assert mesh.events("a", MessageDelivered) == [MessageDelivered(msg_id)]


@SEALED
def test_dm_sent_while_alone_goes_out_when_a_neighbour_appears(cards: bool) -> None:
    mesh = Mesh(cards=cards)
    mesh.add_many(["a", "b", "c"])
    mesh.connect("b", "c")
    msg_id = mesh.send_direct("a", "c", "hello from nowhere")
    mesh.run(600_000)
    assert mesh.transmissions == 0
    mesh.connect("a", "b")  # wakes a's outbox
    mesh.run(5_000)
    assert [r.msg_id for r in mesh.received("c")] == [msg_id]
    assert mesh.events("a", MessageDelivered) == [MessageDelivered(msg_id)]


def test_dm_to_an_unknown_node_expires() -> None:
    mesh = _chain("a", "b")
    msg_id = mesh.send_direct("a", "nobody", "hello?", expires_ms=NOW + 60_000)
    mesh.run(120_000)
    assert mesh.events("a", MessageExpired) == [MessageExpired(msg_id)]
    assert mesh.events("a", MessageDelivered) == []


def test_announce_reaches_neighbours() -> None:
    mesh = _chain("a", "b", "c")
    mesh.announce("a")
    mesh.run(5_000)
    [heard] = mesh.events("b", PeerAnnounced)
    assert heard.identity == mesh.engines["a"].identity.public
    assert heard.name == "a"
    assert heard.hops == 0
    [far] = mesh.events("c", PeerAnnounced)
    assert far.hops == 1


# -- channels ---------------------------------------------------------------------------------


def test_public_channel_message_reaches_everyone_once() -> None:
    mesh = _chain("a", "b", "c", "d")
    for engine in mesh.engines.values():
        engine.join(PUBLIC)
    msg_id = mesh.send_channel("a", PUBLIC, "hello #mesh")
    mesh.run(5_000)
    assert mesh.received_counts(msg_id) == {"a": 0, "b": 1, "c": 1, "d": 1}
    [got] = mesh.received("d")
    assert got.conversation == "#mesh"
    assert got.sender is None
    assert got.sender_key == mesh.engines["a"].identity.public.sign_public
    assert got.hops == 2


def test_private_channel_only_for_key_holders() -> None:
    mesh = _chain("a", "b", "c", "d")
    hikers = derive_channel_key("#hikers", "trail mix")
    impostor = derive_channel_key("#hikers", "guess")
    mesh.engines["a"].join(hikers)
    mesh.engines["c"].join(hikers)
    mesh.engines["d"].join(impostor)
    msg_id = mesh.send_channel("a", hikers, "meet at the bridge")
    mesh.run(5_000)
    assert mesh.received_counts(msg_id) == {"a": 0, "b": 0, "c": 1, "d": 0}
    [got] = mesh.received("c")
    assert got.conversation == "#hikers"
    assert got.text == "meet at the bridge"
    assert mesh.events("b", MessageRejected) == []
    assert mesh.events("d", MessageRejected) == []


def test_channel_message_with_the_wrong_suite_rejected() -> None:
    mesh = _chain("a", "b")
    hikers = derive_channel_key("#hikers", "trail mix")
    mesh.engines["b"].join(hikers)
    evil = Identity.generate()
    packet = codec.build(
        evil,
        PacketKind.MESSAGE,
        Destination.channel(hikers.channel_id),
        Suite.SIGNED,
        MessageBody(b"\x0b" * 16, "plaintext in a private channel").encode(),
        mesh.now_ms,
        4,
    )
    out = mesh.inject("b", codec.encode(packet), link_id("b", "a"))
    assert [type(o) for o in out if isinstance(o, MessageRejected)] == [MessageRejected]
    assert mesh.received("b") == []


# -- hostile input ----------------------------------------------------------------------------


def test_signed_plaintext_direct_message_rejected_without_ack() -> None:
    mesh = _chain("a", "b", "c")
    a = mesh.engines["a"]
    c = mesh.engines["c"]
    packet = codec.build(
        a.identity,
        PacketKind.MESSAGE,
        Destination.node(c.identity.node_id),
        Suite.SIGNED,
        MessageBody(b"\x0c" * 16, "not encrypted").encode(),
        mesh.now_ms,
        4,
    )
    out = mesh.inject("c", codec.encode(packet), link_id("c", "b"))
    [rejected] = [o for o in out if isinstance(o, MessageRejected)]
    assert rejected.packet_id == packet.packet_id
    assert [o for o in out if isinstance(o, Transmit)] == []  # no ack, nothing relayed
    mesh.run(10_000)
    assert mesh.received("c") == []
    assert mesh.events("a", MessageDelivered) == []
    assert mesh.transmissions == 0


def test_box_that_does_not_open_rejected_without_ack() -> None:
    mesh = _chain("a", "b")
    b = mesh.engines["b"]
    evil = Identity.generate()
    payload = BoxSuite(evil).seal(b.identity.public.box_public, b"not a message body")
    garbage = bytearray(payload)
    garbage[-1] ^= 1
    for body in (bytes(garbage), payload):  # a broken box, then a box with a bad body
        packet = codec.build(
            evil,
            PacketKind.MESSAGE,
            Destination.node(b.identity.node_id),
            Suite.BOX,
            body,
            mesh.now_ms,
            4,
        )
        out = mesh.inject("b", codec.encode(packet), link_id("b", "a"))
        assert [type(o) for o in out] == [MessageRejected]


def test_ack_forged_by_a_third_node_does_not_deliver() -> None:
    mesh = _chain("a", "m")
    msg_id = mesh.send_direct("a", "c", "for c only")  # c is not on the mesh yet
    [sent] = mesh.events("a", MessageSent)
    mallory = mesh.engines["m"].identity
    forged = codec.build(
        mallory,
        PacketKind.ACK,
        Destination.node(mesh.engines["a"].identity.node_id),
        Suite.SIGNED,
        AckBody(sent.packet_id, msg_id, mallory.public.box_public).encode(),
        mesh.now_ms,
        4,
    )
    out = mesh.inject("a", codec.encode(forged), link_id("a", "m"))
    assert [type(o) for o in out] == [MessageRejected]
    assert mesh.events("a", MessageDelivered) == []
    assert mesh.engines["a"].outbox.copies(msg_id)
    # The real recipient turns up later and its ack counts.
    mesh.add("c")
    mesh.connect("m", "c")
    mesh.run(10_000)
    assert {r.msg_id for r in mesh.received("c")} == {msg_id}
    assert mesh.events("a", MessageDelivered) == [MessageDelivered(msg_id)]


def test_ack_for_an_unknown_message_is_ignored() -> None:
    mesh = _chain("a", "b")
    b = mesh.engines["b"].identity
    ack = codec.build(
        b,
        PacketKind.ACK,
        Destination.node(mesh.engines["a"].identity.node_id),
        Suite.SIGNED,
        AckBody(b"\x0d" * 16, b"\x0e" * 16, b.public.box_public).encode(),
        mesh.now_ms,
        4,
    )
    assert mesh.inject("a", codec.encode(ack), link_id("a", "b")) == []


def test_garbage_frames_are_dropped_quietly() -> None:
    mesh = _chain("a", "b")
    for frame in (b"", b"\x00", b"\x8b" * 40, bytes(range(256))):
        out = mesh.inject("b", frame, link_id("b", "a"))
        assert all(type(o).__name__ == "Drop" for o in out)
    mesh.run(1_000)
    assert mesh.transmissions == 0


# -- a 50-node mesh ---------------------------------------------------------------------------


def _flood_50(
    names: list[str], edges: list[tuple[str, str]], origin: str, policy: object, seed: int
) -> tuple[Mesh, bytes]:
    mesh = Mesh(seed=seed, ttl=MAX_TTL, policy=lambda: policy)  # type: ignore[arg-type,return-value]
    mesh.add_many(names)
    for engine in mesh.engines.values():
        engine.join(PUBLIC)
    mesh.connect_all(edges)
    assert mesh.transmissions == 0
    msg_id = mesh.send_channel(origin, PUBLIC, "hello, whole mesh")
    mesh.run(30_000)
    return mesh, msg_id


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fifty_node_grid_broadcast_reaches_every_node_exactly_once(seed: int) -> None:
    names, edges = grid(5, 10)
    origin = "n0_0"  # a corner; the far corner is 13 hops away
    dist = distances(names, edges, origin)
    assert len(names) == 50 and len(dist) == 50
    assert max(dist.values()) >= 6
    degree_sum = 2 * len(edges)

    mesh, msg_id = _flood_50(names, edges, origin, ManagedFlood(), seed=seed)
    counts = mesh.received_counts(msg_id)
    assert counts[origin] == 0
    missing = [n for n in names if n != origin and counts[n] != 1]
    assert missing == [], {n: counts[n] for n in missing}
    # It crossed the whole grid; a first copy may come by a detour, never by a shortcut.
    [far] = mesh.received("n4_9")
    assert far.hops + 1 >= dist["n4_9"] == 13
    for name in names:
        for r in mesh.received(name):
            assert r.hops + 1 >= dist[name]

    naive, naive_id = _flood_50(names, edges, origin, NaiveFlood(), seed=seed)
    assert all(naive.received_counts(naive_id)[n] == 1 for n in names if n != origin)
    print(
        f"\ngrid 5x10 seed {seed}: {len(edges)} links, far corner {dist['n4_9']} hops; "
        f"transmissions managed={mesh.transmissions} naive={naive.transmissions} "
        f"sum-of-degrees={degree_sum}"
    )
    assert naive.transmissions <= degree_sum
    assert mesh.transmissions <= naive.transmissions


@pytest.mark.parametrize("graph_seed", [0, 1])
def test_fifty_node_random_graph_naive_flood_reaches_every_node_exactly_once(
    graph_seed: int,
) -> None:
    names, edges = strip_graph(50, graph_seed, length=10.0, radius=1.0)
    origin = names[0]  # the left end of a long strip
    dist = distances(names, edges, origin)
    assert len(dist) == 50 and max(dist.values()) >= 6
    mesh, msg_id = _flood_50(names, edges, origin, NaiveFlood(), seed=1)
    counts = mesh.received_counts(msg_id)
    assert [n for n in names if n != origin and counts[n] != 1] == []
    far = max(names, key=lambda n: dist[n])
    assert mesh.received(far)[0].hops + 1 >= dist[far] >= 6
    print(
        f"\nstrip graph {graph_seed}: {len(edges)} links, {max(dist.values())} hops; "
        f"transmissions naive={mesh.transmissions} sum-of-degrees={2 * len(edges)}"
    )
    assert mesh.transmissions <= 2 * len(edges) - (len(names) - 1)


def test_managed_flood_covers_long_random_graphs() -> None:
    failures = []
    for graph_seed in range(4):
        names, edges = strip_graph(50, graph_seed, length=10.0, radius=1.0)
        for seed in range(3):
            mesh, msg_id = _flood_50(names, edges, names[0], ManagedFlood(), seed=seed)
            counts = mesh.received_counts(msg_id)
            missed = sum(1 for n in names[1:] if counts[n] == 0)
            if missed:
                failures.append((graph_seed, seed, missed))
    assert failures == []


# -- sealed direct messages (suite RATCHET) ---------------------------------------------------


def _suites(mesh: Mesh, node: str) -> list[tuple[PacketKind, Suite]]:
    return [
        (p.kind, p.suite)
        for o in mesh.outputs[node]
        if isinstance(o, Transmit)
        for p in [codec.parse(o.frame)]
        if p.kind is not PacketKind.ANNOUNCE
    ]


def test_announced_prekey_upgrades_a_contact_from_box_to_sealed() -> None:
    mesh = _chain("a", "b")
    a, b = mesh.engines["a"], mesh.engines["b"]
    a.add_contact(b.identity.public, None, mesh.now_ms)  # a version 1 card: no prekey
    mesh.send_direct("a", "b", "plain box")
    mesh.run(2_000)
    assert (PacketKind.MESSAGE, Suite.BOX) in _suites(mesh, "a")
    mesh.announce("b")
    mesh.run(2_000)
    [heard] = mesh.events("a", PeerAnnounced)
    assert heard.prekey is not None and heard.prekey.verify(b.identity.public)
    mesh.send_direct("a", "b", "sealed now")
    mesh.run(2_000)
    assert _suites(mesh, "a")[-1] == (PacketKind.MESSAGE, Suite.RATCHET)
    assert [r.text for r in mesh.received("b")] == ["plain box", "sealed now"]
    assert len(mesh.events("a", MessageDelivered)) == 2


def test_sealed_ack_uncarries_only_with_the_right_token() -> None:
    mesh = _chain("a", "b", cards=True)
    mesh.add("c")
    mesh.introduce("a", "c")
    msg_id = mesh.send_direct("a", "c", "carried by b")  # c is not linked yet
    mesh.run(1_000)
    b = mesh.engines["b"]
    assert b.router.carried_count == 1
    forged = anonymous_packet(
        SigningKey.generate(),
        PacketKind.ACK,
        Destination.node(bytes(16)),
        bytes(256),  # a token of zeros, then nothing that opens
        mesh.now_ms,
        4,
    )
    mesh.inject("b", codec.encode(forged), link_id("b", "a"))
    assert b.router.carried_count == 2  # the message, and the forged ack (as any packet)
    mesh.connect("b", "c")
    mesh.run(5_000)
    assert mesh.events("a", MessageDelivered) == [MessageDelivered(msg_id)]
    carried = {codec.parse(f).kind for f in (c.frame for c in b.router._carried.values())}
    assert carried == {PacketKind.ACK}  # the message is gone; acks are kept until they expire


def test_sealed_message_carried_for_days_is_still_delivered() -> None:
    mesh = _chain("a", "b", "c", cards=True)
    mesh.disconnect("b", "c")
    msg_id = mesh.send_direct("a", "c", "three days late")
    mesh.run(500)
    mesh.disconnect("a", "b")  # a's retries go nowhere now; only b's copy travels
    mesh.run(3 * 24 * 3_600_000)
    mesh.tick()
    mesh.connect("b", "c")  # b offers the three-day-old packet, its tag from three days ago
    mesh.run(5_000)
    assert [r.msg_id for r in mesh.received("c")] == [msg_id]
    mesh.connect("a", "b")
    mesh.run(10_000)
    assert mesh.events("a", MessageDelivered) == [MessageDelivered(msg_id)]


def test_clocks_an_hour_apart_still_meet() -> None:
    mesh = _chain("a", "b", cards=True)
    mesh.run(EPOCH - mesh.now_ms % EPOCH - 1)  # one millisecond before the hour
    msg_id = mesh.send_direct("a", "b", "sent at 59:59.999")
    mesh.run(5_000)  # received in the next epoch
    assert [r.msg_id for r in mesh.received("b")] == [msg_id]
    assert mesh.events("a", MessageDelivered) == [MessageDelivered(msg_id)]
