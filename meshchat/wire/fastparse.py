"""A straight-line reader for the one shape a well-formed packet has.

A canonical packet is an 11-item array whose fields have fixed CBOR headers (a 16-byte string,
a 32-byte string, a 2-item array, ...). Reading that shape directly costs a fraction of a
general walk plus a general decoder, and it is the shape of every honest packet, so it is the
fast path of :func:`meshchat.wire.codec.parse`. It never decides that a frame is bad: anything
that is not exactly this shape returns None, and the codec then takes the general path, which
gives the precise error. A property test checks that both paths agree on every input.
"""

from __future__ import annotations

__all__ = ["BodyFields", "FixedFields", "peek_packet_id", "read_fixed", "read_message_body"]

_MAX_FRAME = 2048  # MAX_PACKET_SIZE (packet.py imports nothing from here; kept literal)
_MAX_IDS = 8  # meshchat.causal.MAX_PARENTS: parents and loose parents together


def peek_packet_id(frame: bytes) -> bytes | None:
    """The packet id of a frame, read at its fixed offset without decoding the frame.

    A canonical frame starts ``0x8b`` (array of 11), version, kind (one byte each while they
    are below 24), ``0x50`` (16-byte string) and the id. Most frames a node hears in a flood
    are duplicates; recognising them here saves a full parse each. A frame that only *looks*
    like a copy of a seen packet is counted as one, which gives a sender no more power than
    replaying the genuine frame would. None for a frame not of that shape.
    """
    if len(frame) < 20 or len(frame) > _MAX_FRAME or frame[0] != 0x8B or frame[3] != 0x50:
        return None
    return bytes(frame[4:20])


#: (version, kind, packet_id, origin, dest_kind, dest_value, created, ttl, hops, suite,
#:  payload, signature, ttl_offset, suite_offset, signature_offset)
FixedFields = tuple[
    int, int, bytes, bytes, int, bytes, int, int, int, int, bytes, bytes, int, int, int
]


def _uint(frame: bytes, pos: int) -> tuple[int, int] | None:
    """An unsigned integer in shortest form at ``pos``: (value, next position), or None."""
    head = frame[pos]
    if head < 24:
        return head, pos + 1
    if head == 24:
        value = frame[pos + 1]
        return (value, pos + 2) if value >= 24 else None
    if head == 25:
        value = int.from_bytes(frame[pos + 1 : pos + 3], "big")
        return (value, pos + 3) if value >= 0x100 else None
    if head == 26:
        value = int.from_bytes(frame[pos + 1 : pos + 5], "big")
        return (value, pos + 5) if value >= 0x10000 else None
    if head == 27:
        value = int.from_bytes(frame[pos + 1 : pos + 9], "big")
        return (value, pos + 9) if value >= 0x100000000 else None
    return None


def read_fixed(frame: bytes) -> FixedFields | None:
    """The fields of a packet of the canonical shape, or None for anything else."""
    try:
        if frame[0] != 0x8B:
            return None
        pos = 1
        fields: list[int] = []
        for _ in range(2):  # version, kind
            got = _uint(frame, pos)
            if got is None:
                return None
            fields.append(got[0])
            pos = got[1]
        if frame[pos] != 0x50:
            return None
        packet_id = frame[pos + 1 : pos + 17]
        pos += 17
        if frame[pos] != 0x58 or frame[pos + 1] != 0x20:
            return None
        origin = frame[pos + 2 : pos + 34]
        pos += 34
        if frame[pos] != 0x82:
            return None
        got = _uint(frame, pos + 1)
        if got is None:
            return None
        dest_kind, pos = got
        head = frame[pos]
        if head == 0x40:
            dest_value, pos = b"", pos + 1
        elif head == 0x50:
            dest_value, pos = frame[pos + 1 : pos + 17], pos + 17
        else:
            return None
        ints: list[int] = []
        ttl_offset = 0
        for i in range(4):  # created, ttl, hops, suite
            if i == 1:
                ttl_offset = pos
            got = _uint(frame, pos)
            if got is None:
                return None
            ints.append(got[0])
            pos = got[1]
        suite_offset = pos - (1 if ints[3] < 24 else 2)
        if ints[3] >= 24:
            return None  # no suite needs more than one byte; let the general path say so
        head = frame[pos]
        if 0x40 <= head < 0x58:
            size, pos = head - 0x40, pos + 1
        elif head == 0x58:
            size, pos = frame[pos + 1], pos + 2
            if size < 24:
                return None
        elif head == 0x59:
            size, pos = int.from_bytes(frame[pos + 1 : pos + 3], "big"), pos + 3
            if size < 0x100:
                return None
        else:
            return None
        payload = frame[pos : pos + size]
        pos += size
        signature_offset = pos
        if frame[pos] != 0x58 or frame[pos + 1] != 0x40 or len(frame) != pos + 66:
            return None
        signature = frame[pos + 2 : pos + 66]
    except IndexError:
        return None
    if len(packet_id) != 16 or len(origin) != 32 or len(payload) != size:
        return None
    return (
        fields[0],
        fields[1],
        packet_id,
        origin,
        dest_kind,
        dest_value,
        ints[0],
        ints[1],
        ints[2],
        ints[3],
        payload,
        signature,
        ttl_offset,
        suite_offset,
        signature_offset,
    )


#: (msg_id, text, sent_ms, parents, loose) of a five-item message body
BodyFields = tuple[bytes, str, int, tuple[bytes, ...], tuple[bytes, ...]]


def _ids(data: bytes, pos: int) -> tuple[tuple[bytes, ...], int] | None:
    """An array of fewer than 24 16-byte strings at ``pos``: (ids, next position), or None."""
    head = data[pos]
    if not 0x80 <= head < 0x80 + 24:
        return None
    pos += 1
    ids: list[bytes] = []
    for _ in range(head - 0x80):
        if data[pos] != 0x50:
            return None
        ids.append(data[pos + 1 : pos + 17])
        pos += 17
    return tuple(ids), pos


def read_message_body(data: bytes) -> BodyFields | None:
    """The fields of a five-item message body ``[msg_id, text, sent_ms, parents, loose]`` in
    canonical form with at most 8 ids in its two lists, or None for anything else (the
    general path, :func:`meshchat.wire.cborcheck.check_cbor` then ``cbor2``, decides about
    it). Only the CBOR shape is read here; the field values are checked by ``MessageBody``
    as on the general path. A property test checks that both paths agree on every input."""
    try:
        if data[0] != 0x85 or data[1] != 0x50:
            return None
        msg_id = data[2:18]
        head = data[18]
        if 0x60 <= head < 0x78:
            size, pos = head - 0x60, 19
        elif head == 0x78:
            size, pos = data[19], 20
            if size < 24:
                return None
        elif head == 0x79:
            size, pos = int.from_bytes(data[19:21], "big"), 21
            if size < 0x100:
                return None
        else:
            return None
        raw = data[pos : pos + size]
        if len(raw) != size:
            return None
        text = raw.decode("utf-8")  # strict: no invalid bytes, no surrogates
        got = _uint(data, pos + size)
        if got is None:
            return None
        sent_ms, pos = got
        parents_at = _ids(data, pos)
        if parents_at is None:
            return None
        parents, pos = parents_at
        loose_at = _ids(data, pos)
        if loose_at is None:
            return None
        loose, pos = loose_at
    except (IndexError, UnicodeDecodeError):
        return None
    if pos != len(data) or len(msg_id) != 16 or len(parents) + len(loose) > _MAX_IDS:
        return None
    return msg_id, text, sent_ms, parents, loose
