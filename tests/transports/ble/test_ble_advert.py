"""The rotating advertisement identifier and the advertisement format."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshchat.identity import Identity
from meshchat.transports.ble import advert
from meshchat.transports.ble.rotating_id import ADV_ID_SIZE, RotatingId
from meshchat.transports.ble.seam import SERVICE_UUID

SECRET = bytes(range(32))


def test_identifier_is_stable_within_a_period_and_changes_across() -> None:
    rid = RotatingId(900, SECRET)
    assert rid.current(1800.0) == rid.current(2699.9) == rid.for_period(2)
    assert rid.current(2700.0) != rid.current(2699.9)
    assert len(rid.current(0.0)) == ADV_ID_SIZE
    assert rid.next_change(2000.0) == pytest.approx(700.0)


def test_identifiers_of_many_periods_are_distinct_and_unrelated() -> None:
    rid = RotatingId(900, SECRET)
    ids = [rid.for_period(n) for n in range(2000)]
    assert len(set(ids)) == len(ids)
    # No byte position is constant across periods (a weak check for a stable marker).
    for position in range(ADV_ID_SIZE):
        assert len({i[position] for i in ids}) > 200


def test_secret_is_per_device_random_not_derived_from_keys() -> None:
    a, b = RotatingId(900), RotatingId(900)
    assert a.current(0.0) != b.current(0.0)
    with pytest.raises(ValueError):
        RotatingId(900, b"short")
    with pytest.raises(ValueError):
        RotatingId(0)


def test_advertisement_fits_legacy_payload_and_parses_back() -> None:
    adv_id = bytes.fromhex("0102030405")
    data = advert.build(SERVICE_UUID, adv_id)
    assert len(data) == advert.LEGACY_AD_LIMIT
    assert advert.parse(data, SERVICE_UUID) == advert.ParsedAdvert(adv_id)
    assert advert.parse(data, uuid.uuid4()) is None


def test_advertisement_carries_no_identity() -> None:
    identity = Identity.generate()
    rid = RotatingId(900)
    data = advert.build(SERVICE_UUID, rid.current(0.0))
    public = identity.public
    for secret_part in (public.node_id, public.sign_public, public.box_public):
        for start in range(0, len(secret_part) - 3):
            assert secret_part[start : start + 4] not in data


def test_names_round_trip_and_bad_names_are_not_ids() -> None:
    adv_id = b"\xff\x00\x10\x20\x30"
    name = advert.id_to_name(adv_id)
    assert len(name) == 8 and name.isascii()
    assert advert.id_from_name(name) == adv_id
    assert advert.id_from_name(name.upper().encode()) == adv_id
    for bad in ("aa======", "abc", b"\xff" * 8, "abcdefg1"):
        assert advert.id_from_name(bad) is None


def test_parse_reads_scan_response_and_tolerates_padding() -> None:
    adv_id = b"abcde"
    data = advert.build(SERVICE_UUID, adv_id) + bytes(6)
    assert advert.parse(data, SERVICE_UUID) == advert.ParsedAdvert(adv_id)
    service_only = bytes([17, 0x07]) + SERVICE_UUID.bytes[::-1]
    assert advert.parse(service_only, SERVICE_UUID) == advert.ParsedAdvert(None)


@given(st.binary(max_size=2000))
def test_parse_never_raises(data: bytes) -> None:
    result = advert.parse(data, SERVICE_UUID)
    assert result is None or result.adv_id is None or len(result.adv_id) == ADV_ID_SIZE


@given(st.binary(max_size=40), st.binary(max_size=40))
def test_parse_finds_our_service_among_any_other_fields(before: bytes, after: bytes) -> None:
    def as_field(kind: int, body: bytes) -> bytes:
        return bytes([len(body[:29]) + 1, kind]) + body[:29]

    data = as_field(0xFF, before) + advert.build(SERVICE_UUID, b"12345") + as_field(0x16, after)
    parsed = advert.parse(data, SERVICE_UUID)
    assert parsed is not None and parsed.adv_id == b"12345"
