"""Checks on values going into the store, and conversions of rows coming out of it.

Everything written is checked first, so a bad argument fails with :class:`StoreError` before a
transaction starts, and SQLite never silently stores a ``str`` where ``bytes`` belong. Rows read
back (clear cells, and the values inside sealed cells) are checked the other way: a value of the
wrong type means the file was altered or damaged, which is also a :class:`StoreError`.
"""

from __future__ import annotations

from typing import Any, TypeVar

from meshchat.errors import StoreError, StoreReason
from meshchat.store.records import MessageState, Trust

__all__ = [
    "MAX_BLOB_BYTES",
    "MAX_TEXT_BYTES",
    "blob",
    "cell_bytes",
    "cell_enum",
    "cell_int",
    "cell_optional_bytes",
    "cell_str",
    "integer",
    "member",
    "text",
]

#: The largest text (message body, name, setting) the store accepts, in UTF-8 bytes.
MAX_TEXT_BYTES = 4096
#: The largest binary value (keys, ids, carried frames) the store accepts.
MAX_BLOB_BYTES = 65536

BAD, DAMAGED = StoreReason.BAD_VALUE, StoreReason.DAMAGED

_E = TypeVar("_E", Trust, MessageState)

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1


def text(value: str, what: str) -> str:
    """``value`` if it is a ``str`` of at most :data:`MAX_TEXT_BYTES` UTF-8 bytes."""
    if not isinstance(value, str):
        raise StoreError(f"{what} must be str, not {type(value).__name__}", reason=BAD, field=what)
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise StoreError(f"{what} is not valid Unicode", reason=BAD, field=what) from exc
    if size > MAX_TEXT_BYTES:
        raise StoreError(
            f"{what} is {size} bytes; the store keeps at most {MAX_TEXT_BYTES}",
            reason=BAD,
            field=what,
        )
    return value


def blob(value: bytes, what: str) -> bytes:
    """``value`` if it is ``bytes`` of at most :data:`MAX_BLOB_BYTES`."""
    if not isinstance(value, bytes):
        raise StoreError(
            f"{what} must be bytes, not {type(value).__name__}", reason=BAD, field=what
        )
    if len(value) > MAX_BLOB_BYTES:
        raise StoreError(
            f"{what} is {len(value)} bytes; the store keeps at most {MAX_BLOB_BYTES}",
            reason=BAD,
            field=what,
        )
    return value


def integer(value: int, what: str) -> int:
    """``value`` if it is an ``int`` (not a ``bool``) that fits SQLite's 64-bit integers."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise StoreError(f"{what} must be int, not {type(value).__name__}", reason=BAD, field=what)
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise StoreError(f"{what} {value} does not fit in 64 bits", reason=BAD, field=what)
    return value


def member(kind: type[_E], value: _E | str, what: str) -> _E:
    """``value`` as a member of the enum ``kind`` (its string value is accepted too)."""
    try:
        return kind(value)
    except ValueError as exc:
        raise StoreError(
            f"{what} {value!r} is not a {kind.__name__}", reason=BAD, field=what
        ) from exc


def cell_bytes(value: Any) -> bytes:
    if not isinstance(value, bytes):
        raise StoreError(f"a stored {type(value).__name__} should be bytes", reason=DAMAGED)
    return value


def cell_str(value: Any) -> str:
    if not isinstance(value, str):
        raise StoreError(f"a stored {type(value).__name__} should be text", reason=DAMAGED)
    return value


def cell_optional_bytes(value: Any) -> bytes | None:
    return None if value is None else cell_bytes(value)


def cell_int(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise StoreError(f"a stored {type(value).__name__} should be an integer", reason=DAMAGED)
    return value


def cell_enum(kind: type[_E], value: Any) -> _E:
    try:
        return kind(cell_str(value))
    except ValueError as exc:
        raise StoreError(
            f"stored value {value!r} is not a {kind.__name__}", reason=DAMAGED
        ) from exc
