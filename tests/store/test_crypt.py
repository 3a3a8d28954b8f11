"""The store's field encryption: sealed values bound to their rows, tags, padding, bad input."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshchat.errors import StoreError
from meshchat.store._crypt import PAD_TO, TAG_SIZE, StoreCipher

from .helpers import KEY

CIPHER = StoreCipher(KEY)
OTHER = StoreCipher(bytes(32))


def test_seal_round_trips_and_is_randomised() -> None:
    fields = ["Zoë", b"\x00\xff", 12, None]
    a = CIPHER.seal("messages", (b"t1",), fields)
    b = CIPHER.seal("messages", (b"t1",), fields)
    assert a != b  # fresh nonce each time
    assert CIPHER.open("messages", (b"t1",), a) == fields
    assert b"Zo" not in a


@pytest.mark.parametrize(
    ("table", "binding"),
    [("messages", (b"t2",)), ("outbox", (b"t1",)), ("messages", (b"t1", b"")), ("messages", ())],
)
def test_a_sealed_value_opens_only_in_its_own_row(table: str, binding: tuple[bytes, ...]) -> None:
    sealed = CIPHER.seal("messages", (b"t1",), ["text"])
    with pytest.raises(StoreError, match="does not open"):
        CIPHER.open(table, binding, sealed)


def test_the_binding_is_unambiguous() -> None:
    """("ab", "c") and ("a", "bc") are different rows even though they concatenate alike."""
    sealed = CIPHER.seal("t", (b"ab", b"c"), [1])
    with pytest.raises(StoreError):
        CIPHER.open("t", (b"a", b"bc"), sealed)


def test_wrong_key_and_key_check() -> None:
    sealed = CIPHER.seal("t", (), ["x"])
    with pytest.raises(StoreError, match="wrong store key"):
        OTHER.open("t", (), sealed)
    check = CIPHER.key_check()
    assert CIPHER.matches(check)
    assert not OTHER.matches(check)
    assert not CIPHER.matches(b"")


@pytest.mark.parametrize("key", [b"", b"k" * 31, b"k" * 33, "k" * 32])
def test_a_store_key_must_be_32_bytes(key: object) -> None:
    with pytest.raises(StoreError, match="32 bytes"):
        StoreCipher(key)  # type: ignore[arg-type]


def test_tags_depend_on_key_domain_and_value() -> None:
    tag = CIPHER.tag("contact", b"node")
    assert len(tag) == TAG_SIZE
    assert tag == CIPHER.tag("contact", b"node")
    assert tag != CIPHER.tag("sender", b"node")
    assert tag != CIPHER.tag("contact", b"node2")
    assert tag != OTHER.tag("contact", b"node")
    assert CIPHER.tag("c", "é") == CIPHER.tag("c", "é".encode())
    assert b"node" not in tag


def test_lengths_are_hidden_to_within_the_padding() -> None:
    sizes = {len(CIPHER.seal("t", (), ["x" * n])) for n in range(40)}
    assert len(sizes) == 1
    assert len(CIPHER.seal("t", (), ["x" * 200])) % PAD_TO == (24 + 16) % PAD_TO


def test_oversized_rows_are_refused() -> None:
    with pytest.raises(StoreError, match="too large"):
        CIPHER.seal("t", (), [b"x" * 100_000])


@given(st.binary(max_size=300))
def test_opening_any_bytes_is_a_store_error_never_a_crash(data: bytes) -> None:
    with pytest.raises(StoreError):
        CIPHER.open("t", (), data)


@given(st.one_of(st.none(), st.integers(), st.text(max_size=5)))
def test_opening_a_non_bytes_cell_is_a_store_error(cell: object) -> None:
    with pytest.raises(StoreError, match="malformed"):
        CIPHER.open("t", (), cell)


@given(st.data())
def test_any_bit_flip_is_detected(data: st.DataObject) -> None:
    sealed = bytearray(CIPHER.seal("t", (b"row",), ["secret text", 7]))
    pos = data.draw(st.integers(0, len(sealed) - 1))
    sealed[pos] ^= 1 << data.draw(st.integers(0, 7))
    with pytest.raises(StoreError):
        CIPHER.open("t", (b"row",), bytes(sealed))
