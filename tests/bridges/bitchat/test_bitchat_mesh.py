"""The sans-IO bitchat node: dedupe, TTL relaying, fragments, verification before anything is
shown or relayed, and the cap on what a bitchat flood can push into #bitchat. Peers are built
with bitchat-cli (an implementation nobody here wrote) where it can play the part."""

from __future__ import annotations

import contextlib
import hashlib
import random
import string
from dataclasses import replace
from types import SimpleNamespace

import pytest
from bitchat_cli import protocol as cli
from bitchat_cli.ble_service import BLEService
from bitchat_cli.identity import IdentityKeys
from hypothesis import given, settings
from hypothesis import strategies as st

from meshchat.bridges.bitchat.mesh import BitchatMesh, Heard, PeerSeen, Relay
from meshchat.bridges.bitchat.packet import MessageType, decode, encode
from meshchat.bridges.bitchat.public import BitchatIdentity
from meshchat.errors import BridgeError, BridgeReason

NOW = 1_800_000_000_000


class CliPeer:
    """A bitchat peer as bitchat-cli builds its packets, with an upstream peer id."""

    def __init__(self, nickname: str) -> None:
        self.keys = IdentityKeys()
        self.peer_id = hashlib.sha256(self.keys.noise_public_key_bytes()).digest()[:8]
        self.nickname = nickname

    def _signed(self, kind: int, payload: bytes, at: int, ttl: int = 7) -> cli.BitchatPacket:
        packet = cli.BitchatPacket(
            type=kind, sender_id=self.peer_id, payload=payload, ttl=ttl, timestamp=at
        )
        packet.signature = self.keys.sign(packet.data_for_signing())
        return packet

    def announce(self, at: int = NOW) -> bytes:
        body = cli.AnnouncementPacket(
            self.nickname, self.keys.noise_public_key_bytes(), self.keys.signing_public_key_bytes()
        ).encode()
        assert body is not None
        return self._signed(1, body, at).encode()

    def message(self, text: str, at: int = NOW, ttl: int = 7) -> bytes:
        return self._signed(2, text.encode(), at, ttl).encode()

    def fragments(self, text: str, at: int = NOW) -> list[bytes]:
        whole = self._signed(2, text.encode(), at).encode(padding=False)
        fake = SimpleNamespace(state=SimpleNamespace(my_peer_id=self.peer_id))
        return BLEService._fragment(fake, whole, 2)  # type: ignore[arg-type]


def _reason(call: object) -> BridgeReason:
    with pytest.raises(BridgeError) as caught:
        call()  # type: ignore[operator]
    return caught.value.reason


def test_announce_message_relay_and_dedupe() -> None:
    mesh = BitchatMesh(BitchatIdentity.generate(), "meshchat")
    bob = CliPeer("bob")
    seen = mesh.receive(bob.announce(), NOW)
    assert isinstance(seen[0], PeerSeen) and seen[0].announcement.nickname == "bob"
    assert isinstance(seen[1], Relay) and decode(seen[1].frame).ttl == 6
    assert _reason(lambda: mesh.receive(bob.announce(), NOW)) is BridgeReason.DUPLICATE
    assert _reason(lambda: mesh.receive(seen[1].frame, NOW)) is BridgeReason.DUPLICATE
    out = mesh.receive(bob.message("hi from bitchat"), NOW + 5)
    assert [type(d) for d in out] == [Heard, Relay]
    assert out[0].message.text == "hi from bitchat"  # type: ignore[union-attr]
    assert out[0].message.nickname == "bob"  # type: ignore[union-attr]
    last_hop = mesh.receive(bob.message("last hop", ttl=1), NOW + 6)
    assert [type(d) for d in last_hop] == [Heard]  # shown, not relayed past TTL 1


def test_forgeries_are_neither_shown_nor_relayed() -> None:
    mesh = BitchatMesh(BitchatIdentity.generate(), "meshchat")
    bob, eve = CliPeer("bob"), CliPeer("eve")
    mesh.receive(bob.announce(), NOW)
    assert (
        _reason(lambda: mesh.receive(eve.message("who am I"), NOW)) is BridgeReason.UNKNOWN_SENDER
    )
    unsigned = encode(replace(decode(bob.message("unsigned")), signature=None))
    assert _reason(lambda: mesh.receive(unsigned, NOW)) is BridgeReason.UNSIGNED
    stale = bob.message("yesterday", at=NOW - 7 * 3600 * 1000)
    assert _reason(lambda: mesh.receive(stale, NOW)) is BridgeReason.STALE
    # eve claims bob's peer id with her own signing key
    copied = CliPeer("bob")
    copied.peer_id = bob.peer_id
    assert _reason(lambda: mesh.receive(copied.announce(NOW + 1), NOW + 1)) is (
        BridgeReason.SENDER_MISMATCH
    )


