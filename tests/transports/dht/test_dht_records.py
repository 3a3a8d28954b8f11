"""Mailbox records and the bounded record storage (pure, no network)."""

from __future__ import annotations

import contextlib
import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st
from nacl.signing import SigningKey

from meshchat.crypto.direct import DirectSuite, anonymous_packet
from meshchat.crypto.tags import EPOCH_MS, pair_key, pair_tag
from meshchat.errors import CryptoError, PacketError, PacketReason
from meshchat.identity import Identity
from meshchat.transports.dht import (
    MAX_RECORD,
    SEALED_SLOTS,
    SLOTS,
    RecordStorage,
    SealedPolls,
    build_record,
    build_sealed_record,
    check_record,
    epoch_tags,
    mailbox_signer,
    open_record,
    open_sealed_record,
    record_key,
    seal_record,
    sealed_envelope_key,
    sealed_expiry,
    sealed_record_key,
    sealed_signer,
    slot_of,
)
from meshchat.wire import Destination, PacketKind, Suite, build, encode

NODE = bytes(range(16))
OTHER = bytes(range(1, 17))
NOW = 1_700_000_000


def dkey(key: bytes) -> bytes:
    return hashlib.sha1(key).digest()  # what kademlia stores under


def test_round_trip_and_key() -> None:
    key, record = build_record(NODE, 3, b"frame bytes", NOW + 60)
    assert key == record_key(bytes(mailbox_signer(NODE).verify_key), 3)
    assert len(record) <= MAX_RECORD
    assert check_record(record, NOW).slot == 3
    assert open_record(NODE, 3, record, NOW) == b"frame bytes"
    assert NODE not in record and NODE.hex().encode() not in record


def test_slots_spread_packet_ids() -> None:
    assert {slot_of(bytes([i]) + bytes(15)) for i in range(256)} == set(range(SLOTS))


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda r: r[:-1] + bytes([r[-1] ^ 1]), PacketReason.BAD_SIGNATURE),
        (lambda r: r[:20] + bytes([r[20] ^ 1]) + r[21:], PacketReason.BAD_SIGNATURE),
        (lambda r: b"XX" + r[2:], PacketReason.MALFORMED),
        (lambda r: r + bytes(MAX_RECORD), PacketReason.OVERSIZED),
        (lambda r: r[:3] + bytes([SLOTS]) + r[4:], PacketReason.BAD_FIELD),
    ],
)
def test_damaged_records_are_rejected(mutate, reason) -> None:  # type: ignore[no-untyped-def]
    _, record = build_record(NODE, 1, b"frame", NOW + 60)
    with pytest.raises(PacketError) as err:
        check_record(mutate(record), NOW)
    assert err.value.reason is reason


def test_lifetime_window() -> None:
    _, expired = build_record(NODE, 0, b"f", NOW - 1)
    with pytest.raises(PacketError) as err:
        check_record(expired, NOW)
    assert err.value.reason is PacketReason.EXPIRED
    _, forever = build_record(NODE, 0, b"f", NOW + 365 * 24 * 3600)
    with pytest.raises(PacketError) as err:
        check_record(forever, NOW)
    assert err.value.reason is PacketReason.FROM_FUTURE


def test_a_record_for_another_mailbox_or_slot_does_not_open() -> None:
    _, record = build_record(OTHER, 2, b"frame", NOW + 60)
    with pytest.raises(PacketError):
        open_record(NODE, 2, record, NOW)
    _, mine = build_record(NODE, 2, b"frame", NOW + 60)
    with pytest.raises(PacketError):
        open_record(NODE, 5, mine, NOW)


def test_a_signed_record_whose_envelope_is_not_ours_does_not_open() -> None:
    # Someone who knows the signing key (derived from the node id) but seals under another key.
    from meshchat.gateway import seal_envelope

    signer = mailbox_signer(NODE)
    envelope = seal_envelope(bytes(32), b"frame", NOW + 60)
    head = bytes([0]) + (NOW + 60).to_bytes(8, "big")
    from meshchat.transports.dht._records import SIGN_DOMAIN

    sig = signer.sign(SIGN_DOMAIN + head + envelope).signature
    record = b"MD\x01" + head + bytes(signer.verify_key) + sig + envelope
    check_record(record, NOW)  # structurally fine and signed
    with pytest.raises(CryptoError):
        open_record(NODE, 0, record, NOW)


