"""X3DH + Double Ratchet sessions and the per-peer record they live in."""

from __future__ import annotations

import asyncio
import copy
import os
import random

import cbor2
import nacl.bindings
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshchat.crypto import _ratchet, _sync, sessions
from meshchat.crypto.prekeys import PrekeyState
from meshchat.crypto.sessions import (
    BLOB_BUDGET,
    KIND_ACK,
    KIND_MESSAGE,
    MAX_SESSIONS,
    MAX_SKIP,
    MAX_STORED_SKIPPED,
    RECENT_CIPHERTEXTS,
    RECENT_MESSAGES,
    PeerRecord,
    RatchetMessage,
    Session,
    initiate,
    respond,
)
from meshchat.errors import DecryptionError, StoreError
from meshchat.identity import Identity

NOW = 1_700_000_000_000


def _pair() -> tuple[Identity, Identity, Session, Session, RatchetMessage]:
    a, b = Identity.generate(), Identity.generate()
    pa, pb = PrekeyState(a), PrekeyState(b)
    pa.maintain(NOW)
    pb.maintain(NOW)
    assert pa.current is not None and pb.current is not None
    sa, first = initiate(a, pa.current, b.public, pb.current.signed, b"first", KIND_MESSAGE)
    sb, plain = respond(b, pb.current, a.public, sa.x3dh[0], first, KIND_MESSAGE)
    assert plain == b"first"
    return a, b, sa, sb, first


def test_key_agreement_binds_both_identities() -> None:
    a, b, sa, sb, _ = _pair()
    assert sa.ad == sb.ad
    assert sa.ad == a.public.sign_public + b.public.sign_public + a.public.box_public + (
        b.public.box_public
    )
    assert sa.initiator and not sb.initiator and sb.confirmed and not sa.confirmed
    reply = sb.encrypt(b"reply", KIND_MESSAGE)
    assert sa.decrypt(reply, KIND_MESSAGE) == b"reply"
    assert sa.confirmed
    # The kind is authenticated: a message cannot pass for an ack.
    other = sb.encrypt(b"x", KIND_MESSAGE)
    with pytest.raises(DecryptionError):
        sa.decrypt(other, KIND_ACK)
    assert sa.decrypt(other, KIND_MESSAGE) == b"x"


def test_respond_with_a_wrong_identity_fails() -> None:
    _, b, sa, _, first = _pair()
    pb = PrekeyState(b)
    pb.maintain(NOW)
    mallory = Identity.generate()
    # Claiming the first message came from someone else breaks the key agreement.
    with pytest.raises(DecryptionError):
        respond(b, pb.current, mallory.public, sa.x3dh[0], first, KIND_MESSAGE)  # type: ignore[arg-type]


def test_prekey_not_signed_by_its_owner_stops_initiate() -> None:
    a, b = Identity.generate(), Identity.generate()
    pa, pb = PrekeyState(a), PrekeyState(b)
    pa.maintain(NOW)
    pb.maintain(NOW)
    forged = Identity.generate().sign_prekey(pb.current.public, NOW)  # type: ignore[union-attr]
    with pytest.raises(DecryptionError, match="key agreement"):
        initiate(a, pa.current, b.public, forged, b"x", KIND_MESSAGE)  # type: ignore[arg-type]


def test_out_of_order_and_duplicates() -> None:
    _, _, sa, sb, _ = _pair()
    sa.decrypt(sb.encrypt(b"confirm", KIND_MESSAGE), KIND_MESSAGE)
    messages = [sa.encrypt(f"m{i}".encode(), KIND_MESSAGE) for i in range(50)]
    order = list(range(50))
    random.Random(3).shuffle(order)
    assert [sb.decrypt(messages[i], KIND_MESSAGE) for i in order] == [
        f"m{i}".encode() for i in order
    ]
    with pytest.raises(DecryptionError):
        sb.decrypt(messages[7], KIND_MESSAGE)


def test_skipping_more_than_the_window_fails_without_breaking_the_session() -> None:
    _, _, sa, sb, _ = _pair()
    for _ in range(MAX_SKIP + 1):
        sa.encrypt(b"lost", KIND_MESSAGE)
    too_far = sa.encrypt(b"too far", KIND_MESSAGE)
    with pytest.raises(DecryptionError, match="DoSProtection"):
        sb.decrypt(too_far, KIND_MESSAGE)
    # The session still works the other way, and after a DH step, this way too.
    assert sa.decrypt(sb.encrypt(b"back", KIND_MESSAGE), KIND_MESSAGE) == b"back"
    assert sb.decrypt(sa.encrypt(b"again", KIND_MESSAGE), KIND_MESSAGE) == b"again"


