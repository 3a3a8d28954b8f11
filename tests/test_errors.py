"""The exception hierarchy: one root, remote and local errors apart, structured reasons."""

from __future__ import annotations

from enum import Enum

import pytest

from meshchat import errors
from meshchat.errors import (
    CryptoError,
    DecryptionError,
    IdentityError,
    KeystoreError,
    MeshchatError,
    PacketError,
    PacketReason,
    StoreError,
    StoreReason,
    TransportError,
)


def test_store_and_transport_errors_carry_structured_fields() -> None:
    plain = StoreError("disk full")
    assert plain.reason is StoreReason.FAILED and plain.path is None and str(plain) == "disk full"
    damaged = StoreError("bad row", reason=StoreReason.DAMAGED, table="contacts", field="name")
    assert (damaged.reason, damaged.table, damaged.field) == (
        StoreReason.DAMAGED,
        "contacts",
        "name",
    )
    link = TransportError("closed", transport="lan", link_id="lan-1", address="127.0.0.1:1")
    assert (link.transport, link.link_id, link.address) == ("lan", "lan-1", "127.0.0.1:1")
    assert TransportError("x").link_id is None


@pytest.mark.parametrize("name", errors.__all__)
def test_every_exported_error_derives_from_the_root(name: str) -> None:
    obj = getattr(errors, name)
    if issubclass(obj, Enum):  # the reason enums (PacketReason, StoreReason)
        return
    assert issubclass(obj, MeshchatError)
    assert obj.__doc__  # each says what it means


def test_specific_errors_are_caught_by_their_family() -> None:
    assert issubclass(DecryptionError, CryptoError)
    assert issubclass(KeystoreError, IdentityError)
    assert not issubclass(PacketError, CryptoError)


def test_packet_error_carries_its_reason() -> None:
    error = PacketError(PacketReason.BAD_SIGNATURE, "origin abc")
    assert error.reason is PacketReason.BAD_SIGNATURE
    assert error.detail == "origin abc"
    assert str(error) == "bad-signature: origin abc"
    assert str(PacketError(PacketReason.EXPIRED)) == "expired"


def test_packet_reasons_have_unique_stable_names() -> None:
    values = [r.value for r in PacketReason]
    assert len(values) == len(set(values))
    assert all(v == v.lower() and " " not in v for v in values)