@given(st.binary(max_size=3000))
def test_check_record_only_raises_packet_errors(data: bytes) -> None:
    with contextlib.suppress(PacketError):
        check_record(data, NOW)


def test_storage_keeps_only_valid_records_under_their_own_key() -> None:
    clock = [float(NOW)]
    storage = RecordStorage(max_items=2, clock=lambda: clock[0])
    key, record = build_record(NODE, 0, b"f", NOW + 60)
    storage[dkey(key)] = record
    assert storage.get(dkey(key)) == record
    storage[dkey(b"another key")] = record  # valid record, wrong key
    storage[dkey(key)] = b"junk"
    storage[dkey(key)] = 12345
    assert storage.refused == 3 and len(storage) == 1
    # An older copy (shorter life) does not replace a newer one.
    _, older = build_record(NODE, 0, b"old", NOW + 30)
    storage[dkey(key)] = older
    assert storage.get(dkey(key)) == record
    # Bounded: the record stored longest ago goes first.
    k1, r1 = build_record(NODE, 1, b"f", NOW + 60)
    k2, r2 = build_record(NODE, 2, b"f", NOW + 60)
    storage[dkey(k1)] = r1
    storage[dkey(k2)] = r2
    assert len(storage) == 2 and storage.get(dkey(key)) is None
    assert sorted(k for k, _ in storage) == sorted([dkey(k1), dkey(k2)])
    # Expiry.
    clock[0] = NOW + 61
    assert storage.get(dkey(k1)) is None and len(list(storage)) == 0
    with pytest.raises(KeyError):
        storage[dkey(k1)]


# -- sealed records: filed under the destination tag ------------------------------------------


def sealed_frame(tag: bytes, created_ms: int, first_byte: int = 0) -> bytes:
    """A real RATCHET packet to ``tag`` (its packet id starts with ``first_byte``)."""
    key = SigningKey.generate()
    for _ in range(10_000):
        packet = anonymous_packet(
            key, PacketKind.MESSAGE, Destination.node(tag), b"sealed", created_ms, 4
        )
        if packet.packet_id[0] % SEALED_SLOTS == first_byte % SEALED_SLOTS:
            return encode(packet)
    raise AssertionError("no packet id with that slot")


TAG = bytes(range(100, 116))
NOW_MS = NOW * 1000


def test_sealed_record_round_trip_under_its_tag_key() -> None:
    frame = sealed_frame(TAG, NOW_MS, 2)
    tag, key, record = build_sealed_record(frame, NOW + 60)
    assert tag == TAG and key == sealed_record_key(TAG, 2)
    assert open_sealed_record(TAG, 2, record, NOW) == frame
    # What a DHT node sees tells nothing of the tag, and checks like any mailbox record.
    assert TAG not in record and TAG not in key
    assert check_record(record, NOW).slot == 2
    storage = RecordStorage(clock=lambda: float(NOW))
    storage[dkey(key)] = record
    assert storage.get(dkey(key)) == record and storage.refused == 0


def test_a_sealed_record_opens_only_under_its_own_tag_and_slot() -> None:
    frame = sealed_frame(TAG, NOW_MS, 1)
    _, _, record = build_sealed_record(frame, NOW + 60)
    other_tag = bytes(16)
    with pytest.raises(PacketError):
        open_sealed_record(other_tag, 1, record, NOW)
    with pytest.raises(PacketError):
        open_sealed_record(TAG, 0, record, NOW)
    with pytest.raises(PacketError):
        open_sealed_record(TAG, SEALED_SLOTS, record, NOW)
    # Whoever knows the tag can sign under it, but cannot slip in a packet for someone else.
    elsewhere = sealed_frame(other_tag, NOW_MS, 1)
    key, wrapped = seal_record(sealed_signer(TAG), sealed_envelope_key(TAG), 1, elsewhere, NOW + 60)
    assert key == sealed_record_key(TAG, 1)
    with pytest.raises(PacketError) as err:
        open_sealed_record(TAG, 1, wrapped, NOW)
    assert err.value.reason is PacketReason.BAD_FIELD
    # ... nor a mailbox record dressed as one (signed by the mailbox key, not the tag's).
    _, mailbox_record = build_record(NODE, 1, frame, NOW + 60)
    with pytest.raises(PacketError):
        open_sealed_record(TAG, 1, mailbox_record, NOW)


