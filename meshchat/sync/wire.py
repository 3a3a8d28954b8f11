"""The sync messages between my own devices: a strict, bounded codec.

A sync message travels as the bytes of a control blob ``[19, sync_bytes]`` inside a sealed
session between two devices of one account (never in clear, never to anyone else).
``sync_bytes`` is canonical CBOR:

==========  ================================================================================
message     canonical CBOR
==========  ================================================================================
Reconcile   ``[1, session(8), [range, ...], [want_sid(16), ...]]``; each range is
            ``[upper, mode, payload]`` and covers the items from the previous range's
            ``upper`` (the first range: from the lowest item) up to below its own ``upper``,
            ``[ts step, prefix(0..16 bytes)]`` (the time as the step from the previous
            bound's time, 0 for the first) or null for "above every item"; ``mode`` 0 skip
            (payload null), 1 fingerprint (payload 16 bytes), 2 ids (payload: the sender's
            sids in that range, sorted). ``wants`` (sorted) asks the receiver for those records.
Records     ``[2, session(8), [record, ...], left]``, the records of :mod:`meshchat.sync.records`;
            ``left``: how many more the sender is about to send in this session (progress).
==========  ================================================================================

Bounds (a message over any of them is refused whole, :class:`PacketError`): at most
:data:`MAX_SYNC_BYTES` bytes (a control blob is at most 24 parts of 900 bytes),
:data:`MAX_RANGES` ranges, :data:`MAX_IDS` sids in all (ids ranges and wants together),
:data:`MAX_RECORDS` records; bounds strictly ascending; sids 16 bytes, sorted, no duplicates.
"""

from __future__ import annotations

import enum
import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import cbor2

from meshchat.errors import PacketError, PacketReason
from meshchat.sync.items import FINGERPRINT_SIZE, INFINITY, MAX_TS, SID_SIZE, Bound
from meshchat.sync.records import RECORD_ITEMS, Record, record_from_fields
from meshchat.wire.cborcheck import check_cbor

__all__ = [
    "ID_BYTES",
    "KIND_ERASED",
    "KIND_SYNC",
    "MAX_ERASED_IDS",
    "MAX_IDS",
    "MAX_RANGES",
    "MAX_RECORDS",
    "MAX_SYNC_BYTES",
    "RANGE_MAX_BYTES",
    "RECONCILE_OVERHEAD",
    "SESSION_SIZE",
    "Erased",
    "Mode",
    "Range",
    "Reconcile",
    "Records",
    "SyncMessage",
    "decode_sync",
    "decode_sync_blob",
    "pack_records",
    "range_size",
    "sync_blob",
]

MAX_SYNC_BYTES = 20_000
MAX_RANGES = 256
MAX_IDS = 1024
MAX_RECORDS = 128
SESSION_SIZE = 8
_RECONCILE = 1
_RECORDS = 2
_MAX_ITEMS = 8 + MAX_RANGES * 6 + MAX_IDS


class Mode(enum.IntEnum):
    """What a range of a Reconcile message carries."""

    SKIP = 0  #: nothing to do here
    FINGERPRINT = 1  #: compare this fingerprint of the sender's items with yours
    IDS = 2  #: every sid the sender holds in the range


def _bad(what: str) -> PacketError:
    return PacketError(PacketReason.BAD_FIELD, f"sync: {what}")


def _sid(value: object) -> bytes:
    if not isinstance(value, bytes) or len(value) != SID_SIZE:
        raise _bad("a sync id is not 16 bytes")
    return value


def _session(value: object) -> bytes:
    if not isinstance(value, bytes) or len(value) != SESSION_SIZE:
        raise _bad("session id")
    return value


def _sorted_sids(value: object, what: str) -> tuple[bytes, ...]:
    if not isinstance(value, list):
        raise _bad(what)
    sids = tuple(_sid(item) for item in value)
    if any(a >= b for a, b in itertools.pairwise(sids)):
        raise _bad(f"{what}: not sorted or repeated")
    return sids


