"""The engine's side of causal history, on the in-process mesh (tests/mesh.py): sent times and
parents carried through every suite and every retry, a new direct message resending the ones it
follows, history summaries in groups and channels, and the summaries that must be refused."""

from __future__ import annotations

import itertools

import cbor2
import pytest
from mesh import EPOCH_MS, Mesh, link_id

from meshchat.causal import MAX_WANTS
from meshchat.crypto.box import BoxSuite
from meshchat.crypto.channel import ChannelKey, derive_channel_key
from meshchat.engine import Engine
from meshchat.engine._sending import MAX_RESEND, RESEND_GAP_MS
from meshchat.errors import PacketError, UsageError
from meshchat.events import (
    GroupChanged,
    GroupStateUpdated,
    HistoryReceived,
    MessageDelivered,
    MessageReceived,
    MessageRejected,
)
from meshchat.group.book import GroupBook, group_conversation
from meshchat.router.actions import Transmit
from meshchat.wire import codec
from meshchat.wire.packet import Destination, PacketKind, Suite
from meshchat.wire.payloads import HistoryBody, MessageBody

NOW = EPOCH_MS
P1, P2, P3 = (bytes([n]) * 16 for n in (0xA1, 0xA2, 0xA3))
NINE = [bytes([n]) * 16 for n in range(9)]
SECRET = derive_channel_key("#team", "a passphrase")


def _chain(names: str = "abc", **kwargs: object) -> Mesh:
    mesh = Mesh(**kwargs)  # type: ignore[arg-type]
    mesh.add_many(names)
    mesh.connect_all(itertools.pairwise(names))
    return mesh


def _msg_ids(engine: Engine, frames: list[bytes], now_ms: int) -> list[bytes]:
    """The message ids inside BOX frames to ``engine``, in order."""
    box = BoxSuite(engine.identity)
    ids = []
    for frame in frames:
        _, plaintext = box.open(codec.decode(frame, now_ms).payload)
        ids.append(MessageBody.decode(plaintext).msg_id)
    return ids


def _frames(outputs: list[object]) -> list[bytes]:
    return [o.frame for o in outputs if isinstance(o, Transmit)]


# -- sent time and parents ----------------------------------------------------------------------


@pytest.mark.parametrize("cards", [False, True], ids=["BOX", "RATCHET"])
def test_direct_message_carries_sent_time_and_parents(cards: bool) -> None:
    mesh = _chain(cards=cards)
    a = mesh.engines["a"]
    recipient = mesh.engines["c"].identity.public
    if cards:
        mesh.introduce("a", "c")
    msg_id = mesh.new_msg_id()
    out = a.send_direct(recipient, msg_id, "hi", NOW, parents=(P1, P2), loose=(P3,))
    mesh._handle("a", out)
    mesh.run(2_000)
    [got] = mesh.received("c")
    assert (got.msg_id, got.sent_ms, got.parents, got.loose) == (msg_id, NOW, (P1, P2), (P3,))
    assert mesh.events("a", MessageDelivered) == [MessageDelivered(msg_id)]


def test_channel_and_group_messages_carry_sent_time_and_parents() -> None:
    mesh = _chain(cards=True)
    for name in "abc":
        mesh.engines[name].join(SECRET)
    group_id = mesh.create_group("a", "g", "bc")
    mesh.run(20_000)
    a, t = mesh.engines["a"], mesh.now_ms
    mesh._handle("a", a.send_channel(SECRET.channel_id, b"\x01" * 16, "c", t, parents=(P1,)))
    mesh._handle("a", a.send_group(group_id, b"\x02" * 16, "g", t, parents=(P2,), sent_ms=7))
    mesh.run(2_000)
    got = {r.msg_id: r for r in mesh.received("c")}
    channel, group = got[b"\x01" * 16], got[b"\x02" * 16]
    assert (channel.conversation, channel.sent_ms, channel.parents) == (SECRET.name, t, (P1,))
    assert (group.conversation, group.sent_ms, group.parents) == (
        group_conversation(group_id),
        7,
        (P2,),
    )


