"""The link handshake (Noise XX + identity proofs): both sides learn who the other is, a passive
observer learns no long-term key, and relayed, replayed, reflected or forged proofs fail."""

from __future__ import annotations

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from noise.connection import Keypair, NoiseConnection

from meshchat.errors import FramingError, HandshakeError
from meshchat.identity import Identity
from meshchat.wire.handshake import (
    HANDSHAKE_VERSION,
    MAX_HANDSHAKE_FRAME,
    NOISE_PROTOCOL,
    LinkHandshake,
)

ALICE = Identity.from_seeds(b"\x31" * 32, b"\x32" * 32)
BOB = Identity.from_seeds(b"\x41" * 32, b"\x42" * 32)
MALLORY = Identity.from_seeds(b"\x51" * 32, b"\x52" * 32)


class Transcript:
    """A completed handshake, Alice dialling Bob, and every frame that crossed."""

    def __init__(self, a: Identity = ALICE, b: Identity = BOB, port: int | None = 4242) -> None:
        self.a = LinkHandshake(a, initiator=True, port=port)
        self.b = LinkHandshake(b, initiator=False)
        assert self.b.start() == []
        (self.m1,) = self.a.start()
        (self.m2,) = self.b.receive(self.m1)
        self.m3, self.id_a = self.a.receive(self.m2)
        (self.id_b,) = self.b.receive(self.m3)
        assert self.b.receive(self.id_a) == []
        assert self.a.receive(self.id_b) == []

    @property
    def frames(self) -> list[bytes]:
        return [self.m1, self.m2, self.m3, self.id_a, self.id_b]


def _fails(handshake: LinkHandshake, frame: bytes) -> None:
    with pytest.raises(HandshakeError):
        handshake.receive(frame)
    assert not handshake.done
    with pytest.raises(HandshakeError):
        _ = handshake.peer
    with pytest.raises(HandshakeError):
        handshake.receive(frame)  # and it stays failed


def _long_term_keys(*identities: Identity) -> list[bytes]:
    keys = []
    for identity in identities:
        keys += [identity.public.sign_public, identity.public.box_public, identity.node_id]
    return keys


class RawNoise:
    """A man in the middle's own end of a Noise session (not a LinkHandshake)."""

    def __init__(self, initiator: bool) -> None:
        self.noise = NoiseConnection.from_name(NOISE_PROTOCOL)
        if initiator:
            self.noise.set_as_initiator()
        else:
            self.noise.set_as_responder()
        self.noise.set_prologue(b"meshchat-link-v2")
        self.noise.set_keypair_from_private_bytes(Keypair.STATIC, b"\x66" * 32)
        self.noise.start_handshake()

    def write(self) -> bytes:
        return bytes(self.noise.write_message())

    def read(self, frame: bytes) -> None:
        self.noise.read_message(frame)

    def encrypt(self, body: bytes) -> bytes:
        return bytes(self.noise.encrypt(body))

    def decrypt(self, frame: bytes) -> bytes:
        return bytes(self.noise.decrypt(frame))


def test_handshake_completes_and_learns_identities() -> None:
    t = Transcript()
    assert t.a.done and t.b.done
    assert t.a.peer == BOB.public and t.b.peer == ALICE.public
    assert t.b.peer_port == 4242 and t.a.peer_port is None
    assert t.a.initiator and not t.b.initiator
    assert all(len(frame) <= MAX_HANDSHAKE_FRAME for frame in t.frames)
    # the link's frames are sealed both ways, each direction in order
    ca, cb = t.a.cipher(), t.b.cipher()
    assert cb.decrypt(ca.encrypt(b"hello bob")) == b"hello bob"
    assert ca.decrypt(cb.encrypt(b"hello alice")) == b"hello alice"


def test_a_passive_observer_sees_no_long_term_key() -> None:
    t = Transcript()
    ca, cb = t.a.cipher(), t.b.cipher()
    # Data that carries the keys in clear (an announce does) is sealed too.
    data = [ca.encrypt(ALICE.public.sign_public * 2), cb.encrypt(BOB.public.box_public)]
    wire = b"".join(t.frames + data)
    for key in _long_term_keys(ALICE, BOB):
        assert key not in wire
        assert key[:8] not in wire
    # and two handshakes of the same pair share nothing an observer could link
    again = Transcript()
    for old, new in zip(t.frames, again.frames, strict=True):
        assert old != new
        assert old[1:9] not in new


def test_a_man_in_the_middle_cannot_pass_on_bobs_proof() -> None:
    """Mallory runs one session with Alice and one with Bob and relays Bob's ID to Alice."""
    alice = LinkHandshake(ALICE, initiator=True)
    bob = LinkHandshake(BOB, initiator=False)
    bob.start()
    to_alice, to_bob = RawNoise(initiator=False), RawNoise(initiator=True)
    (m1,) = alice.start()
    to_alice.read(m1[1:])
    m3, id_a = alice.receive(to_alice.write())
    to_alice.read(m3)
    (m2b,) = bob.receive(bytes([HANDSHAKE_VERSION]) + to_bob.write())
    to_bob.read(m2b)
    (id_b,) = bob.receive(to_bob.write())
    relayed_to_alice = to_alice.encrypt(to_bob.decrypt(id_b))
    _fails(alice, relayed_to_alice)
    relayed_to_bob = to_bob.encrypt(to_alice.decrypt(id_a))
    _fails(bob, relayed_to_bob)


def test_mallory_can_only_be_mallory() -> None:
    """The same relay position with Mallory's own proof: Alice learns it is Mallory."""
    t = Transcript(ALICE, MALLORY)
    assert t.a.peer == MALLORY.public and t.a.peer != BOB.public


