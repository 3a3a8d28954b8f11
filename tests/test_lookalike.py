"""Look-alike names under the confusables skeleton."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshchat.lookalike import (
    LookalikeError,
    check_new_name,
    lookalike_of,
    lookalikes,
    mark,
    marked,
    skeleton,
)

CYRILLIC_A = "\u0430"
CYRILLIC_O = "\u043e"


@pytest.mark.parametrize(
    ("name", "known"),
    [
        (CYRILLIC_A + "lice", "alice"),  # Cyrillic a
        ("AIice", "alice"),  # capital I for l
        ("a1ice", "alice"),  # digit one for l
        ("\uff21lice", "Alice"),  # fullwidth A
        ("al\u200bice", "alice"),  # a zero-width space inside
        ("alice\u200d", "alice"),  # a zero-width joiner after
        ("b" + CYRILLIC_O + "b", "bob"),
        ("\u0392\u039f\u0392", "BOB"),  # Greek capitals Beta, Omicron, Beta
        ("BOB", "B0B"),
        ("ALICE", CYRILLIC_A + "lice"),  # case and script at once
        ("m" + CYRILLIC_A + "llory", "mallory"),
    ],
)
def test_look_alikes_are_caught(name: str, known: str) -> None:
    assert lookalike_of(name, ["someone", known]) == known


@pytest.mark.parametrize(
    ("name", "known"),
    [
        ("alice", "alice"),  # the same name is a key change, not a look-alike
        ("Alice ", "alice"),
        ("bob", "rob"),
        ("José", "Jose"),  # an accent is visible
        ("Paul", "Pau\u0142"),
        ("\u674e\u96f7", "\u674e\u96ea"),
        ("", ""),
    ],
)
def test_different_names_are_left_alone(name: str, known: str) -> None:
    assert lookalike_of(name, [known]) is None


def test_check_refuses_unless_allowed_and_marks() -> None:
    with pytest.raises(LookalikeError) as caught:
        check_new_name("b" + CYRILLIC_O + "b", ["me", "bob"], allow=False)
    assert caught.value.like == "bob"
    assert check_new_name("b" + CYRILLIC_O + "b", ["me", "bob"], allow=True) == "bob"
    assert check_new_name("carol", ["me", "bob"], allow=False) is None
    assert marked("b" + CYRILLIC_O + "b", ["bob"]) == "b\u043eb (!! looks like bob)"
    assert mark("bob", None) == "bob"


def test_lookalikes_finds_every_ambiguous_name_at_once() -> None:
    names = ["alice", CYRILLIC_A + "lice", "bob", "carol", "car0l"]
    found = lookalikes(names)
    assert found == {"alice": CYRILLIC_A + "lice", CYRILLIC_A + "lice": "alice"}


names = st.text(st.characters(codec="utf-8", categories=["L", "N"]), min_size=1, max_size=12)


@given(names)
def test_invisible_characters_never_make_a_new_name(name: str) -> None:
    for invisible in ("\u200b", "\u200d", "\u2060", "\u202e", "\ufeff", "\u034f"):
        sneaky = name[:1] + invisible + name[1:]
        assert skeleton(sneaky) == skeleton(name)
        assert lookalike_of(sneaky, [name]) in (None, name)  # None only if it is the same


@given(names, names)
def test_lookalike_is_symmetric(a: str, b: str) -> None:
    assert (lookalike_of(a, [b]) is None) == (lookalike_of(b, [a]) is None)
