"""The link handshake: both sides prove their keys; replays, reflections and junk fail."""

from __future__ import annotations

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshchat.errors import HandshakeError
from meshchat.identity import Identity
from meshchat.wire.handshake import MAX_HANDSHAKE_FRAME, LinkHandshake

ALICE = Identity.from_seeds(b"\x31" * 32, b"\x32" * 32)
BOB = Identity.from_seeds(b"\x41" * 32, b"\x42" * 32)
MALLORY = Identity.from_seeds(b"\x51" * 32, b"\x52" * 32)


class Transcript:
    """A completed handshake between two identities and every frame that crossed."""

    def __init__(self, a: Identity, b: Identity) -> None:
        self.a, self.b = LinkHandshake(a), LinkHandshake(b)
        self.hello_a = self.a.start()
        self.hello_b = self.b.start()
        [self.proof_b] = self.b.receive(self.hello_a)
        [self.proof_a] = self.a.receive(self.hello_b)
        assert self.a.receive(self.proof_b) == []
        assert self.b.receive(self.proof_a) == []


def _fails(handshake: LinkHandshake, frame: bytes) -> None:
    with pytest.raises(HandshakeError):
        handshake.receive(frame)
    assert not handshake.done
    with pytest.raises(HandshakeError):
        _ = handshake.peer


def _after_hello(own: Identity, peer_hello: bytes) -> LinkHandshake:
    handshake = LinkHandshake(own)
    handshake.start()
    handshake.receive(peer_hello)
    return handshake


def _hello(identity: Identity, *, version: object = 1, nonce: bytes = b"\x07" * 32) -> bytes:
    pub = identity.public
    return cbor2.dumps(
        ["mc-hello", version, pub.sign_public, pub.box_public, nonce], canonical=True
    )


def test_handshake_completes_and_learns_identities() -> None:
    t = Transcript(ALICE, BOB)
    assert t.a.done and t.b.done
    assert t.a.peer == BOB.public
    assert t.b.peer == ALICE.public
    assert t.a.peer.node_id == BOB.node_id


def test_frames_are_small_and_fresh() -> None:
    t1, t2 = Transcript(ALICE, BOB), Transcript(ALICE, BOB)
    for f in (t1.hello_a, t1.hello_b, t1.proof_a, t1.proof_b):
        assert len(f) <= MAX_HANDSHAKE_FRAME
    assert t1.hello_a != t2.hello_a  # a fresh nonce every time
    assert t1.proof_a != t2.proof_a


def test_peer_unavailable_before_done() -> None:
    handshake = LinkHandshake(ALICE)
    with pytest.raises(HandshakeError):
        _ = handshake.peer
    hello_b = LinkHandshake(BOB).start()
    handshake.start()
    handshake.receive(hello_b)
    with pytest.raises(HandshakeError):
        _ = handshake.peer


def test_tampered_proof_rejected() -> None:
    t = Transcript(ALICE, BOB)
    a = _after_hello(ALICE, t.hello_b)
    fields = cbor2.loads(t.proof_b)
    sig = bytearray(fields[1])
    sig[5] ^= 0x40
    fields[1] = bytes(sig)
    _fails(a, cbor2.dumps(fields, canonical=True))


def test_replayed_proof_from_another_session_rejected() -> None:
    # Mallory recorded Bob's HELLO and PROOF from an earlier session with Alice and replays both.
    old = Transcript(ALICE, BOB)
    a = _after_hello(ALICE, old.hello_b)  # Alice answers the replayed HELLO ...
    _fails(a, old.proof_b)  # ... but the old proof covered Alice's old nonce.


def test_proof_for_another_peer_rejected() -> None:
    # Bob's proof made for his session with Mallory does not convince Alice.
    other = Transcript(MALLORY, BOB)
    a = _after_hello(ALICE, other.hello_b)
    _fails(a, other.proof_b)


def test_reflected_proof_rejected() -> None:
    # Alice's own proof sent back to her (as if it came from Bob) does not verify.
    a = LinkHandshake(ALICE)
    b = LinkHandshake(BOB)
    hello_a, hello_b = a.start(), b.start()
    b.receive(hello_a)
    [proof_a] = a.receive(hello_b)
    _fails(a, proof_a)


def test_proof_by_a_key_other_than_the_hello_key_rejected() -> None:
    # Mallory sends Bob's public HELLO but must sign with her own key.
    t = Transcript(ALICE, BOB)
    a = _after_hello(ALICE, t.hello_b)
    sig = MALLORY.sign(b"meshchat-link-v1\x00" + t.hello_b + t.hello_a)
    _fails(a, cbor2.dumps(["mc-proof", sig], canonical=True))


def test_connecting_to_ourselves_rejected() -> None:
    a1, a2 = LinkHandshake(ALICE), LinkHandshake(ALICE)
    hello1 = a1.start()
    a2.start()
    _fails(a2, hello1)


def test_reflected_hello_rejected() -> None:
    a = LinkHandshake(ALICE)
    _fails(a, a.start())


@pytest.mark.parametrize("version", [0, 2, "1", None, [1]])
def test_hello_with_wrong_version_rejected(version: object) -> None:
    a = LinkHandshake(ALICE)
    a.start()
    _fails(a, _hello(BOB, version=version))