def test_record_blob_round_trip_keeps_working_state() -> None:
    a, _, sa, sb, _ = _pair()
    lost = [sa.encrypt(f"late {i}".encode(), KIND_MESSAGE) for i in range(5)]
    sb.decrypt(sa.encrypt(b"now", KIND_MESSAGE), KIND_MESSAGE)  # keys of 5 skipped
    record = PeerRecord(a.public, None, [sb])
    record.remember_ciphertext(b"d" * 10, NOW)
    record.remember_message(b"m" * 16)
    again = PeerRecord.from_blob(record.blob())
    assert again.blob() == record.blob()
    assert again.recent_cts == record.recent_cts and again.recent_msgs == record.recent_msgs
    restored = again.current
    assert restored is not None and restored.skipped == 5
    assert restored.decrypt(lost[3], KIND_MESSAGE) == b"late 3"


def test_stored_skipped_keys_are_bounded_older_sessions_first() -> None:
    a, _, sa, sb, _ = _pair()
    sa.decrypt(sb.encrypt(b"c", KIND_MESSAGE), KIND_MESSAGE)
    for _ in range(700):
        sa.encrypt(b"lost", KIND_MESSAGE)
    sb.decrypt(sa.encrypt(b"x", KIND_MESSAGE), KIND_MESSAGE)
    _, _, sa2, sb2, _ = _pair()
    sa2.decrypt(sb2.encrypt(b"c", KIND_MESSAGE), KIND_MESSAGE)
    for _ in range(700):
        sa2.encrypt(b"lost", KIND_MESSAGE)
    sb2.decrypt(sa2.encrypt(b"x", KIND_MESSAGE), KIND_MESSAGE)
    record = PeerRecord(a.public, None, [sb, sb2])
    blob = record.blob()
    assert len(blob) < 64 * 1024
    assert record.sessions[0].skipped == 700
    assert record.sessions[1].skipped == MAX_STORED_SKIPPED - 700  # trimmed in memory too


def test_a_full_record_stays_under_the_blob_budget() -> None:
    a, _, sa, sb, _ = _pair()
    sa.decrypt(sb.encrypt(b"c", KIND_MESSAGE), KIND_MESSAGE)
    for _ in range(MAX_SKIP):
        sa.encrypt(b"lost", KIND_MESSAGE)
    sb.decrypt(sa.encrypt(b"x", KIND_MESSAGE), KIND_MESSAGE)
    extra = [_pair()[3] for _ in range(MAX_SESSIONS - 1)]
    record = PeerRecord(a.public, a.sign_prekey(b"\x01" * 32, 1), [sb, *extra])
    for i in range(RECENT_CIPHERTEXTS + 10):
        record.remember_ciphertext(i.to_bytes(10, "big"), NOW + i * 1000)
    for i in range(RECENT_MESSAGES + 10):
        record.remember_message(i.to_bytes(16, "big"))
    blob = record.blob()
    assert len(record.recent_cts) == RECENT_CIPHERTEXTS
    assert len(record.recent_msgs) == RECENT_MESSAGES
    assert len(blob) < BLOB_BUDGET
    assert PeerRecord.from_blob(blob).blob() == blob


def test_adopt_keeps_at_most_max_sessions_current_first() -> None:
    sessions = [_pair()[3] for _ in range(MAX_SESSIONS + 1)]
    record = PeerRecord(Identity.generate().public)
    for s in sessions:
        record.adopt(s)
    assert record.sessions == list(reversed(sessions))[:MAX_SESSIONS]
    record.adopt(sessions[-2])
    assert record.current is sessions[-2]


def test_learn_prekey_needs_the_owner_signature_and_a_newer_time() -> None:
    owner = Identity.generate()
    record = PeerRecord(owner.public)
    first = owner.sign_prekey(b"\x01" * 32, 10)
    assert record.learn_prekey(first)
    assert not record.learn_prekey(owner.sign_prekey(b"\x02" * 32, 10))
    assert not record.learn_prekey(Identity.generate().sign_prekey(b"\x03" * 32, 20))
    assert record.learn_prekey(owner.sign_prekey(b"\x04" * 32, 11))
    assert record.prekey is not None and record.prekey.public == b"\x04" * 32


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_garbage_record_blob_raises_store_error(data: bytes) -> None:
    for blob in (data, cbor2.dumps([1, data, data, None, [[data]], [], []])):
        with pytest.raises(StoreError):
            PeerRecord.from_blob(blob)


