"""Mailbox records and the bounded record storage (pure, no network)."""

from __future__ import annotations

import contextlib
import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshchat.errors import CryptoError, PacketError, PacketReason
from meshchat.transports.dht import (
    MAX_RECORD,
    SLOTS,
    RecordStorage,
    build_record,
    check_record,
    mailbox_signer,
    open_record,
    record_key,
    slot_of,
)

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
