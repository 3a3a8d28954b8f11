"""An account's device list: which devices are one person, signed by one of them.

Theory of operation. An account is named by the node id of the device that founded it (so a
home that existed before accounts is an account of one device whose id is its own node id).
Its devices each keep their own keys; the **device list** names them, with a version that
grows by one at each change, the digest of the list it was made from (``parent``), and the
node ids revoked so far (cumulative, never shrinking). Each version is signed by a device on
it. A viewer that holds a list accepts another for the same account only if
(:func:`check_successor`):

* it is signed by a device on the list the viewer holds, and that device is on the new one;
* everything revoked in the held list is still revoked (so a replayed old list cannot bring a
  revoked device back), and no device is both revoked and listed.

Among acceptable lists, the one with more revocations wins; otherwise the higher version; on
a fork (the same version made by two devices at once) the lower digest, so every viewer ends
on the same list. Two devices that changed the list at once settle it with :meth:`merged`:
the union of the devices minus the union of the revoked, so a removal always wins over a
concurrent re-add. A list for an account the viewer holds nothing for is checked by
:func:`check_first`: a valid signature by a device on it, and (when known) the device that
delivered it on it too. What the viewer holds for a contact that never sent a list is
:meth:`DeviceList.implicit` (version 0, unsigned): only that device may sign the first list.

Encoding, canonical CBOR::

    [account_id(16), version, [[sign_public(32), box_public(32), name], ...],
     [revoked_node_id(16), ...], parent(16), signer(32), signature(64)]

devices sorted by node id, revoked sorted; the signature covers
``DEVICE_LIST_DOMAIN || CBOR(the array without the signature)``. Decoding is bounded
(:data:`MAX_DEVICES`, :data:`MAX_REVOKED`, :data:`MAX_DEVICE_LIST_BYTES`).
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import cbor2

from meshchat.errors import (
    DeviceListError,
    DeviceListReason,
    IdentityError,
    PacketError,
    PacketReason,
)
from meshchat.identity import Identity, PublicIdentity, clean_name
from meshchat.wire.cborcheck import check_cbor

__all__ = [
    "DEVICE_LIST_DOMAIN",
    "MAX_DEVICES",
    "MAX_DEVICE_LIST_BYTES",
    "MAX_REVOKED",
    "NO_PARENT",
    "DeviceEntry",
    "DeviceList",
    "Verdict",
    "check_first",
    "check_successor",
]

#: Most devices on one list (each contact seals every direct message once per device).
MAX_DEVICES = 8
#: Most revoked node ids a list keeps (cumulative: an account can revoke 64 devices in all).
MAX_REVOKED = 64
DEVICE_LIST_DOMAIN = b"meshchat-devices-v1\x00"
MAX_DEVICE_NAME_BYTES = 64
#: 8 devices of at most ~140 bytes and 64 revoked ids of 17 bytes, plus the header.
MAX_DEVICE_LIST_BYTES = 4096
_MAX_VERSION = 2**32 - 1
_ID = 16
_KEY = 32
_SIG = 64
#: the parent of an account's first list
NO_PARENT = bytes(_ID)


def _bad(what: str) -> PacketError:
    return PacketError(PacketReason.BAD_FIELD, f"device list: {what}")


@dataclass(frozen=True, slots=True)
class DeviceEntry:
    """One device of an account: its public keys and the name its owner gave it."""

    identity: PublicIdentity
    name: str

    def __post_init__(self) -> None:
        if not isinstance(self.identity, PublicIdentity):
            raise _bad("device identity")
        if not isinstance(self.name, str):
            raise _bad("device name")
        try:
            cleaned = clean_name(self.name)
        except IdentityError as exc:
            raise _bad("device name too long") from exc
        if cleaned != self.name:
            raise _bad("device name not clean")

    @classmethod
    def of(cls, identity: PublicIdentity, name: str) -> DeviceEntry:
        """An entry with ``name`` cleaned (control characters removed; too long is refused)."""
        try:
            return cls(identity, clean_name(name))
        except IdentityError as exc:
            raise _bad("device name too long") from exc

    @property
    def node_id(self) -> bytes:
        return self.identity.node_id


@dataclass(frozen=True, slots=True)
class DeviceList:
    """The devices of one account at one version, and who signed it."""

    account_id: bytes
    version: int
    devices: tuple[DeviceEntry, ...]
    revoked: tuple[bytes, ...]
    parent: bytes
    signer: bytes
    signature: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.account_id, bytes) or len(self.account_id) != _ID:
            raise _bad("account id")
        if type(self.version) is not int or not 0 <= self.version <= _MAX_VERSION:
            raise _bad("version")
        if not 1 <= len(self.devices) <= MAX_DEVICES:
            raise DeviceListError(DeviceListReason.TOO_MANY_DEVICES, "1 to 8 devices")
        ids = [d.node_id for d in self.devices]
        if ids != sorted(set(ids)):
            raise _bad("devices not sorted and unique")
        if len(self.revoked) > MAX_REVOKED:
            raise DeviceListError(DeviceListReason.TOO_MANY_REVOKED, f"over {MAX_REVOKED}")
        if not all(isinstance(r, bytes) and len(r) == _ID for r in self.revoked):
            raise _bad("revoked id")
        if list(self.revoked) != sorted(set(self.revoked)):
            raise _bad("revoked not sorted and unique")
        if set(ids) & set(self.revoked):
            raise DeviceListError(
                DeviceListReason.REVOKED_AND_LISTED, "a device is both revoked and listed"
            )
        if not isinstance(self.parent, bytes) or len(self.parent) != _ID:
            raise _bad("parent")
        if not isinstance(self.signer, bytes) or len(self.signer) != _KEY:
            raise _bad("signer")
        unsigned = self.version == 0
        if not isinstance(self.signature, bytes) or len(self.signature) != (
            0 if unsigned else _SIG
        ):
            raise _bad("signature")

    # -- building ------------------------------------------------------------------------

    @classmethod
    def _signed(
        cls,
        signer: Identity,
        account_id: bytes,
        version: int,
        devices: Sequence[DeviceEntry],
        revoked: Sequence[bytes],
        parent: bytes,
    ) -> DeviceList:
        unique = {d.node_id: d for d in devices}
        if version > _MAX_VERSION:
            raise DeviceListError(DeviceListReason.BAD_VERSION, "version exhausted")
        draft = cls(
            account_id,
            version,
            tuple(unique[k] for k in sorted(unique)),
            tuple(sorted(set(revoked))),
            parent,
            signer.public.sign_public,
            bytes(_SIG),
        )
        signature = signer.sign(DEVICE_LIST_DOMAIN + draft._body())
        return cls(
            draft.account_id,
            draft.version,
            draft.devices,
            draft.revoked,
            draft.parent,
            draft.signer,
            signature,
        )

    @classmethod
    def genesis(cls, identity: Identity, device_name: str) -> DeviceList:
        """Version 1 of the account this device founds (deterministic for one name)."""
        entry = DeviceEntry.of(identity.public, device_name)
        return cls._signed(identity, identity.node_id, 1, [entry], [], NO_PARENT)

    @classmethod
    def implicit(cls, device: PublicIdentity) -> DeviceList:
        """What a viewer holds for a device of which it never got a list: version 0, the device
        alone, unsigned. Never encoded for the wire."""
        return cls(
            device.node_id, 0, (DeviceEntry(device, ""),), (), NO_PARENT, device.sign_public, b""
        )

    def successor(
        self,
        signer: Identity,
        *,
        add: Sequence[DeviceEntry] = (),
        revoke: Sequence[bytes] = (),
    ) -> DeviceList:
        """The next version, signed by ``signer`` (a device on this list), with ``add``
        listed (an entry for a listed device renames it) and ``revoke`` taken off for good.

        Raises :class:`DeviceListError` when the signer is not on the list or revokes itself,
        a revoked device is added again, or a bound is exceeded.
        """
        if not self.has_sign_key(signer.public.sign_public):
            raise DeviceListError(DeviceListReason.SIGNER_NOT_ON_LIST, "signer not on the list")
        if signer.node_id in revoke:
            raise DeviceListError(DeviceListReason.REVOKES_SIGNER, "a device cannot revoke itself")
        gone = set(self.revoked) | set(revoke)
        for entry in add:
            if entry.node_id in gone:
                raise DeviceListError(
                    DeviceListReason.REVOKED_READDED, "a revoked device cannot be added again"
                )
        for node_id in revoke:
            if self.device(node_id) is None:
                raise DeviceListError(DeviceListReason.UNKNOWN_DEVICE, "no such device on the list")
        devices = {d.node_id: d for d in self.devices if d.node_id not in gone}
        devices.update({d.node_id: d for d in add})
        return self._check_bounds(
            signer, self.version + 1, list(devices.values()), sorted(gone), self.digest
        )

    def merged(self, other: DeviceList, signer: Identity) -> DeviceList:
        """One list from two concurrent lists of this account: the union of their devices
        minus the union of their revoked ids (a removal wins over a concurrent re-add), the
        version after both, made from this one. Names on this list win."""
        if other.account_id != self.account_id:
            raise DeviceListError(DeviceListReason.OTHER_ACCOUNT, "lists of two accounts")
        if not self.has_sign_key(signer.public.sign_public):
            raise DeviceListError(DeviceListReason.SIGNER_NOT_ON_LIST, "signer not on the list")
        gone = set(self.revoked) | set(other.revoked)
        if signer.node_id in gone:
            raise DeviceListError(DeviceListReason.REVOKES_SIGNER, "the signer was revoked")
        devices = {d.node_id: d for d in other.devices}
        devices.update({d.node_id: d for d in self.devices})
        kept = [d for k, d in devices.items() if k not in gone]
        version = max(self.version, other.version) + 1
        return self._check_bounds(signer, version, kept, sorted(gone), self.digest)

    def _check_bounds(
        self,
        signer: Identity,
        version: int,
        devices: list[DeviceEntry],
        revoked: list[bytes],
        parent: bytes,
    ) -> DeviceList:
        if len(devices) > MAX_DEVICES:
            raise DeviceListError(
                DeviceListReason.TOO_MANY_DEVICES, f"at most {MAX_DEVICES} devices"
            )
        if len(revoked) > MAX_REVOKED:
            raise DeviceListError(
                DeviceListReason.TOO_MANY_REVOKED, f"at most {MAX_REVOKED} revoked devices"
            )
        return self._signed(signer, self.account_id, version, devices, revoked, parent)

    # -- reading -------------------------------------------------------------------------

    def _fields(self) -> list[object]:
        return [
            self.account_id,
            self.version,
            [[d.identity.sign_public, d.identity.box_public, d.name] for d in self.devices],
            list(self.revoked),
            self.parent,
            self.signer,
        ]

    def _body(self) -> bytes:
        return cbor2.dumps(self._fields(), canonical=True)

    @property
    def digest(self) -> bytes:
        """Names this exact list (versions can fork when two devices change it at once)."""
        return hashlib.blake2b(self.encode(), digest_size=_ID, person=b"mc-devices").digest()

    @property
    def node_ids(self) -> tuple[bytes, ...]:
        return tuple(d.node_id for d in self.devices)

    def device(self, node_id: bytes) -> DeviceEntry | None:
        for d in self.devices:
            if d.node_id == node_id:
                return d
        return None

    def has_sign_key(self, sign_public: bytes) -> bool:
        return any(d.identity.sign_public == sign_public for d in self.devices)

    def signature_valid(self) -> bool:
        if self.version == 0:
            return False
        signer = next(
            (d.identity for d in self.devices if d.identity.sign_public == self.signer), None
        )
        key = signer or PublicIdentity(self.signer, bytes(_KEY))
        return key.verify(DEVICE_LIST_DOMAIN + self._body(), self.signature)

    # -- wire ----------------------------------------------------------------------------

    def encode(self) -> bytes:
        return cbor2.dumps([*self._fields(), self.signature], canonical=True)

    @classmethod
    def decode(cls, data: bytes) -> DeviceList:
        """Parse a signed list (its signature is checked by :func:`check_successor` /
        :func:`check_first`). Raises :class:`PacketError` for malformed bytes and
        :class:`DeviceListError` for a list no account may have."""
        if not isinstance(data, bytes) or len(data) > MAX_DEVICE_LIST_BYTES:
            raise PacketError(PacketReason.OVERSIZED, "device list too large")
        check_cbor(data, max_items=10 + MAX_DEVICES * 4 + MAX_REVOKED, max_depth=3)
        try:
            fields = cbor2.loads(data)
        except Exception as exc:
            raise PacketError(PacketReason.MALFORMED, f"device list CBOR: {exc}") from exc
        if not isinstance(fields, list) or len(fields) != 7:
            raise _bad("not an array of 7")
        account_id, version, devices, revoked, parent, signer, signature = fields
        if not isinstance(devices, list) or not isinstance(revoked, list):
            raise _bad("lists")
        if len(devices) > MAX_DEVICES:
            raise DeviceListError(
                DeviceListReason.TOO_MANY_DEVICES, f"at most {MAX_DEVICES} devices"
            )
        entries = []
        for item in devices:
            if (
                not isinstance(item, list)
                or len(item) != 3
                or not all(isinstance(k, bytes) and len(k) == _KEY for k in item[:2])
                or not isinstance(item[2], str)
            ):
                raise _bad("device")
            entries.append(DeviceEntry(PublicIdentity(item[0], item[1]), item[2]))
        if type(version) is not int or version < 1:
            raise _bad("version")
        result = cls(account_id, version, tuple(entries), tuple(revoked), parent, signer, signature)
        if result.encode() != data:
            raise PacketError(PacketReason.NOT_CANONICAL, "device list not canonical")
        return result


class Verdict(enum.Enum):
    """How an acceptable list compares with the one held."""

    NEWER = "newer"
    SAME = "same"
    OLDER_OR_CONCURRENT = "older-or-concurrent"


def check_successor(held: DeviceList, new: DeviceList) -> Verdict:
    """Whether ``new`` replaces ``held`` (see the module's theory of operation).

    Raises :class:`DeviceListError` when ``new`` may never replace ``held``: another
    account, a bad signature, a signer not on the held list or not on the new one, or a
    device revoked on the held list missing from the new list's revoked ids.
    """
    if new.account_id != held.account_id:
        raise DeviceListError(DeviceListReason.OTHER_ACCOUNT, "a list of another account")
    if new.digest == held.digest:
        return Verdict.SAME
    if not new.signature_valid():
        raise DeviceListError(DeviceListReason.BAD_SIGNATURE, "the signature does not verify")
    if not held.has_sign_key(new.signer):
        raise DeviceListError(
            DeviceListReason.SIGNER_NOT_ON_LIST,
            "signed by a device that is not on the list held for the account",
        )
    if not new.has_sign_key(new.signer):
        raise DeviceListError(DeviceListReason.SIGNER_NOT_LISTED, "the signer is not on it")
    if not set(held.revoked) <= set(new.revoked):
        raise DeviceListError(
            DeviceListReason.REVOKED_READDED,
            "it lacks revocations already held (a replayed or concurrent older list)",
        )
    if len(new.revoked) > len(held.revoked):
        return Verdict.NEWER
    if new.version != held.version:
        return Verdict.NEWER if new.version > held.version else Verdict.OLDER_OR_CONCURRENT
    return Verdict.NEWER if new.digest < held.digest else Verdict.OLDER_OR_CONCURRENT


def check_first(new: DeviceList, delivered_by: PublicIdentity | None) -> None:
    """Check a list of an account the viewer holds nothing for: a valid signature by a
    device on it, the founding device on it or revoked by it, a first version made by the
    founding device, and ``delivered_by`` (the announcing device or the session peer), when
    given, on it. Raises :class:`DeviceListError` otherwise."""
    if not new.signature_valid():
        raise DeviceListError(DeviceListReason.BAD_SIGNATURE, "the signature does not verify")
    if not new.has_sign_key(new.signer):
        raise DeviceListError(DeviceListReason.SIGNER_NOT_LISTED, "the signer is not on it")
    if new.account_id not in new.node_ids and new.account_id not in new.revoked:
        raise DeviceListError(DeviceListReason.BAD_FOUNDER, "the founding device is missing")
    if new.version == 1:
        founder = new.device(new.account_id)
        if founder is None or founder.identity.sign_public != new.signer or new.parent != NO_PARENT:
            raise DeviceListError(
                DeviceListReason.BAD_FOUNDER, "a first list is signed by the founding device"
            )
    if delivered_by is not None and delivered_by.node_id not in new.node_ids:
        raise DeviceListError(
            DeviceListReason.NOT_FROM_DEVICE, "delivered by a device that is not on it"
        )
