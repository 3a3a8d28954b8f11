"""The faces' view of a causal history: positions, markers, JSON, and picking ids by prefix."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshchat.errors import UsageError
from meshchat.logview import (
    MAX_SUGGESTED,
    entries,
    entry_json,
    gap_text,
    pick,
    plural,
    waiting_text,
)
from meshchat.store.records import Message, MessageState

CONV = "#mesh"


def msg(
    hex_id: str,
    *,
    order: int | None = 1,
    late: bool = False,
    missing: int = 0,
    parents: tuple[bytes, ...] = (),
    loose: tuple[bytes, ...] = (),
) -> Message:
    return Message(
        1,
        CONV,
        bytes.fromhex(hex_id.ljust(32, "0")),
        False,
        b"\x01" * 16,
        "~bob",
        "text",
        1000,
        MessageState.RECEIVED,
        1000,
        parents=parents,
        loose=loose,
        order_ms=order,
        late=late,
        missing=missing,
    )


def test_positions_count_shown_messages_and_held_ones_have_none() -> None:
    listing = entries(
        [msg("aa", order=5), msg("bb", order=9, missing=2), msg("cc", order=None, missing=1)]
    )
    assert [e.position for e in listing] == [0, 1, None]
    assert [e.markers for e in listing] == [(), ("gap",), ("waiting",)]
    assert (listing[1].gap, listing[1].waiting) == (2, 0)
    assert (listing[2].gap, listing[2].waiting, listing[2].held) == (0, 1, True)


def test_late_is_a_marker_of_shown_messages_only() -> None:
    late, held = entries([msg("aa", late=True, missing=1), msg("bb", order=None, late=True)])
    assert late.markers == ("gap", "late")
    assert held.markers == ("waiting",) and not held.late


def test_json_carries_parents_loose_state_position_and_markers() -> None:
    parent, file = b"\x02" * 16, b"\x03" * 16
    (shown,) = entries([msg("aa", order=7, late=True, parents=(parent,), loose=(file,))])
    data = entry_json(shown, {"msg_id": "aa", "state": "received"})
    assert data == {
        "msg_id": "aa",
        "state": "received",  # the delivery state scripts read stays as it was
        "history": "shown",
        "position": 0,
        "order_ms": 7,
        "parents": [parent.hex()],
        "loose": [file.hex()],
        "late": True,
        "missing": 0,
        "markers": ["late"],
    }
    (held,) = entries([msg("bb", order=None, missing=3)])
    data = entry_json(held, {})
    assert (data["history"], data["position"], data["order_ms"]) == ("held", None, None)
    assert (data["missing"], data["markers"]) == (3, ["waiting"])


def test_marker_texts_count_in_words() -> None:
    assert gap_text(1) == "1 earlier message missing"
    assert gap_text(4) == "4 earlier messages missing"
    assert waiting_text(1) == "waiting for 1 earlier message"
    assert waiting_text(0) == "waiting for earlier messages"
    assert plural(0, "message") == "0 messages"


def test_pick_takes_unique_prefixes_in_any_case_each_once() -> None:
    a, b = msg("ab12"), msg("ac34")
    assert pick([a, b], ["AB", "ac3", "ab1"]) == [a, b]
    assert pick([a, b], []) == []


def test_pick_names_the_messages_an_ambiguous_prefix_matches() -> None:
    many = [msg(f"a{i:x}") for i in range(MAX_SUGGESTED + 2)]
    with pytest.raises(UsageError) as caught:
        pick(many, ["a"])
    text = str(caught.value)
    assert f"matches {MAX_SUGGESTED + 2} messages" in text and "give more digits" in text
    assert ", ...)" in text


@pytest.mark.parametrize("bad", ["", "  ", "xyz", "ab cd", "-1", "0x12"])
def test_pick_refuses_what_is_not_hex(bad: str) -> None:
    with pytest.raises(UsageError, match="not a message id"):
        pick([msg("ab")], [bad])


def test_pick_refuses_an_unknown_id() -> None:
    with pytest.raises(UsageError, match="no message ff in this conversation"):
        pick([msg("ab")], ["ff"])


@given(
    st.lists(st.binary(min_size=16, max_size=16), max_size=8, unique=True),
    st.text(max_size=40),
)
def test_pick_returns_only_matching_messages_or_a_usage_error(
    ids: list[bytes], prefix: str
) -> None:
    messages = [msg(i.hex()) for i in ids]
    try:
        got = pick(messages, [prefix])
    except UsageError:
        return
    (one,) = got
    assert one.msg_id.hex().startswith(prefix.strip().lower())
    assert sum(m.msg_id.hex().startswith(prefix.strip().lower()) for m in messages) == 1