@dataclass(frozen=True, slots=True)
class Range:
    """One range of a Reconcile message: the items below ``upper`` (from the previous one)."""

    upper: Bound
    mode: Mode
    fingerprint: bytes = b""
    ids: tuple[bytes, ...] = ()

    def __post_init__(self) -> None:
        if not 0 <= self.upper.ts <= MAX_TS or len(self.upper.prefix) > SID_SIZE:
            raise _bad("range bound")
        if self.upper.ts == MAX_TS and self.upper.prefix:
            raise _bad("range bound")
        if self.mode is Mode.FINGERPRINT and len(self.fingerprint) != FINGERPRINT_SIZE:
            raise _bad("fingerprint size")
        if self.mode is not Mode.FINGERPRINT and self.fingerprint:
            raise _bad("a fingerprint in a range of another mode")
        if self.mode is not Mode.IDS and self.ids:
            raise _bad("ids in a range of another mode")

    def _fields(self, after_ts: int) -> list[object]:
        """The CBOR fields, the bound's time told as the step from ``after_ts`` (the time of
        the previous range's bound in the message, 0 for the first)."""
        upper = None if self.upper == INFINITY else [self.upper.ts - after_ts, self.upper.prefix]
        if self.mode is Mode.FINGERPRINT:
            payload: object = self.fingerprint
        elif self.mode is Mode.IDS:
            payload = list(self.ids)
        else:
            payload = None
        return [upper, int(self.mode), payload]


@dataclass(frozen=True, slots=True)
class Reconcile:
    """Ranges to compare (each answered by the receiver) and the sids the sender wants."""

    session: bytes
    ranges: tuple[Range, ...]
    wants: tuple[bytes, ...] = ()

    def __post_init__(self) -> None:
        _session(self.session)
        if len(self.ranges) > MAX_RANGES:
            raise _bad("too many ranges")
        if sum(len(r.ids) for r in self.ranges) + len(self.wants) > MAX_IDS:
            raise _bad("too many sync ids")
        for a, b in zip(self.ranges, self.ranges[1:], strict=False):
            if a.upper >= b.upper:
                raise _bad("range bounds not ascending")
        _sorted_sids(list(self.wants), "wants")

    def encode(self) -> bytes:
        ranges = []
        after = 0
        for r in self.ranges:
            ranges.append(r._fields(after))
            after = r.upper.ts if r.upper != INFINITY else after
        data = cbor2.dumps([_RECONCILE, self.session, ranges, list(self.wants)], canonical=True)
        if len(data) > MAX_SYNC_BYTES:
            raise _bad("reconcile message too large")
        return data


@dataclass(frozen=True, slots=True)
class Records:
    """Records the sender holds and the receiver lacks (asked for, or found missing)."""

    session: bytes
    records: tuple[Record, ...]
    left: int = 0

    def __post_init__(self) -> None:
        _session(self.session)
        if len(self.records) > MAX_RECORDS:
            raise _bad("too many records")
        if type(self.left) is not int or not 0 <= self.left < 2**32:
            raise _bad("records left")

    def encode(self) -> bytes:
        data = cbor2.dumps(
            [_RECORDS, self.session, [r.fields() for r in self.records], self.left],
            canonical=True,
        )
        if len(data) > MAX_SYNC_BYTES:
            raise _bad("records message too large")
        return data


SyncMessage = Reconcile | Records


def _head(n: int) -> int:
    """Bytes of a CBOR header (integer, or length of a string or array) of value ``n``."""
    return 1 if n < 24 else 2 if n < 0x100 else 3 if n < 0x10000 else 5 if n < 2**32 else 9


