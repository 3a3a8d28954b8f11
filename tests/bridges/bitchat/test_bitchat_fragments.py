"""bitchat fragment reassembly: order, duplicates, and the bounds that stop fragment bombs."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshchat.bridges.bitchat import fragments as fr
from meshchat.bridges.bitchat.fragments import Reassembler, parse_fragment, split
from meshchat.bridges.bitchat.packet import BitchatPacket, MessageType, decode, encode
from meshchat.bridges.bitchat.public import BitchatIdentity
from meshchat.errors import BridgeError, BridgeReason

NOW = 1_800_000_000_000
SENDER = b"\x11" * 8


def _fragment(
    ident: bytes, index: int, total: int, data: bytes = b"d" * 10, kind: int = 2
) -> BitchatPacket:
    payload = ident + index.to_bytes(2, "big") + total.to_bytes(2, "big") + bytes((kind,)) + data
    return BitchatPacket(
        type=MessageType.FRAGMENT, sender_id=SENDER, timestamp=NOW, payload=payload
    )


def _big() -> BitchatPacket:
    me = BitchatIdentity.generate()
    return me.message("".join(chr(0x400 + i) for i in range(900)), NOW)


def test_out_of_order_and_duplicated_fragments_reassemble_once() -> None:
    packet = _big()
    parts = split(packet, fragment_id=b"F" * 8)
    assert [parse_fragment(p).index for p in parts] == list(range(len(parts)))
    reassembler = Reassembler()
    results = [reassembler.add(p, NOW) for p in [*reversed(parts[1:]), parts[1], parts[0]]]
    assert results[:-1] == [None] * (len(results) - 1)
    assert decode(results[-1]) == packet  # type: ignore[arg-type]
    assert reassembler.pending == 0 and reassembler.buffered_bytes == 0


@pytest.mark.parametrize(
    ("payload_total", "index"),
    [(0, 0), (257, 0), (3, 3), (65535, 7)],
)
def test_bad_fragment_headers_are_refused(payload_total: int, index: int) -> None:
    with pytest.raises(BridgeError) as caught:
        Reassembler().add(_fragment(b"i" * 8, index, payload_total), NOW)
    assert caught.value.reason is BridgeReason.FRAGMENT


def test_short_fragment_and_changing_total_are_refused() -> None:
    short = BitchatPacket(
        type=MessageType.FRAGMENT, sender_id=SENDER, timestamp=NOW, payload=b"x" * 12
    )
    with pytest.raises(BridgeError):
        parse_fragment(short)
    reassembler = Reassembler()
    reassembler.add(_fragment(b"i" * 8, 0, 3), NOW)
    with pytest.raises(BridgeError):
        reassembler.add(_fragment(b"i" * 8, 1, 4), NOW)
    assert reassembler.pending == 0  # the whole set is dropped


def test_fragment_bomb_is_bounded() -> None:
    """Thousands of fragment sets that never complete: memory stays within the caps."""
    reassembler = Reassembler()
    for n in range(5000):
        reassembler.add(_fragment(n.to_bytes(8, "big"), 0, 256, b"z" * 469), NOW)
    assert reassembler.pending == fr.MAX_SETS
    assert reassembler.buffered_bytes <= fr.MAX_SETS * 469
    # one set filled to its byte cap is refused before it grows past it
    with pytest.raises(BridgeError):
        for i in range(256):
            reassembler.add(_fragment(b"B" * 8, i, 256, b"q" * 600), NOW)
    assert reassembler.buffered_bytes <= fr.MAX_TOTAL_BYTES


def test_sets_expire_after_30_seconds() -> None:
    reassembler = Reassembler()
    reassembler.add(_fragment(b"e" * 8, 0, 2), NOW)
    assert reassembler.add(_fragment(b"e" * 8, 1, 2), NOW + 30_001) is None  # started over
    assert reassembler.pending == 1
    assert reassembler.expire(NOW + 70_000) == 1 and reassembler.buffered_bytes == 0


def test_split_refuses_packets_needing_more_than_256_fragments() -> None:
    me = BitchatIdentity.generate()
    huge = me.sign(
        BitchatPacket(type=2, sender_id=me.peer_id, timestamp=NOW, payload=bytes(range(256)) * 240)
    )
    with pytest.raises(BridgeError) as caught:
        split(huge, chunk=64)
    assert caught.value.reason is BridgeReason.OVERSIZED
    assert len(split(huge)) <= 256 and encode(huge)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(min_size=13, max_size=80), max_size=40))
def test_reassembler_never_fails_untyped(payloads: list[bytes]) -> None:
    reassembler = Reassembler()
    for at, payload in enumerate(payloads):
        packet = BitchatPacket(
            type=MessageType.FRAGMENT, sender_id=SENDER, timestamp=NOW, payload=payload
        )
        with contextlib.suppress(BridgeError):
            reassembler.add(packet, NOW + at)
    assert reassembler.buffered_bytes >= 0