def test_an_older_nodes_body_takes_the_packets_time() -> None:
    mesh = _chain("ab")
    a, b = mesh.engines["a"], mesh.engines["b"]
    cbor_two_items = cbor2.dumps([b"\x05" * 16, "from an older node"], canonical=True)
    payload = BoxSuite(a.identity).seal(b.identity.public.box_public, cbor_two_items)
    packet = codec.build(
        a.identity,
        PacketKind.MESSAGE,
        Destination.node(b.identity.node_id),
        Suite.BOX,
        payload,
        NOW - 5_000,
        4,
    )
    mesh.inject("b", codec.encode(packet), link_id("b", "a"))
    [got] = mesh.received("b")
    assert (got.text, got.sent_ms, got.parents) == ("from an older node", NOW - 5_000, ())


def test_every_retry_carries_the_same_body() -> None:
    mesh = _chain("ab")
    a, b = mesh.engines["a"], mesh.engines["b"]
    mesh.filter = lambda node, link, frame: node != "b"  # b never hears a
    msg_id = mesh.new_msg_id()
    mesh._handle("a", a.send_direct(b.identity.public, msg_id, "x", NOW, parents=(P1,), sent_ms=42))
    mesh.run(60_000)
    frames = _frames(mesh.outputs["a"])  # type: ignore[arg-type]
    assert len(frames) >= 4
    box = BoxSuite(b.identity)
    bodies = {MessageBody.decode(box.open(codec.decode(f, mesh.now_ms).payload)[1]) for f in frames}
    assert bodies == {MessageBody(msg_id, "x", 42, (P1,))}
    assert len({codec.decode(f, mesh.now_ms).packet_id for f in frames}) == len(frames)


