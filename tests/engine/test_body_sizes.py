"""The largest message (MAX_TEXT_BYTES of text, MAX_PARENTS parents, the largest sent time)
fits one packet in every suite and arrives whole; so does the largest history summary in both
shared suites."""

from __future__ import annotations

import pytest
from mesh import Mesh

from meshchat.causal import MAX_HEADS_SHOWN, MAX_PARENTS, MAX_WANTS
from meshchat.crypto.channel import ChannelKey, derive_channel_key
from meshchat.engine import Output
from meshchat.events import HistoryReceived
from meshchat.router.actions import Transmit
from meshchat.wire import codec
from meshchat.wire.packet import MAX_PACKET_SIZE, MAX_PAYLOAD_SIZE, Suite
from meshchat.wire.payloads import MAX_SENT_MS, MAX_TEXT_BYTES

PARENTS = tuple(bytes([i]) * 16 for i in range(1, MAX_PARENTS))
LOOSE = (b"\xee" * 16,)
TEXT = "\u00e9" * (MAX_TEXT_BYTES // 2)  # two UTF-8 bytes each: MAX_TEXT_BYTES exactly
SENT = MAX_SENT_MS - 1
SECRET = derive_channel_key("#secret", "a passphrase")
PUBLIC = ChannelKey.public()


def _mesh() -> Mesh:
    mesh = Mesh()
    mesh.add_many("abc")
    mesh.connect("a", "b")
    mesh.connect("b", "c")
    for name in "abc":
        mesh.engines[name].join(PUBLIC)
        mesh.engines[name].join(SECRET)
    return mesh


def _one_packet(mesh: Mesh, outputs: list[Output], suite: Suite) -> None:
    mesh._handle("a", outputs)
    frames = [o.frame for o in outputs if isinstance(o, Transmit)]
    assert frames
    for frame in frames:
        assert len(frame) <= MAX_PACKET_SIZE
        packet = codec.decode(frame, mesh.now_ms)
        assert packet.suite is suite
        assert len(packet.payload) <= MAX_PAYLOAD_SIZE


@pytest.mark.parametrize(
    "suite", [Suite.BOX, Suite.RATCHET, Suite.SIGNED, Suite.CHANNEL, Suite.GROUP]
)
def test_the_largest_message_fits_one_packet_in_every_suite(suite: Suite) -> None:
    mesh = _mesh()
    a, c = mesh.engines["a"], mesh.engines["c"]
    msg_id = mesh.new_msg_id()
    big = {"parents": PARENTS, "loose": LOOSE, "sent_ms": SENT}
    if suite is Suite.GROUP:
        group_id = mesh.create_group("a", "g", "bc")
        mesh.run(20_000)
        out = a.send_group(group_id, msg_id, TEXT, mesh.now_ms, **big)  # type: ignore[arg-type]
    elif suite in (Suite.SIGNED, Suite.CHANNEL):
        channel = PUBLIC if suite is Suite.SIGNED else SECRET
        out = a.send_channel(channel.channel_id, msg_id, TEXT, mesh.now_ms, **big)  # type: ignore[arg-type]
    else:
        if suite is Suite.RATCHET:
            mesh.introduce("a", "c")  # the first message also carries the key agreement
        out = a.send_direct(c.identity.public, msg_id, TEXT, mesh.now_ms, **big)  # type: ignore[arg-type]
    _one_packet(mesh, out, suite)
    mesh.run(2_000)
    [got] = [r for r in mesh.received("c") if r.msg_id == msg_id]
    assert (got.text, got.sent_ms, got.parents, got.loose) == (TEXT, SENT, PARENTS, LOOSE)


@pytest.mark.parametrize("suite", [Suite.SIGNED, Suite.CHANNEL, Suite.GROUP])
def test_the_largest_history_summary_fits_one_packet(suite: Suite) -> None:
    mesh = _mesh()
    heads = tuple(bytes([1, i]) * 8 for i in range(MAX_HEADS_SHOWN))
    wants = tuple(bytes([2, i]) * 8 for i in range(MAX_WANTS))
    if suite is Suite.GROUP:
        conversation_id = mesh.create_group("a", "g", "bc")
        mesh.run(20_000)
    else:
        conversation_id = (PUBLIC if suite is Suite.SIGNED else SECRET).channel_id
    out = mesh.engines["a"].send_history(conversation_id, heads, wants, mesh.now_ms)
    _one_packet(mesh, out, suite)
    mesh.run(2_000)
    [got] = mesh.events("c", HistoryReceived)
    assert (got.heads, got.wants) == (heads, wants)
