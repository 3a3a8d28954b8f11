"""A strict, bounded structural check of CBOR bytes, run before ``cbor2`` sees them.

``cbor2`` is a general decoder: it understands semantic tags (regular expressions, decimal
fractions, shared references, sets), indefinite lengths, maps and floats, and it accepts several
encodings of the same value. None of that belongs on meshchat's wire. This walker reads only the
item headers and accepts a CBOR item only if:

* it uses major types 0-4 and the simple values false, true and null (no maps, no tags, no
  floats);
* every length is definite and every integer and length is in its shortest form, and every text
  string is valid UTF-8 (so an accepted encoding is the canonical one, and a re-encoding of the
  decoded value is identical);
* nesting is at most ``max_depth`` containers deep and the whole item holds at most
  ``max_items`` items;
* it ends exactly at the end of the input.

It costs one pass over the headers (byte strings are skipped by length) and raises
:class:`PacketError` with reason ``MALFORMED`` or ``NOT_CANONICAL``. It returns the offsets at
which the items of a top-level array start, which lets the codec slice signed fields out of a
frame instead of encoding them again.
"""

from __future__ import annotations

from meshchat.errors import PacketError, PacketReason

__all__ = ["check_cbor"]

_MIN_FOR_WIDTH = {24: 24, 25: 0x100, 26: 0x10000, 27: 0x100000000}
_WIDTH = {24: 1, 25: 2, 26: 4, 27: 8}
_SIMPLE_OK = {20, 21, 22}  # false, true, null


def check_cbor(data: bytes, *, max_items: int = 64, max_depth: int = 4) -> list[int]:
    """Raise :class:`PacketError` unless ``data`` is one strict, canonical, bounded CBOR item.

    Returns the start offset of each item of a top-level array, followed by ``len(data)``
    (an empty list if the top-level item is not an array).
    """
    view = memoryview(data)
    end = len(view)
    pos = 0
    items = 0
    offsets: list[int] = []
    # A stack of remaining child counts for open containers.
    remaining: list[int] = []
    while True:
        if pos >= end:
            raise PacketError(PacketReason.MALFORMED, "truncated CBOR")
        if len(remaining) == 1:
            offsets.append(pos)
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

        if major in (5, 6):
            raise PacketError(PacketReason.MALFORMED, "CBOR maps and tags not allowed")
        if major in (2, 3):
            if value > end - pos:
                raise PacketError(PacketReason.MALFORMED, "string runs past the end")
            if major == 3:
                try:
                    str(view[pos : pos + value], "utf-8")
                except UnicodeDecodeError:
                    raise PacketError(PacketReason.MALFORMED, "text is not UTF-8") from None
            pos += value
            children = 0
        elif major == 4:
            children = value
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
    if offsets:
        offsets.append(end)
    return offsets