def range_size(r: Range, after_ts: int = 0) -> int:
    """The exact bytes ``r`` takes inside a Reconcile message, after a range whose bound's
    time is ``after_ts`` (0 for the first)."""
    if r.upper == INFINITY:
        bound = 1
    else:
        step = r.upper.ts - after_ts
        bound = 1 + _head(step) + _head(len(r.upper.prefix)) + len(r.upper.prefix)
    if r.mode is Mode.FINGERPRINT:
        payload = 1 + FINGERPRINT_SIZE
    elif r.mode is Mode.IDS:
        payload = _head(len(r.ids)) + len(r.ids) * (1 + SID_SIZE)
    else:
        payload = 1
    return 1 + bound + 1 + payload


#: The most bytes one range takes (a bound with a whole sid as prefix, a fingerprint).
RANGE_MAX_BYTES = 1 + (1 + 9 + 1 + SID_SIZE) + 1 + (1 + FINGERPRINT_SIZE)
#: Bytes of one sid in a list of ids or wants.
ID_BYTES = 1 + SID_SIZE
#: What a Reconcile message takes besides its ranges and wants (at most).
RECONCILE_OVERHEAD = 1 + 1 + (1 + SESSION_SIZE) + 3 + 3


#: What a Records message costs besides its records (header, session id, ``left``).
RECORDS_OVERHEAD = 24


def pack_records(session: bytes, records: Sequence[Record]) -> list[Records]:
    """``records`` cut into Records messages within the bounds, each saying how many follow.

    A record too large for a message on its own (it cannot be: a record is at most about
    4.5 kB) would raise :class:`PacketError` when encoded.
    """
    groups: list[list[Record]] = []
    size = MAX_SYNC_BYTES
    for record in records:
        cost = len(cbor2.dumps(record.fields(), canonical=True))
        if (
            not groups
            or size + cost > MAX_SYNC_BYTES - RECORDS_OVERHEAD
            or (len(groups[-1]) >= MAX_RECORDS)
        ):
            groups.append([])
            size = 0
        groups[-1].append(record)
        size += cost
    out: list[Records] = []
    left = len(records)
    for group in groups:
        left -= len(group)
        out.append(Records(session, tuple(group), left))
    return out


def _bound(value: object, after_ts: int) -> Bound:
    if value is None:
        return INFINITY
    if not isinstance(value, list) or len(value) != 2:
        raise _bad("range bound")
    step, prefix = value
    if type(step) is not int or not 0 <= step < MAX_TS - after_ts:
        raise _bad("range bound time")
    ts = after_ts + step
    if not isinstance(prefix, bytes) or len(prefix) > SID_SIZE:
        raise _bad("range bound prefix")
    return Bound(ts, prefix)


def _range(value: object, after_ts: int) -> Range:
    if not isinstance(value, list) or len(value) != 3:
        raise _bad("range")
    upper, mode, payload = value
    bound = _bound(upper, after_ts)
    if mode == Mode.SKIP and payload is None:
        return Range(bound, Mode.SKIP)
    if mode == Mode.FINGERPRINT and isinstance(payload, bytes):
        return Range(bound, Mode.FINGERPRINT, fingerprint=payload)
    if mode == Mode.IDS:
        return Range(bound, Mode.IDS, ids=_sorted_sids(payload, "range ids"))
    raise _bad("range mode or payload")


def _ranges(values: list[object]) -> tuple[Range, ...]:
    out: list[Range] = []
    after = 0
    for value in values:
        r = _range(value, after)
        after = r.upper.ts if r.upper != INFINITY else after
        out.append(r)
    return tuple(out)