def test_bad_parents_are_refused_at_the_sender_and_nothing_is_queued() -> None:
    mesh = _chain("ab")
    a, b = mesh.engines["a"], mesh.engines["b"]
    msg_id = b"\x09" * 16
    for kwargs in ({"parents": (msg_id,)}, {"parents": (P1, P1)}, {"sent_ms": -1}):
        with pytest.raises(PacketError):
            a.send_direct(b.identity.public, msg_id, "x", NOW, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(PacketError):
        a.send_direct(b.identity.public, msg_id, "x", NOW, parents=NINE)
    assert len(a.outbox) == 0


# -- a new message resends what it follows ------------------------------------------------------


@pytest.mark.parametrize("cards", [False, True], ids=["BOX", "RATCHET"])
def test_a_new_direct_message_resends_the_lost_one_before_it(cards: bool) -> None:
    mesh = _chain("ab", cards=cards)
    a, b = mesh.engines["a"], mesh.engines["b"]
    if cards:
        mesh.introduce("a", "b")
    first_frames: list[bytes] = []

    def lose_the_first(node: str, link: str, frame: bytes) -> bool:
        if node == "b" and not first_frames:
            first_frames.append(frame)
            return False
        return True

    mesh.filter = lose_the_first
    first = mesh.new_msg_id()
    mesh._handle("a", a.send_direct(b.identity.public, first, "A", mesh.now_ms))
    mesh.run(1_500)  # A is lost; its retry is not due before 2.25 s
    assert mesh.received("b") == []
    second = mesh.new_msg_id()
    out = a.send_direct(b.identity.public, second, "B", mesh.now_ms, parents=(first,))
    mesh._handle("a", out)
    frames = _frames(out)  # type: ignore[arg-type]
    assert len(frames) == 2  # A again, then B
    mesh.run(1_000)
    got = [r.msg_id for r in mesh.received("b")]
    assert got == [first, second]  # A arrived first
    assert [r.parents for r in mesh.received("b")] == [(), (first,)]
    assert {d.msg_id for d in mesh.events("a", MessageDelivered)} == {first, second}
    if not cards:
        assert _msg_ids(b, frames, mesh.now_ms) == [first, second]


def test_resending_skips_messages_just_tried_and_other_recipients() -> None:
    mesh = _chain("ab")
    a = mesh.engines["a"]
    b, c = mesh.engines["b"].identity.public, mesh.identity_of("c").public
    # Nothing reaches anyone: everything stays unacked in the outbox.
    mesh.filter = lambda node, link, frame: False
    to_c = mesh.new_msg_id()
    mesh._handle("a", a.send_direct(c, to_c, "for c", mesh.now_ms))
    first = mesh.new_msg_id()
    mesh._handle("a", a.send_direct(b, first, "1", mesh.now_ms))
    mesh.run(RESEND_GAP_MS - 1)
    # Tried less than RESEND_GAP_MS ago: still on its way, not sent again.
    second = mesh.new_msg_id()
    out = a.send_direct(b, second, "2", mesh.now_ms)
    assert _msg_ids(mesh.engines["b"], _frames(out), mesh.now_ms) == [second]  # type: ignore[arg-type]
    mesh._handle("a", out)
    mesh.run(1)
    third = mesh.new_msg_id()
    out = a.send_direct(b, third, "3", mesh.now_ms)
    # The first is resent, oldest first; the second was tried 1 ms ago; c's is not b's.
    assert _msg_ids(mesh.engines["b"], _frames(out), mesh.now_ms) == [first, third]  # type: ignore[arg-type]


def test_resending_is_bounded_per_new_message() -> None:
    mesh = _chain("ab")
    a, b = mesh.engines["a"], mesh.engines["b"]
    mesh.disconnect("a", "b")
    queued = [mesh.new_msg_id() for _ in range(MAX_RESEND + 10)]
    for msg_id in queued:  # written while alone: queued, never tried
        assert a.send_direct(b.identity.public, msg_id, "q", mesh.now_ms) == []
    mesh.connect("a", "b")  # the link wakes the outbox: each is tried once
    mesh.filter = lambda node, link, frame: False
    mesh.run(RESEND_GAP_MS)
    new = mesh.new_msg_id()
    out = a.send_direct(b.identity.public, new, "new", mesh.now_ms)
    assert _msg_ids(b, _frames(out), mesh.now_ms) == [*queued[:MAX_RESEND], new]  # type: ignore[arg-type]


# -- history summaries ----------------------------------------------------------------------------


def test_group_history_request_round_trip() -> None:
    mesh = _chain("abcd", cards=True)
    group_id = mesh.create_group("a", "g", "bcd")
    mesh.run(20_000)
    conversation = group_conversation(group_id)
    d, b = mesh.engines["d"], mesh.engines["b"]
    # d asks for what it misses; every other member hears it, once.
    mesh._handle("d", d.send_history(group_id, (P1,), (P2, P3), mesh.now_ms))
    assert len(d.outbox) == 0  # not queued
    mesh.run(2_000)
    for node in "abc":
        assert mesh.events(node, HistoryReceived) == [
            HistoryReceived(conversation, d.identity.public.sign_public, (P1,), (P2, P3))
        ]
    assert mesh.events("d", HistoryReceived) == []
    assert all(r.conversation != conversation for n in "abcd" for r in mesh.received(n))
    # b answers: the message d wanted (same id, parents and time), and its own heads.
    mesh._handle("b", b.send_group(group_id, P2, "wanted", mesh.now_ms, parents=(P1,), sent_ms=NOW))
    mesh._handle("b", b.send_history(group_id, (P2,), (), mesh.now_ms))
    mesh.run(2_000)
    [answer] = [r for r in mesh.received("d") if r.conversation == conversation]
    assert (answer.msg_id, answer.parents, answer.sent_ms) == (P2, (P1,), NOW)
    summaries = [h for h in mesh.events("d", HistoryReceived) if h.conversation == conversation]
    assert summaries == [HistoryReceived(conversation, b.identity.public.sign_public, (P2,), ())]
    # No acks of summaries: nothing of them in anybody's outbox, no deliveries reported.
    assert mesh.events("d", MessageDelivered) == []


def test_channel_history_summary_names_the_channel_and_the_signer() -> None:
    mesh = _chain()
    public = ChannelKey.public()
    for name in "abc":
        mesh.engines[name].join(public)
        mesh.engines[name].join(SECRET)
    a = mesh.engines["a"]
    for channel in (public, SECRET):
        mesh._handle("a", a.send_history(channel.channel_id, (P1,), (P2,), mesh.now_ms))
    mesh.run(2_000)
    for node in "bc":
        assert mesh.events(node, HistoryReceived) == [
            HistoryReceived(public.name, a.identity.public.sign_public, (P1,), (P2,)),
            HistoryReceived(SECRET.name, a.identity.public.sign_public, (P1,), (P2,)),
        ]
    # Someone without the private channel's key does not hear it.
    mesh.engines["c"].leave(SECRET)
    mesh._handle("a", a.send_history(SECRET.channel_id, (), (P3,), mesh.now_ms))
    mesh.run(2_000)
    assert len(mesh.events("c", HistoryReceived)) == 2
    assert len(mesh.events("b", HistoryReceived)) == 3


def test_send_history_needs_membership_and_a_link() -> None:
    mesh = _chain("ab", cards=True)
    group_id = mesh.create_group("a", "g", "b")
    mesh.run(20_000)
    a = mesh.engines["a"]
    with pytest.raises(UsageError):
        a.send_history(b"\x33" * 16, (), (P1,), mesh.now_ms)  # no such group or channel
    with pytest.raises(UsageError):
        a.send_history(SECRET.channel_id, (), (P1,), mesh.now_ms)  # not joined
    with pytest.raises(PacketError):
        a.send_history(group_id, (), tuple(bytes([n]) * 16 for n in range(MAX_WANTS + 1)), 0)
    mesh.disconnect("a", "b")
    assert a.send_history(group_id, (P1,), (), mesh.now_ms) == []  # nobody to tell: dropped
    assert len(a.outbox) == 0
    mesh.connect("a", "b")
    mesh.run(2_000)
    assert mesh.events("b", HistoryReceived) == []  # not sent later either
    mesh._handle("b", mesh.engines["b"].leave_group(group_id, mesh.now_ms))
    mesh.run(20_000)
    with pytest.raises(UsageError):
        mesh.engines["b"].send_history(group_id, (P1,), (), mesh.now_ms)


def test_history_from_a_removed_member_is_rejected() -> None:
    mesh = _chain("abcd", cards=True)
    group_id = mesh.create_group("a", "g", "bcd")
    mesh.run(20_000)
    stale = next(
        o for o in mesh.outputs["d"] if isinstance(o, GroupStateUpdated) and o.key == group_id
    )
    d_id = mesh.engines["d"].identity.node_id
    mesh._handle("a", mesh.engines["a"].change_group(group_id, mesh.now_ms, remove=[d_id]))
    mesh.run(20_000)
    assert [g.what for g in mesh.events("d", GroupChanged)][-1] == "removed"
    with pytest.raises(UsageError):
        mesh.engines["d"].send_history(group_id, (), (P1,), mesh.now_ms)
    # d kept its old keys and asks the group anyway: nobody takes it.
    forger = GroupBook(mesh.engines["d"].identity)
    forger.load({group_id: stale.blob})
    packet = forger.seal(group_id, HistoryBody((), (P1,)).encode(), mesh.now_ms, 8)
    outputs = mesh.inject("c", codec.encode(packet))
    assert any(isinstance(o, MessageRejected) and "not a member" in o.reason for o in outputs)
    mesh.run(5_000)
    assert all(mesh.events(n, HistoryReceived) == [] for n in "abc")


@pytest.mark.parametrize("cards", [False, True], ids=["BOX", "RATCHET"])
def test_a_history_summary_inside_a_direct_message_is_rejected(cards: bool) -> None:
    mesh = _chain("ab")
    a, b = mesh.engines["a"], mesh.engines["b"]
    body = HistoryBody((P1,), (P2,)).encode()
    if cards:
        mesh.introduce("a", "b")
        packet = a.direct.build_message(b.identity.public, P3, body, mesh.now_ms, 4)
    else:
        payload = BoxSuite(a.identity).seal(b.identity.public.box_public, body)
        packet = codec.build(
            a.identity,
            PacketKind.MESSAGE,
            Destination.node(b.identity.node_id),
            Suite.BOX,
            payload,
            mesh.now_ms,
            4,
        )
    out = mesh.inject("b", codec.encode(packet), link_id("b", "a"))
    assert any(isinstance(o, MessageRejected) for o in out)
    assert not any(isinstance(o, (HistoryReceived, MessageReceived)) for o in out)
    assert [o for o in out if isinstance(o, Transmit)] == []  # no ack
