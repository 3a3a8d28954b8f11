"""Padding to size buckets."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshchat.crypto.padding import BUCKETS, bucket_for, pad, unpad
from meshchat.errors import DecryptionError


@given(st.binary(max_size=1700), st.integers(min_value=0, max_value=64))
def test_pad_reaches_a_bucket_and_unpads(data: bytes, overhead: int) -> None:
    padded = pad(data, overhead)
    assert overhead + len(padded) in BUCKETS
    assert unpad(padded) == data


def test_bucket_choice() -> None:
    assert bucket_for(0) == 256 and bucket_for(256) == 256 and bucket_for(257) == 512
    assert bucket_for(1800) == 1800
    with pytest.raises(ValueError):
        bucket_for(1801)


@pytest.mark.parametrize("bad", [b"", b"\x00" * 10, b"abc", b"\x80\x01"])
def test_bad_padding_raises(bad: bytes) -> None:
    with pytest.raises(DecryptionError):
        unpad(bad)
