"""Account control blobs (16, 17) and the announce's account item: strict, bounded, canonical;
anything else is a typed error."""

from __future__ import annotations

import contextlib

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshchat.account.devicelist import DeviceEntry, DeviceList
from meshchat.account.wire import (
    AccountItem,
    DeviceListRequest,
    DeviceListShare,
    blob_kind,
    decode_request,
    decode_share,
)
from meshchat.errors import DeviceListError, PacketError
from meshchat.identity import Identity
from meshchat.wire.payloads import AnnounceBody

ME = Identity.generate()
OTHER = Identity.generate()
LIST = DeviceList.genesis(ME, "laptop").successor(ME, add=[DeviceEntry.of(OTHER.public, "pi")])
ids = st.binary(min_size=16, max_size=16)
versions = st.integers(0, 2**32 - 1)


def test_share_round_trips_and_names_its_kind() -> None:
    blob = DeviceListShare(LIST).encode()
    assert blob_kind(blob) == 16
    assert decode_share(blob).device_list == LIST


@given(ids, versions)
def test_request_round_trips(account_id: bytes, version: int) -> None:
    blob = DeviceListRequest(account_id, version).encode()
    assert blob_kind(blob) == 17
    assert decode_request(blob) == DeviceListRequest(account_id, version)


@given(ids, st.integers(1, 2**32 - 1), ids)
def test_an_announce_with_an_account_item_round_trips(
    account_id: bytes, version: int, digest: bytes
) -> None:
    item = AccountItem(account_id, version, digest)
    for flags in (0, 1):
        body = AnnounceBody(ME.public.box_public, "alice", None, flags, item)
        assert AnnounceBody.decode(body.encode()) == body
    plain = AnnounceBody(ME.public.box_public, "alice")
    assert AnnounceBody.decode(plain.encode()).account is None


def test_bad_account_items_are_refused() -> None:
    body = [ME.public.box_public, "alice"]
    for bad in ([b"x", 1, bytes(16)], [bytes(16), 0, bytes(16)], [bytes(16), 1], [1, 2, 3]):
        with pytest.raises(PacketError):
            AnnounceBody.decode(cbor2.dumps([*body, bad]))
    with pytest.raises(PacketError):  # an array anywhere but last
        AnnounceBody.decode(cbor2.dumps([ME.public.box_public, [1], "alice"]))


@pytest.mark.parametrize(
    "blob",
    [
        cbor2.dumps([16]),
        cbor2.dumps([16, b"junk"]),
        cbor2.dumps([16, "text"]),
        cbor2.dumps([17, bytes(16)]),
        cbor2.dumps([17, bytes(15), 1]),
        cbor2.dumps([17, bytes(16), -1]),
        cbor2.dumps([18, bytes(16), 1]),
        b"",
    ],
)
def test_malformed_blobs_are_typed_errors(blob: bytes) -> None:
    for decode in (decode_share, decode_request):
        with pytest.raises((PacketError, DeviceListError)):
            decode(blob)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_fuzzed_blobs_give_typed_errors_only(data: bytes) -> None:
    kind = blob_kind(data)
    assert kind is None or 0 <= kind <= 255
    for decode in (decode_share, decode_request):
        with contextlib.suppress(PacketError, DeviceListError):
            decode(data)
    with contextlib.suppress(PacketError):
        AnnounceBody.decode(data)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, 255))
def test_flipped_share_bytes_give_typed_errors_or_the_same_canonical_bytes(
    pos: int, value: int
) -> None:
    raw = bytearray(DeviceListShare(LIST).encode())
    raw[pos % len(raw)] = value
    try:
        share = decode_share(bytes(raw))
    except (PacketError, DeviceListError):
        return
    assert share.encode() == bytes(raw)


@given(st.integers(0, 255))
def test_blob_kind_reads_small_first_integers(kind: int) -> None:
    assert blob_kind(cbor2.dumps([kind, b"x"])) == kind
    assert blob_kind(cbor2.dumps([b"x", kind])) is None