def test_fragments_from_bitchat_cli_reassemble_and_relay() -> None:
    mesh = BitchatMesh(BitchatIdentity.generate(), "meshchat")
    bob = CliPeer("bob")
    mesh.receive(bob.announce(), NOW)
    text = "".join(chr(0x400 + i) for i in range(400))
    frames = bob.fragments(text)
    assert len(frames) > 1
    decisions = [mesh.receive(frame, NOW + 1) for frame in frames]
    assert all(isinstance(d[0], Relay) for d in decisions)
    assert next(d for d in decisions[-1] if isinstance(d, Heard)).message.text == text


def test_our_frames_reach_another_mesh_node_and_are_not_taken_back() -> None:
    alice = BitchatMesh(BitchatIdentity.generate(), "alice")
    bob = BitchatMesh(BitchatIdentity.generate(), "bob")
    for frame in alice.announce(NOW):
        bob.receive(frame, NOW)
    pick = random.Random(7)
    text = "".join(pick.choice(string.ascii_letters + string.digits) for _ in range(900))
    frames = alice.send_text(text, NOW + 1)  # compressed, and still over one frame
    assert len(frames) > 1 and all(len(f) <= 512 for f in frames)
    got = [d for frame in frames for d in bob.receive(frame, NOW + 1) if isinstance(d, Heard)]
    assert [h.message.text for h in got] == [text]
    echo = bob.receive(alice.send_text("short one", NOW + 2)[0], NOW + 2)[-1]
    assert isinstance(echo, Relay)
    assert _reason(lambda: alice.receive(echo.frame, NOW + 2)) is BridgeReason.DUPLICATE


def test_a_bitchat_flood_is_capped_before_it_reaches_meshchat() -> None:
    mesh = BitchatMesh(BitchatIdentity.generate(), "meshchat")
    peers = [CliPeer(f"p{i}") for i in range(10)]
    for peer in peers:
        mesh.receive(peer.announce(), NOW)
    shown = relayed = 0
    for n in range(30):
        for peer in peers:
            for decision in mesh.receive(peer.message(f"flood {n}", at=NOW + n), NOW + n):
                shown += isinstance(decision, Heard)
                relayed += isinstance(decision, Relay)
    assert relayed == 300  # the bitchat side still carries everything verified
    assert shown <= 20 + 30  # a burst of 20, then one per second over 30 s


def test_sync_requests_are_not_relayed() -> None:
    mesh = BitchatMesh(BitchatIdentity.generate(), "meshchat")
    bob = CliPeer("bob")
    packet = cli.BitchatPacket(
        type=MessageType.REQUEST_SYNC, sender_id=bob.peer_id, payload=b"x", timestamp=NOW
    )
    assert mesh.receive(packet.encode(), NOW) == []


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=20))
def test_mesh_never_fails_untyped(frames: list[bytes]) -> None:
    mesh = BitchatMesh(BitchatIdentity.generate(), "meshchat")
    for at, frame in enumerate(frames):
        with contextlib.suppress(BridgeError):
            mesh.receive(frame, NOW + at)


_BOB = CliPeer("bob")
_VALID = [_BOB.announce(), _BOB.message("hello"), *_BOB.fragments("x" * 1200)]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, len(_VALID) - 1), st.integers(0, 2000), st.integers(0, 255)),
        max_size=12,
    )
)
def test_mesh_never_fails_untyped_on_mutated_frames(edits: list[tuple[int, int, int]]) -> None:
    mesh = BitchatMesh(BitchatIdentity.generate(), "meshchat")
    mesh.receive(_VALID[0], NOW)
    for which, at, value in edits:
        frame = bytearray(_VALID[which])
        frame[at % len(frame)] = value
        with contextlib.suppress(BridgeError):
            mesh.receive(bytes(frame), NOW)