def test_run_refuses_a_coroutine_that_suspends() -> None:
    async def sleeps() -> None:
        await asyncio.sleep(0)

    with pytest.raises(RuntimeError):
        _sync.run(sleeps())

    async def done() -> int:
        return 7

    assert _sync.run(done()) == 7


# -- what makes the hot path cheap must not change what it computes or stores -------------


def _old_blob(record: PeerRecord) -> bytes:
    """The record encoded in one piece, as before the encoding was cached part by part."""
    pk = record.prekey
    return cbor2.dumps(
        [
            1,
            record.identity.sign_public,
            record.identity.box_public,
            None if pk is None else [pk.public, pk.signature, pk.created_ms],
            [s.to_cbor() for s in record.sessions],
            [[d, t] for d, t in record.recent_cts.items()],
            list(record.recent_msgs),
        ],
        canonical=True,
    )


def test_blob_bytes_equal_the_one_piece_encoding_as_the_record_changes() -> None:
    a, _, sa, sb, _ = _pair()
    record = PeerRecord(a.public, a.sign_prekey(b"\x05" * 32, 3), [sb])
    rng = random.Random(5)
    digests = [rng.randbytes(10) for _ in range(40)]
    for step in range(300):
        action = rng.randrange(6)
        if action == 0:
            record.remember_ciphertext(rng.choice(digests), NOW + step * 1000)
        elif action == 1:
            record.remember_ciphertext(rng.randbytes(10), NOW + step * 1000)
        elif action == 2:
            record.remember_message(rng.randbytes(16) if rng.random() < 0.7 else b"m" * 16)
        elif action == 3:
            sb.decrypt(sa.encrypt(b"x", KIND_MESSAGE), KIND_MESSAGE)
        elif action == 4:
            sa.decrypt(sb.encrypt(b"y", KIND_ACK), KIND_ACK)
        else:
            record.learn_prekey(a.sign_prekey(rng.randbytes(32), 4 + step))
        assert record.blob() == _old_blob(record)
    assert len(record.recent_cts) > 24  # the array heads of 1 and 2 bytes were both used


def test_memories_past_their_bounds_keep_the_same_bytes() -> None:
    a, _, _, sb, _ = _pair()
    record = PeerRecord(a.public, None, [sb])
    for i in range(RECENT_CIPHERTEXTS + 300):
        record.remember_ciphertext(i.to_bytes(10, "big"), NOW + i * 1000)
        if i % 97 == 0:
            record.remember_ciphertext((i // 2).to_bytes(10, "big"), NOW + i * 1000)  # a retry
            assert record.blob() == _old_blob(record)
    for i in range(RECENT_MESSAGES + 40):
        record.remember_message(i.to_bytes(16, "big"))
    assert record.blob() == _old_blob(record)
    loaded = PeerRecord.from_blob(record.blob())
    loaded.remember_ciphertext(b"n" * 10, NOW)
    record.remember_ciphertext(b"n" * 10, NOW)
    assert loaded.blob() == record.blob() == _old_blob(record)


@given(st.integers(min_value=0, max_value=70_000))
def test_array_head_is_cbors_own(length: int) -> None:
    encoded = cbor2.dumps([None] * length, canonical=True)
    assert sessions._array_head(length) == encoded[: len(encoded) - length]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["put", "drop"]), st.integers(0, 12)), max_size=60))
def test_cbor_log_joins_like_a_fresh_join(ops: list[tuple[str, int]]) -> None:
    log = sessions._CborLog()
    model: dict[bytes, bytes] = {}
    for op, n in ops:
        key = bytes([n])
        if op == "put":
            value = bytes([n]) * (n + 1)
            model.pop(key, None)
            model[key] = value
            log.put(key, value)
        else:
            model.pop(key, None)
            log.discard(key)
        assert len(log) == len(model)
        assert log.joined() == b"".join(model.values())


def test_fast_state_read_matches_the_library_models() -> None:
    _, _, sa, sb, _ = _pair()
    for session in (sa, sb):  # one without a receiving chain yet, one with
        assert _ratchet.dh_state_fast(session.ratchet) == _ratchet.dh_state_model(session.ratchet)
    lost = [sa.encrypt(b"l", KIND_MESSAGE) for _ in range(3)]
    sb.decrypt(sa.encrypt(b"n", KIND_MESSAGE), KIND_MESSAGE)
    sa.decrypt(sb.encrypt(b"r", KIND_MESSAGE), KIND_MESSAGE)
    for session in (sa, sb):
        assert _ratchet.dh_state_fast(session.ratchet) == _ratchet.dh_state_model(session.ratchet)
    assert sb.skipped == len(sb.ratchet.model.skipped_message_keys) == 3
    assert sb.decrypt(lost[1], KIND_MESSAGE) == b"l"