def test_hello_with_boolean_version_rejected() -> None:
    a = LinkHandshake(ALICE)
    a.start()
    _fails(a, _hello(BOB, version=True))


@pytest.mark.parametrize(
    "frame",
    [
        b"",
        b"\xff",
        b"\x00",
        b"\x80",
        cbor2.dumps("mc-hello"),
        cbor2.dumps({"mc-hello": 1}, canonical=True),
        cbor2.dumps(["mc-goodbye"]),
        cbor2.dumps(["mc-hello", 1, b"\x01" * 32, b"\x02" * 32]),
        cbor2.dumps(["mc-hello", 1, b"\x01" * 31, b"\x02" * 32, b"\x07" * 32]),
        cbor2.dumps(["mc-hello", 1, b"\x01" * 32, b"\x02" * 33, b"\x07" * 32]),
        cbor2.dumps(["mc-hello", 1, "k" * 32, b"\x02" * 32, b"\x07" * 32]),
        cbor2.dumps(["mc-hello", 1, b"\x01" * 32, b"\x02" * 32, b"\x07" * 31]),
        cbor2.dumps(["mc-hello", 1, b"\x01" * 32, b"\x02" * 32, b"\x07" * 32, 0]),
        cbor2.dumps(["mc-hello", 1, b"\x01" * 32, b"\x02" * 32, [b"\x07" * 32]]),
        b"\x85" + b"\x68mc-hello" + b"\x01" + b"\x00" * 300,  # over the size limit
        cbor2.dumps(["mc-hello", 1, b"\x01" * 32, b"\x02" * 32, b"\x07" * 32]) + b"\x00",
        cbor2.dumps(["mc-hello", 1.0, b"\x01" * 32, b"\x02" * 32, b"\x07" * 32]),
    ],
    ids=lambda f: f.hex()[:20],
)
def test_garbage_instead_of_hello_rejected(frame: bytes) -> None:
    a = LinkHandshake(ALICE)
    a.start()
    _fails(a, frame)


@pytest.mark.parametrize(
    "frame",
    [
        cbor2.dumps(["mc-proof"]),
        cbor2.dumps(["mc-proof", "sig"]),
        cbor2.dumps(["mc-proof", b"\x00" * 64, b""]),
        cbor2.dumps(["mc-proof", b""]),
    ],
    ids=lambda f: f.hex()[:20],
)
def test_malformed_proof_rejected(frame: bytes) -> None:
    a = _after_hello(ALICE, LinkHandshake(BOB).start())
    _fails(a, frame)


def test_proof_before_hello_rejected() -> None:
    t = Transcript(ALICE, BOB)
    a = LinkHandshake(ALICE)
    a.start()
    _fails(a, t.proof_b)


def test_hello_twice_rejected() -> None:
    hello_b = LinkHandshake(BOB).start()
    a = _after_hello(ALICE, hello_b)
    _fails(a, hello_b)


def test_receive_before_start_rejected() -> None:
    _fails(LinkHandshake(ALICE), LinkHandshake(BOB).start())


def test_start_twice_rejected() -> None:
    a = LinkHandshake(ALICE)
    a.start()
    with pytest.raises(HandshakeError):
        a.start()


def test_frames_after_done_rejected() -> None:
    t = Transcript(ALICE, BOB)
    with pytest.raises(HandshakeError):
        t.a.receive(t.proof_b)
    with pytest.raises(HandshakeError):
        t.b.receive(t.hello_a)


def test_a_failed_handshake_stays_failed() -> None:
    t = Transcript(ALICE, BOB)
    a = _after_hello(ALICE, t.hello_b)
    _fails(a, b"junk")
    # Even the genuine proof no longer helps.
    _fails(a, t.proof_b)


def _state(name: str) -> LinkHandshake:
    if name == "start":
        return LinkHandshake(ALICE)
    handshake = LinkHandshake(ALICE)
    handshake.start()
    if name == "sent-proof":
        handshake.receive(LinkHandshake(BOB).start())
    return handshake


@settings(max_examples=500, deadline=None)
@given(state=st.sampled_from(["start", "sent-hello", "sent-proof"]), frame=st.binary(max_size=300))
def test_random_bytes_raise_handshake_error_only(state: str, frame: bytes) -> None:
    with pytest.raises(HandshakeError):
        _state(state).receive(frame)


_leaf = st.one_of(
    st.sampled_from(["mc-hello", "mc-proof"]),
    st.binary(max_size=70),
    st.integers(-(2**64), 2**64 - 1),
    st.text(max_size=8),
    st.none(),
    st.booleans(),
)


@settings(max_examples=500, deadline=None)
@given(
    state=st.sampled_from(["start", "sent-hello", "sent-proof"]),
    items=st.lists(st.one_of(_leaf, st.lists(_leaf, max_size=2)), max_size=6),
)
def test_random_cbor_arrays_raise_handshake_error_only(state: str, items: list[object]) -> None:
    handshake = _state(state)
    try:
        out = handshake.receive(cbor2.dumps(items, canonical=True))
    except HandshakeError:
        return
    # Only a well-formed HELLO from another key may be answered; it is answered with a proof.
    assert state == "sent-hello"
    assert items[0] == "mc-hello"
    assert len(out) == 1
    assert cbor2.loads(out[0])[0] == "mc-proof"
