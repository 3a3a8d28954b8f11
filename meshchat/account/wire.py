"""Device-list messages between devices, and the account item of an announce.

Account control blobs travel like group control blobs (cut into parts, each an acked sealed
direct message; :mod:`meshchat.group.control`), and are told apart by their first integer:
16 and up are accounts' (:data:`ACCOUNT_KINDS_FROM`), below are groups'.

=================  ============================================================================
message            canonical CBOR
=================  ============================================================================
DeviceListShare    ``[16, list]``: an account's signed device list (:mod:`.devicelist`)
DeviceListRequest  ``[17, account_id(16), held_version]``: "send me this account's list if
                   yours is newer than this version"
=================  ============================================================================

An announce from a device of an account of more than one device (or whose account id is not
its node id) carries :class:`AccountItem` ``[account_id(16), version, digest(16)]``: enough to
see that a newer list exists and ask for it, within the BLE budget of an announce.
"""

from __future__ import annotations

from dataclasses import dataclass

import cbor2

from meshchat.account.devicelist import MAX_DEVICE_LIST_BYTES, DeviceList
from meshchat.errors import PacketError, PacketReason
from meshchat.wire.cborcheck import check_cbor

__all__ = [
    "ACCOUNT_KINDS_FROM",
    "KIND_LIST_REQUEST",
    "KIND_LIST_SHARE",
    "AccountItem",
    "DeviceListRequest",
    "DeviceListShare",
    "blob_kind",
    "decode_request",
    "decode_share",
]

#: control blobs whose first integer is at least this are accounts' (groups use 1..4)
ACCOUNT_KINDS_FROM = 16
KIND_LIST_SHARE = 16
KIND_LIST_REQUEST = 17
_ID = 16
_MAX_VERSION = 2**32 - 1


def _bad(what: str) -> PacketError:
    return PacketError(PacketReason.BAD_FIELD, f"account control: {what}")


def blob_kind(blob: bytes) -> int | None:
    """The first integer of a control blob that is a CBOR array starting with a small
    unsigned integer (0..255), read from its first bytes; None for anything else."""
    if len(blob) < 2 or not 0x81 <= blob[0] <= 0x97:
        return None
    head = blob[1]
    if head <= 0x17:
        return head
    if head == 0x18 and len(blob) >= 3 and blob[2] >= 0x18:
        return blob[2]
    return None


def _fields(data: bytes, count: int, kind: int, max_bytes: int) -> list[object]:
    if len(data) > max_bytes:
        raise PacketError(PacketReason.OVERSIZED, "account control too large")
    check_cbor(data, max_items=count + 1, max_depth=1)
    try:
        fields = cbor2.loads(data)
    except Exception as exc:
        raise PacketError(PacketReason.MALFORMED, f"account control CBOR: {exc}") from exc
    if not isinstance(fields, list) or len(fields) != count or fields[0] != kind:
        raise _bad(f"not an array of {count} of kind {kind}")
    return fields


@dataclass(frozen=True, slots=True)
class DeviceListShare:
    """A device list, sent to a device that should hold it."""

    device_list: DeviceList

    def encode(self) -> bytes:
        return cbor2.dumps([KIND_LIST_SHARE, self.device_list.encode()], canonical=True)


def decode_share(data: bytes) -> DeviceListShare:
    """Raises :class:`PacketError` (or :class:`DeviceListError` for a list no account may
    have); the list's signature is checked by whoever offers it to its book."""
    fields = _fields(data, 2, KIND_LIST_SHARE, MAX_DEVICE_LIST_BYTES + 8)
    raw = fields[1]
    if not isinstance(raw, bytes):
        raise _bad("list")
    return DeviceListShare(DeviceList.decode(raw))


@dataclass(frozen=True, slots=True)
class DeviceListRequest:
    """Asks for an account's list when the sender's is newer than ``held_version``."""

    account_id: bytes
    held_version: int

    def __post_init__(self) -> None:
        if not isinstance(self.account_id, bytes) or len(self.account_id) != _ID:
            raise _bad("account id")
        if type(self.held_version) is not int or not 0 <= self.held_version <= _MAX_VERSION:
            raise _bad("version")

    def encode(self) -> bytes:
        return cbor2.dumps([KIND_LIST_REQUEST, self.account_id, self.held_version], canonical=True)


def decode_request(data: bytes) -> DeviceListRequest:
    fields = _fields(data, 3, KIND_LIST_REQUEST, 64)
    account_id, version = fields[1], fields[2]
    if not isinstance(account_id, bytes) or type(version) is not int:
        raise _bad("request")
    return DeviceListRequest(account_id, version)


@dataclass(frozen=True, slots=True)
class AccountItem:
    """What an announce says of the announcing device's account."""

    account_id: bytes
    version: int
    digest: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.account_id, bytes) or len(self.account_id) != _ID:
            raise _bad("announced account id")
        if type(self.version) is not int or not 1 <= self.version <= _MAX_VERSION:
            raise _bad("announced list version")
        if not isinstance(self.digest, bytes) or len(self.digest) != _ID:
            raise _bad("announced list digest")

    @classmethod
    def of(cls, device_list: DeviceList) -> AccountItem:
        return cls(device_list.account_id, device_list.version, device_list.digest)

    def to_cbor(self) -> list[object]:
        return [self.account_id, self.version, self.digest]

    @classmethod
    def from_cbor(cls, value: object) -> AccountItem:
        if not isinstance(value, list) or len(value) != 3:
            raise _bad("announced account")
        account_id, version, digest = value
        if not isinstance(account_id, bytes) or not isinstance(digest, bytes):
            raise _bad("announced account")
        if type(version) is not int:
            raise _bad("announced list version")
        return cls(account_id, version, digest)
