"""A strict, bounded structural check of CBOR bytes, run before ``cbor2`` sees them.

``cbor2`` is a general decoder: it understands semantic tags (regular expressions, decimal
fractions, shared references, sets), indefinite lengths and floats, and it accepts several
encodings of the same value. None of that belongs on meshchat's wire. This walker reads only the
item headers and accepts a CBOR item only if:

* it uses major types 0-5 and the simple values false, true and null (no tags, no floats);
* every length is definite and every integer and length is in its shortest form (so an
  accepted encoding is the canonical one, and a re-encoding of the decoded value is identical);
* maps, if allowed, have at most ``max_items`` entries;
* nesting is at most ``max_depth`` containers deep and the whole item holds at most
  ``max_items`` items;
* it ends exactly at the end of the input.

It costs one pass over the headers (strings are skipped by length) and raises
:class:`PacketError` with reason ``MALFORMED`` or ``NOT_CANONICAL``.
"""

from __future__ import annotations

from meshchat.errors import PacketError, PacketReason

__all__ = ["check_cbor"]

_MIN_FOR_WIDTH = {24: 24, 25: 0x100, 26: 0x10000, 27: 0x100000000}
_WIDTH = {24: 1, 25: 2, 26: 4, 27: 8}
_SIMPLE_OK = {20, 21, 22}  # false, true, null


def check_cbor(
    data: bytes, *, max_items: int = 64, max_depth: int = 4, allow_maps: bool = False
) -> None:
    """Raise :class:`PacketError` unless ``data`` is one strict, canonical, bounded CBOR item."""
    view = memoryview(data)
    end = len(view)
    pos = 0
    items = 0
    # A stack of remaining child counts for open containers.
    remaining: list[int] = []
    while True:
        if pos >= end:
            raise PacketError(PacketReason.MALFORMED, "truncated CBOR")
        initial = view[pos]
        pos += 1
        major, info = initial >> 5, initial & 0x1F
        items += 1
        if items > max_items:
            raise PacketError(PacketReason.MALFORMED, "too many CBOR items")
        if major == 7:
            if info not in _SIMPLE_OK:
                raise PacketError(PacketReason.MALFORMED, "floats and simple values not allowed")
            value = 0
        elif info < 24:
            value = info
        elif info in _WIDTH:
            width = _WIDTH[info]
            if pos + width > end:
                raise PacketError(PacketReason.MALFORMED, "truncated CBOR header")
            value = int.from_bytes(view[pos : pos + width], "big")
            pos += width
            if value < _MIN_FOR_WIDTH[info]:
                raise PacketError(PacketReason.NOT_CANONICAL, "integer not in shortest form")
        else:
            raise PacketError(PacketReason.MALFORMED, "indefinite or reserved CBOR length")

        if major == 6:
            raise PacketError(PacketReason.MALFORMED, "CBOR tags not allowed")
        if major in (2, 3):
            if value > end - pos:
                raise PacketError(PacketReason.MALFORMED, "string runs past the end")
            pos += value
            children = 0
        elif major == 4:
            children = value
        elif major == 5:
            if not allow_maps:
                raise PacketError(PacketReason.MALFORMED, "CBOR maps not allowed here")
            children = value * 2
        else:
            children = 0

        if children:
            if children > max_items:
                raise PacketError(PacketReason.MALFORMED, "container too large")
            if len(remaining) >= max_depth:
                raise PacketError(PacketReason.MALFORMED, "CBOR nested too deeply")
            remaining.append(children)
            continue
        # A leaf (or an empty container) is complete: close finished containers.
        while remaining:
            remaining[-1] -= 1
            if remaining[-1]:
                break
            remaining.pop()
        if not remaining:
            break
    if pos != end:
        raise PacketError(PacketReason.MALFORMED, "trailing bytes after CBOR item")
