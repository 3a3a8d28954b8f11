"""Device lists: signed by a device on them, canonical, bounded; bad lists get typed errors."""

from __future__ import annotations

import contextlib
from dataclasses import replace

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshchat.account.devicelist import (
    DEVICE_LIST_DOMAIN,
    MAX_DEVICES,
    MAX_REVOKED,
    NO_PARENT,
    DeviceEntry,
    DeviceList,
    Verdict,
    check_first,
    check_successor,
)
from meshchat.errors import DeviceListError, DeviceListReason, PacketError
from meshchat.identity import Identity

KEYS = [Identity.generate() for _ in range(12)]


def entry(identity: Identity, name: str = "") -> DeviceEntry:
    return DeviceEntry.of(identity.public, name or identity.node_id.hex()[:6])


def reason(exc: pytest.ExceptionInfo[DeviceListError]) -> DeviceListReason:
    return exc.value.reason


def test_genesis_is_deterministic_signed_and_round_trips() -> None:
    a1 = KEYS[0]
    first = DeviceList.genesis(a1, "laptop")
    assert first == DeviceList.genesis(a1, "laptop")
    assert first.version == 1 and first.account_id == a1.node_id
    assert first.parent == NO_PARENT and first.signature_valid()
    assert DeviceList.decode(first.encode()) == first
    check_first(first, a1.public)


def test_successor_adds_and_revokes_and_chains() -> None:
    a1, a2, a3 = KEYS[:3]
    v1 = DeviceList.genesis(a1, "laptop")
    v2 = v1.successor(a1, add=[entry(a2, "phone")])
    assert v2.version == 2 and v2.parent == v1.digest
    assert check_successor(v1, v2) is Verdict.NEWER
    assert check_successor(v2, v1) is Verdict.OLDER_OR_CONCURRENT
    assert check_successor(v2, v2) is Verdict.SAME
    v3 = v2.successor(a2, add=[entry(a3)], revoke=[a1.node_id])
    assert a1.node_id in v3.revoked and v3.device(a1.node_id) is None
    assert check_successor(v2, v3) is Verdict.NEWER
    assert DeviceList.decode(v3.encode()) == v3


def test_a_list_signed_by_a_device_not_on_the_previous_list_is_refused() -> None:
    a1, mallory = KEYS[0], KEYS[5]
    v1 = DeviceList.genesis(a1, "laptop")
    # mallory makes a list for a1's account with herself on it and signs it
    forged = DeviceList._signed(mallory, a1.node_id, 2, [entry(a1), entry(mallory)], [], v1.digest)
    assert forged.signature_valid()
    with pytest.raises(DeviceListError) as exc:
        check_successor(v1, forged)
    assert reason(exc) is DeviceListReason.SIGNER_NOT_ON_LIST
    # against the implicit list held for a contact that never sent one, too
    with pytest.raises(DeviceListError) as exc:
        check_successor(DeviceList.implicit(a1.public), forged)
    assert reason(exc) is DeviceListReason.SIGNER_NOT_ON_LIST


def test_a_replayed_old_list_that_re_adds_a_revoked_device_is_refused() -> None:
    a1, a2 = KEYS[:2]
    v2 = DeviceList.genesis(a1, "laptop").successor(a1, add=[entry(a2)])
    v3 = v2.successor(a1, revoke=[a2.node_id])
    with pytest.raises(DeviceListError) as exc:
        check_successor(v3, v2)
    assert reason(exc) is DeviceListReason.REVOKED_READDED
    # and a newer version that lists the revoked device cannot even be made or decoded
    with pytest.raises(DeviceListError):
        v3.successor(a1, add=[entry(a2)])
    crafted = DeviceList._signed(a1, a1.node_id, 9, [entry(a1), entry(a2)], [], v3.digest)
    with pytest.raises(DeviceListError) as exc:
        check_successor(v3, crafted)
    assert reason(exc) is DeviceListReason.REVOKED_READDED


def test_a_list_both_revoking_and_listing_a_device_does_not_decode() -> None:
    a1, a2 = KEYS[:2]
    good = DeviceList.genesis(a1, "x").successor(a1, add=[entry(a2)])
    fields = [*good._fields()]
    fields[3] = [a2.node_id]
    signature = a1.sign(DEVICE_LIST_DOMAIN + cbor2.dumps(fields, canonical=True))
    raw = cbor2.dumps([*fields, signature], canonical=True)
    with pytest.raises(DeviceListError) as exc:
        DeviceList.decode(raw)
    assert reason(exc) is DeviceListReason.REVOKED_AND_LISTED


def test_concurrent_changes_merge_and_removal_wins_over_a_re_add() -> None:
    a1, a2, a3, a4 = KEYS[:4]
    v2 = DeviceList.genesis(a1, "laptop").successor(a1, add=[entry(a2), entry(a3)])
    # at once: a1 revokes a3; a2 adds a4 (and its copy still lists a3)
    left = v2.successor(a1, revoke=[a3.node_id])
    right = v2.successor(a2, add=[entry(a4)])
    assert left.version == right.version == 3
    # a viewer holding `left` refuses `right` (it would bring a3 back) ...
    with pytest.raises(DeviceListError):
        check_successor(left, right)
    # ... and one holding `right` takes `left`: the removal wins whatever the digests
    assert check_successor(right, left) is Verdict.NEWER
    for base, other, signer in ((left, right, a1), (right, left, a2)):
        merged = base.merged(other, signer)
        assert merged.version == 4 and merged.parent == base.digest
        assert set(merged.node_ids) == {a1.node_id, a2.node_id, a4.node_id}
        assert merged.revoked == (a3.node_id,)
        assert check_successor(left, merged) is Verdict.NEWER
        assert check_successor(right, merged) is Verdict.NEWER