def test_only_sealed_packets_are_filed_under_tags() -> None:
    box = encode(
        build(
            Identity.generate(),
            PacketKind.MESSAGE,
            Destination.node(TAG),
            Suite.SIGNED,
            b"x",
            NOW_MS,
            4,
        )
    )
    with pytest.raises(PacketError):
        build_sealed_record(box, NOW + 60)


def test_sealed_records_live_until_the_end_of_the_next_epoch() -> None:
    created = 5 * EPOCH_MS + 123
    assert sealed_expiry(created, 10**12, 10**9, NOW) == 7 * EPOCH_MS // 1000
    assert sealed_expiry(created, 100, 10**9, NOW) == 100  # the packet's horizon
    assert sealed_expiry(created, 10**12, 5, 20) == 25  # the retention


@given(st.binary(max_size=3000), st.integers(0, SEALED_SLOTS - 1))
def test_open_sealed_record_only_raises_typed_errors(data: bytes, slot: int) -> None:
    with contextlib.suppress(PacketError, CryptoError):
        open_sealed_record(TAG, slot, data, NOW)


def test_sealed_polls_are_capped_per_round_and_cover_every_key() -> None:
    tags = [bytes([i]) * 16 for i in range(10)]
    polls = SealedPolls(per_round=12)
    seen: list[tuple[bytes, int]] = []
    for _ in range(4):  # 40 keys, 12 a round: every key within 4 rounds
        chosen = polls.next_round(tags + tags[:3])  # duplicates are looked up once
        assert len(chosen) == 12 and len(set(chosen)) == 12
        seen += chosen
    assert set(seen) == {(t, s) for t in tags for s in range(SEALED_SLOTS)}
    assert SealedPolls(per_round=100).next_round(tags[:2]) == [
        (t, s) for t in tags[:2] for s in range(SEALED_SLOTS)
    ]
    assert SealedPolls.epochs(NOW) == (NOW * 1000 // EPOCH_MS, NOW * 1000 // EPOCH_MS - 1)


def test_epoch_tags_are_the_tags_the_address_book_answers_to() -> None:
    alice, bob = Identity.generate(), Identity.generate()
    a, b = DirectSuite(alice), DirectSuite(bob)
    a.add_peer(bob.public, b.own_prekey(NOW_MS))
    b.add_peer(alice.public, a.own_prekey(NOW_MS))
    b.maintain(NOW_MS)
    epoch = NOW_MS // EPOCH_MS
    for e in (epoch, epoch - 1):
        tags = epoch_tags(b, e)
        assert len(tags) == 2  # one pair tag (alice) and one prekey tag
        assert set(tags) <= b.book.tags
    # What alice addresses to bob now is among them (a first message: bob's prekey tag).
    packet = a.build_message(bob.public, bytes(16), b"hi", NOW_MS, 4)
    assert packet.destination.value in epoch_tags(b, epoch)
    ack_tag = pair_tag(pair_key(bytes(bob.box_key), alice.public.box_public), alice.node_id, epoch)
    assert ack_tag in epoch_tags(a, epoch)


def test_the_sealed_lookup_cap_must_be_positive() -> None:
    from meshchat.errors import UsageError
    from meshchat.transports.dht import DhtConfig

    assert DhtConfig().sealed_per_round == 16
    with pytest.raises(UsageError):
        DhtConfig(sealed_per_round=0)
    with pytest.raises(UsageError):
        SealedPolls(per_round=0)