def decode_sync(data: bytes) -> SyncMessage:
    """Parse ``sync_bytes``; raises :class:`PacketError` for anything but a message of this
    codec within its bounds."""
    if len(data) > MAX_SYNC_BYTES:
        raise PacketError(PacketReason.OVERSIZED, "sync message too large")
    check_cbor(data, max_items=max(_MAX_ITEMS, 4 + MAX_RECORDS * RECORD_ITEMS), max_depth=4)
    try:
        fields = cbor2.loads(data)
    except Exception as exc:  # cbor2 raises several types; check_cbor let only odd cases through
        raise PacketError(PacketReason.MALFORMED, f"sync CBOR: {exc}") from exc
    if not isinstance(fields, list) or len(fields) < 1:
        raise _bad("not an array")
    kind = fields[0]
    if kind == _RECONCILE and len(fields) == 4:
        _, session, ranges, wants = fields
        if not isinstance(ranges, list) or len(ranges) > MAX_RANGES:
            raise _bad("ranges")
        if not isinstance(wants, list) or len(wants) > MAX_IDS:
            raise _bad("wants")
        return Reconcile(
            _session(session),
            _ranges(ranges),
            _sorted_sids(wants, "wants"),
        )
    if kind == _RECORDS and len(fields) == 4:
        _, session, records, left = fields
        if not isinstance(records, list) or len(records) > MAX_RECORDS:
            raise _bad("records")
        return Records(
            _session(session),
            tuple(record_from_fields(r) for r in records),
            left,  # checked in __post_init__
        )
    raise PacketError(PacketReason.UNKNOWN_KIND, f"sync message kind {kind!r}")


# -- the control blobs that carry sync (kinds 19 and 20) -----------------------------------------

KIND_SYNC = 19
KIND_ERASED = 20
#: Message ids one Erased blob names (a larger deletion goes in several).
MAX_ERASED_IDS = 1_000
_MAX_BLOB = 24 * 900
_MAX_CONVERSATION_BYTES = 128


def sync_blob(data: bytes) -> bytes:
    """The control blob ``[19, sync_bytes]`` carrying one sync message."""
    if len(data) > MAX_SYNC_BYTES:
        raise PacketError(PacketReason.OVERSIZED, "sync message too large")
    return cbor2.dumps([KIND_SYNC, data], canonical=True)


def _blob_fields(blob: bytes, kind: int, count: int, max_items: int) -> list[object]:
    if len(blob) > _MAX_BLOB:
        raise PacketError(PacketReason.OVERSIZED, "sync blob too large")
    check_cbor(blob, max_items=max_items, max_depth=2)
    try:
        fields = cbor2.loads(blob)
    except Exception as exc:  # check_cbor let only odd cases through
        raise PacketError(PacketReason.MALFORMED, f"sync blob CBOR: {exc}") from exc
    if not isinstance(fields, list) or len(fields) != count or fields[0] != kind:
        raise _bad(f"not a blob of kind {kind}")
    return fields


def decode_sync_blob(blob: bytes) -> bytes:
    """The sync bytes inside a ``[19, sync_bytes]`` blob; raises :class:`PacketError`."""
    _, data = _blob_fields(blob, KIND_SYNC, 2, 3)
    if not isinstance(data, bytes):
        raise _bad("sync bytes")
    return data


@dataclass(frozen=True, slots=True)
class Erased:
    """Messages deleted on the sending device (none named: the whole conversation)."""

    conversation: str
    msg_ids: tuple[bytes, ...] = ()

    def __post_init__(self) -> None:
        size = len(self.conversation.encode()) if isinstance(self.conversation, str) else 0
        if not 0 < size <= _MAX_CONVERSATION_BYTES:
            raise _bad("erased conversation")
        if len(self.msg_ids) > MAX_ERASED_IDS or len(set(self.msg_ids)) != len(self.msg_ids):
            raise _bad("erased ids")
        for msg_id in self.msg_ids:
            _sid(msg_id)

    def encode(self) -> bytes:
        return cbor2.dumps([KIND_ERASED, self.conversation, list(self.msg_ids)], canonical=True)

    @classmethod
    def decode(cls, blob: bytes) -> Erased:
        """Parse ``[20, conversation, [msg_id...]]``; raises :class:`PacketError`."""
        _, conversation, ids = _blob_fields(blob, KIND_ERASED, 3, 4 + MAX_ERASED_IDS)
        if not isinstance(conversation, str) or not isinstance(ids, list):
            raise _bad("erased fields")
        return cls(conversation, tuple(_sid(i) for i in ids))
