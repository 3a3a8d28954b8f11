"""meshchat.causal.split_heads: file announcements among the heads are named loose."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from meshchat.causal import MAX_PARENTS, split_heads


@dataclass(frozen=True)
class H:
    msg_id: bytes
    text: str
    parents: tuple[bytes, ...] = ()


def _file(text: str) -> bool:
    return text.startswith("F")


def test_a_file_head_is_loose_and_its_parents_block() -> None:
    heads = [H(b"f" * 16, "F1", (b"a" * 16,)), H(b"t" * 16, "text", (b"a" * 16,))]
    assert split_heads(heads, _file) == ((b"t" * 16, b"a" * 16), (b"f" * 16,))


def test_text_heads_are_all_blocking() -> None:
    heads = [H(bytes([i]) * 16, "hi") for i in range(3)]
    assert split_heads(heads, _file) == (tuple(h.msg_id for h in heads), ())


ids = st.binary(min_size=16, max_size=16)


@given(
    st.lists(
        st.tuples(ids, st.booleans(), st.lists(ids, max_size=MAX_PARENTS)),
        max_size=MAX_PARENTS,
        unique_by=lambda t: t[0],
    )
)
def test_parents_are_unique_bounded_and_files_never_block(
    raw: list[tuple[bytes, bool, list[bytes]]],
) -> None:
    heads = [H(i, "F" if f else "t", tuple(p)) for i, f, p in raw]
    blocking, loose = split_heads(heads, _file)
    every = blocking + loose
    assert len(every) <= MAX_PARENTS and len(set(every)) == len(every)
    files = {h.msg_id for h in heads if h.text == "F"}
    assert set(loose) == files
    assert not files & set(blocking)
