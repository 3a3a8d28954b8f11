"""X3DH + Double Ratchet sessions and the per-peer record they live in."""

from __future__ import annotations

import asyncio
import random

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshchat.crypto import _sync
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