def test_cached_session_encoding_follows_every_change() -> None:
    _, _, sa, sb, _ = _pair()
    before = sb.encode()
    assert sb.encode() is before
    sb.decrypt(sa.encrypt(b"x", KIND_MESSAGE), KIND_MESSAGE)
    after = sb.encode()
    assert after != before and after == cbor2.dumps(sb.to_cbor(), canonical=True)
    sent = sb.encode()
    sb.encrypt(b"y", KIND_ACK)
    assert sb.encode() != sent
    restored = Session.from_cbor(cbor2.loads(sb.encode()))
    assert restored.encode() == sb.encode()


def test_libsodium_ratchet_agrees_with_the_library_curve25519_ratchet() -> None:
    """Stored states hold raw X25519 keys either way: a session state written while the
    library's own Curve25519 class ran goes on working with ours, and the other way round."""
    from doubleratchet.recommended.diffie_hellman_ratchet_curve25519 import (
        DiffieHellmanRatchet as LibraryX25519,
    )

    priv = os.urandom(32)
    peer = os.urandom(32)
    ours, theirs = _ratchet.X25519Ratchet, LibraryX25519
    assert ours()._derive_pub(priv) == theirs._derive_pub(priv)
    peer_pub = theirs._derive_pub(peer)
    assert ours._perform_diffie_hellman(priv, peer_pub) == theirs._perform_diffie_hellman(
        priv, peer_pub
    )
    _, _, sa, sb, _ = _pair()
    library_args = (LibraryX25519, *_ratchet.DR_ARGS[1:])
    # sb restored under the library's class, sa under ours: they still talk both ways.
    old_b = _ratchet.Ratchet.from_model(sb.ratchet.model, *library_args)
    ad = sb.ad + KIND_MESSAGE
    for i in range(3):
        out = _sync.run(old_b.encrypt_message(f"b{i}".encode(), ad))
        assert sa.decrypt(RatchetMessage.of(out), KIND_MESSAGE) == f"b{i}".encode()
        back = sa.encrypt(f"a{i}".encode(), KIND_MESSAGE)
        assert _sync.run(old_b.decrypt_message(back.library(), ad)) == f"a{i}".encode()


def test_a_low_order_ratchet_key_is_refused_without_changing_the_session() -> None:
    _, _, sa, sb, _ = _pair()
    good = sa.encrypt(b"good", KIND_MESSAGE)
    state = sb.encode()
    evil = RatchetMessage(bytes(32), 0, 0, good.ciphertext)  # the all-zero point: order 4
    with pytest.raises(DecryptionError, match="ValueError"):
        sb.decrypt(evil, KIND_MESSAGE)
    assert sb.encode() == state
    assert sb.decrypt(good, KIND_MESSAGE) == b"good"


def test_the_header_key_follows_each_new_ratchet_key() -> None:
    _, _, sa, sb, _ = _pair()
    for _ in range(6):
        out = sa.encrypt(b"p", KIND_MESSAGE)
        assert out.ratchet_pub == nacl.bindings.crypto_scalarmult_base(
            sa.ratchet.model.diffie_hellman_ratchet.own_ratchet_priv
        )
        sb.decrypt(out, KIND_MESSAGE)
        back = sb.encrypt(b"q", KIND_MESSAGE)
        assert back.ratchet_pub != out.ratchet_pub
        sa.decrypt(back, KIND_MESSAGE)


def test_the_copy_made_for_each_decryption_shares_no_state() -> None:
    _, _, sa, sb, _ = _pair()
    dh = vars(sb.ratchet)[_ratchet.DR_DH]
    clone = copy.deepcopy(dh)
    before = _ratchet.dh_state_fast(sb.ratchet)
    vars(sb.ratchet)[_ratchet.DR_DH] = clone
    sb.decrypt(sa.encrypt(b"moves the clone", KIND_MESSAGE), KIND_MESSAGE)
    vars(sb.ratchet)[_ratchet.DR_DH] = dh
    assert _ratchet.dh_state_fast(sb.ratchet) == before