def test_a_proof_from_another_session_is_refused() -> None:
    first = Transcript()
    second_a = LinkHandshake(ALICE, initiator=True)
    second_b = LinkHandshake(BOB, initiator=False)
    second_b.start()
    (m1,) = second_a.start()
    (m2,) = second_b.receive(m1)
    m3, _ = second_a.receive(m2)
    second_b.receive(m3)
    # an old ID frame does not even decrypt in the new session
    _fails(second_a, first.id_b)


def test_a_reflected_proof_is_refused() -> None:
    """Bob echoes Alice's own ID back to her, sealed properly in their session."""
    alice = LinkHandshake(ALICE, initiator=True)
    bob = RawNoise(initiator=False)
    (m1,) = alice.start()
    bob.read(m1[1:])
    m3, id_a = alice.receive(bob.write())
    bob.read(m3)
    _fails(alice, bob.encrypt(bob.decrypt(id_a)))


def test_connecting_to_ourselves_is_refused() -> None:
    a = LinkHandshake(ALICE, initiator=True)
    b = LinkHandshake(ALICE, initiator=False)
    b.start()
    (m1,) = a.start()
    m3, id_a = a.receive(b.receive(m1)[0])
    (id_b,) = b.receive(m3)
    _fails(b, id_a)
    _fails(a, id_b)


def _id_body(identity: Identity, handshake_hash: bytes, role: bytes, port: object) -> bytes:
    signature = identity.sign(b"meshchat-link-id-v2\x00" + role + handshake_hash)
    pub = identity.public
    return cbor2.dumps([2, pub.sign_public, pub.box_public, signature, port])


@pytest.mark.parametrize(
    "body",
    [
        b"\xff not cbor",
        cbor2.dumps("just a string"),
        cbor2.dumps([1, b"", b"", b"", None]),
        cbor2.dumps([2, b"x" * 31, b"y" * 32, b"z" * 64, None]),
        cbor2.dumps([2, "text", b"y" * 32, b"z" * 64, None]),
        cbor2.dumps([2, b"x" * 32, b"y" * 32, b"z" * 64]),
        cbor2.dumps([[[[[[[[[[[]]]]]]]]]]]),
    ],
)
def test_malformed_ids_are_refused(body: bytes) -> None:
    alice = LinkHandshake(ALICE, initiator=True)
    bob = RawNoise(initiator=False)
    (m1,) = alice.start()
    bob.read(m1[1:])
    m3, _ = alice.receive(bob.write())
    bob.read(m3)
    _fails(alice, bob.encrypt(body))


@pytest.mark.parametrize("port", [0, 70000, -1, "80", 1.5, True])
def test_bad_ports_are_refused(port: object) -> None:
    alice = LinkHandshake(ALICE, initiator=True)
    bob = RawNoise(initiator=False)
    (m1,) = alice.start()
    bob.read(m1[1:])
    m3, _ = alice.receive(bob.write())
    bob.read(m3)
    body = _id_body(BOB, bytes(bob.noise.get_handshake_hash()), b"R", port)
    _fails(alice, bob.encrypt(body))


def test_a_correct_hand_made_id_is_accepted() -> None:
    """The control for the two tests above: the same path with a good body succeeds."""
    alice = LinkHandshake(ALICE, initiator=True)
    bob = RawNoise(initiator=False)
    (m1,) = alice.start()
    bob.read(m1[1:])
    m3, _ = alice.receive(bob.write())
    bob.read(m3)
    alice.receive(bob.encrypt(_id_body(BOB, bytes(bob.noise.get_handshake_hash()), b"R", 9)))
    assert alice.done and alice.peer == BOB.public and alice.peer_port == 9


def test_an_old_v1_hello_is_refused_by_a_responder() -> None:
    hello = cbor2.dumps(["mc-hello", 1, b"s" * 32, b"b" * 32, b"n" * 32], canonical=True)
    b = LinkHandshake(BOB, initiator=False)
    b.start()
    _fails(b, hello)


def test_misuse() -> None:
    a = LinkHandshake(ALICE, initiator=True)
    with pytest.raises(HandshakeError):
        a.cipher()
    a.start()
    with pytest.raises(HandshakeError):
        a.start()
    b = LinkHandshake(BOB, initiator=False)
    b.start()
    _fails(b, b"\x02" + b"\x00" * (MAX_HANDSHAKE_FRAME + 1))
    with pytest.raises(ValueError):
        LinkHandshake(ALICE, initiator=True, port=0)


def test_a_tampered_data_frame_is_a_framing_error() -> None:
    t = Transcript()
    sealed = bytearray(t.a.cipher().encrypt(b"data"))
    sealed[-1] ^= 1
    with pytest.raises(FramingError):
        t.b.cipher().decrypt(bytes(sealed))


_STATES = ["responder-start", "responder-m3", "initiator-m2", "initiator-id", "responder-id"]


def _in_state(name: str) -> LinkHandshake:
    a = LinkHandshake(ALICE, initiator=True)
    b = LinkHandshake(BOB, initiator=False)
    b.start()
    if name == "responder-start":
        return b
    (m1,) = a.start()
    if name == "initiator-m2":
        return a
    (m2,) = b.receive(m1)
    if name == "responder-m3":
        return b
    m3, _ = a.receive(m2)
    if name == "initiator-id":
        return a
    b.receive(m3)
    return b


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(_STATES), st.binary(max_size=MAX_HANDSHAKE_FRAME + 8))
def test_junk_in_any_state_is_a_handshake_error(state: str, junk: bytes) -> None:
    handshake = _in_state(state)
    try:
        handshake.receive(junk)
    except HandshakeError:
        assert not handshake.done
        return
    # only a well-formed Noise message can pass; junk never completes the handshake
    assert not handshake.done