def test_a_fork_of_equal_revocations_settles_on_the_lower_digest() -> None:
    a1, a2, a3, a4 = KEYS[:4]
    v2 = DeviceList.genesis(a1, "laptop").successor(a1, add=[entry(a2)])
    x = v2.successor(a1, add=[entry(a3)])
    y = v2.successor(a2, add=[entry(a4)])
    low, high = sorted((x, y), key=lambda d: d.digest)
    assert check_successor(high, low) is Verdict.NEWER
    assert check_successor(low, high) is Verdict.OLDER_OR_CONCURRENT


def test_a_forged_same_account_claim_by_a_stranger_is_refused_first_time() -> None:
    a1, mallory = KEYS[0], KEYS[6]
    # a first list that claims a1's account but a1 did not sign version 1
    claim = DeviceList._signed(mallory, a1.node_id, 1, [entry(a1), entry(mallory)], [], NO_PARENT)
    with pytest.raises(DeviceListError) as exc:
        check_first(claim, mallory.public)
    assert reason(exc) is DeviceListReason.BAD_FOUNDER
    # an account whose founding device is nowhere on it
    other = DeviceList._signed(mallory, a1.node_id, 5, [entry(mallory)], [], NO_PARENT)
    with pytest.raises(DeviceListError) as exc:
        check_first(other, mallory.public)
    assert reason(exc) is DeviceListReason.BAD_FOUNDER
    # a real list delivered by a device that is not on it
    real = DeviceList.genesis(a1, "laptop")
    with pytest.raises(DeviceListError) as exc:
        check_first(real, mallory.public)
    assert reason(exc) is DeviceListReason.NOT_FROM_DEVICE


def test_any_change_breaks_the_signature() -> None:
    a1, a2, x = KEYS[0], KEYS[1], KEYS[7]
    good = DeviceList.genesis(a1, "laptop").successor(a1, add=[entry(a2)])
    for changed in (
        replace(good, version=7),
        replace(good, revoked=(x.node_id,)),
        replace(good, devices=(good.devices[0],)),
        replace(good, parent=bytes(16)),
    ):
        assert not changed.signature_valid()
        with pytest.raises(DeviceListError) as exc:
            check_successor(DeviceList.genesis(a1, "laptop"), changed)
        assert reason(exc) is DeviceListReason.BAD_SIGNATURE


def test_other_account_and_bounds() -> None:
    a1, b1 = KEYS[0], KEYS[1]
    with pytest.raises(DeviceListError) as exc:
        check_successor(DeviceList.genesis(a1, "a"), DeviceList.genesis(b1, "b"))
    assert reason(exc) is DeviceListReason.OTHER_ACCOUNT
    many = DeviceList.genesis(a1, "a").successor(a1, add=[entry(k) for k in KEYS[1:MAX_DEVICES]])
    assert len(many.devices) == MAX_DEVICES
    with pytest.raises(DeviceListError) as exc:
        many.successor(a1, add=[entry(KEYS[MAX_DEVICES])])
    assert reason(exc) is DeviceListReason.TOO_MANY_DEVICES
    with pytest.raises(DeviceListError) as exc:
        many.successor(a1, revoke=[a1.node_id])
    assert reason(exc) is DeviceListReason.REVOKES_SIGNER
    with pytest.raises(DeviceListError) as exc:
        many.successor(a1, revoke=[bytes(16)])
    assert reason(exc) is DeviceListReason.UNKNOWN_DEVICE


def test_the_largest_list_fits_the_bound() -> None:
    a1 = KEYS[0]
    devices = [DeviceEntry.of(k.public, "é" * 32) for k in KEYS[:MAX_DEVICES]]
    revoked = [bytes([i]) * 16 for i in range(MAX_REVOKED)]
    big = DeviceList._signed(a1, a1.node_id, 2**32 - 1, devices, revoked, bytes(16))
    assert DeviceList.decode(big.encode()) == big


def test_implicit_lists_are_unsigned_and_never_decode() -> None:
    a1 = KEYS[0]
    held = DeviceList.implicit(a1.public)
    assert held.version == 0 and not held.signature_valid()
    with pytest.raises(PacketError):
        DeviceList.decode(held.encode())


names = st.text(max_size=20).filter(lambda s: s == s.strip())


@settings(max_examples=60, deadline=None)
@given(
    picks=st.lists(st.integers(0, len(KEYS) - 1), min_size=1, max_size=MAX_DEVICES, unique=True),
    revoked=st.lists(st.binary(min_size=16, max_size=16), max_size=6, unique=True),
    version=st.integers(1, 2**32 - 1),
    name=st.text(max_size=12),
)
def test_round_trip(picks: list[int], revoked: list[bytes], version: int, name: str) -> None:
    signer = KEYS[picks[0]]
    devices = [DeviceEntry.of(KEYS[i].public, name) for i in picks]
    made = DeviceList._signed(signer, signer.node_id, version, devices, revoked, bytes(16))
    assert made.signature_valid()
    again = DeviceList.decode(made.encode())
    assert again == made and again.digest == made.digest


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_fuzzed_decode_gives_typed_errors_only(data: bytes) -> None:
    with contextlib.suppress(PacketError, DeviceListError):
        DeviceList.decode(data)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, 255))
def test_flipped_bytes_give_typed_errors_or_a_bad_signature(pos: int, value: int) -> None:
    a1, a2 = KEYS[:2]
    raw = bytearray(DeviceList.genesis(a1, "laptop").successor(a1, add=[entry(a2)]).encode())
    raw[pos % len(raw)] = value
    try:
        parsed = DeviceList.decode(bytes(raw))
    except (PacketError, DeviceListError):
        return
    assert parsed.encode() == bytes(raw)
