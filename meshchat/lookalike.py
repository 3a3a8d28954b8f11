"""Names that look alike: ``alice`` with a Cyrillic ``a`` (U+0430), ``AIice`` with a capital I.

Theory of operation
-------------------
Two names are look-alikes when their *skeletons* are equal, in the spirit of Unicode UTS #39
("confusable detection"). The skeleton of a name is made in four steps:

1. NFKC normalisation (a fullwidth ``A``, U+FF21, becomes ``A``);
2. invisible characters are dropped (:func:`meshchat.display.is_hidden`: zero-width spaces,
   joiners, bidi controls, fillers), and runs of white space become one space;
3. every character is replaced by the representative of its *confusable class*;
4. case folding, NFKC, and step 3 once more (capital ``I`` looks like ``l`` before folding,
   Cyrillic capital A (U+0410) like ``a`` after it).

Two names also match when the skeletons of their case-folded forms are equal (``ALICE`` and
``alice`` with a Cyrillic ``a``).

The confusable classes come from the Unicode confusables table as the well-kept
``confusable-homoglyphs`` package ships it: each character with the single characters it can
be mistaken for. The relation is closed transitively (a union-find over the table), so that
``l``, ``I``, ``1`` and ``|`` are one class; the representative of a class is its smallest ASCII
member, else its smallest code point. Multi-character look-alikes (``rn`` for ``m``) are not
covered: they are rare in names and a skeleton cannot fold them without false alarms.

:func:`lookalike_of` tells whether a name is a look-alike of any of some names (the contacts,
one's own name) without being the *same* name (the same name is a key change, handled by
:mod:`meshchat.store.trust`). The faces refuse such a card unless the user confirms, and mark
the name wherever it is shown (:func:`marked`).
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Iterable

from meshchat.display import is_hidden, safe_line
from meshchat.errors import UsageError

__all__ = [
    "LOOKALIKE_MARK",
    "LookalikeError",
    "check_new_name",
    "lookalike_of",
    "lookalikes",
    "mark",
    "marked",
    "same_name",
    "skeleton",
]

#: What is written after a name that looks like another one (followed by that name).
LOOKALIKE_MARK = "!! looks like"


@functools.cache
def _classes() -> dict[str, str]:
    """Every confusable character -> its class representative (built once, ~10k entries)."""
    from confusable_homoglyphs.confusables import confusables_data

    parent: dict[str, str] = {}

    def find(ch: str) -> str:
        root = ch
        while parent.get(root, root) != root:
            root = parent[root]
        while parent.get(ch, ch) != root:
            parent[ch], ch = root, parent[ch]
        return root

    def better(a: str, b: str) -> bool:
        return (not a.isascii(), ord(a)) < (not b.isascii(), ord(b))

    data: dict[str, list[dict[str, str]]] = confusables_data
    for ch, glyphs in data.items():
        if len(ch) != 1:
            continue
        for glyph in glyphs:
            other = glyph["c"].strip("\u200e\u200f")  # the table wraps RTL glyphs in marks
            if len(other) != 1:
                continue
            a, b = find(ch), find(other)
            if a != b:
                if better(b, a):
                    a, b = b, a
                parent[b] = a
                parent.setdefault(a, a)
    return {ch: find(ch) for ch in parent}


def _visible(name: str) -> str:
    text = unicodedata.normalize("NFKC", name)
    kept: list[str] = []
    for ch in text:
        if is_hidden(ch):
            continue
        if ch.isspace():
            if kept and kept[-1] != " ":
                kept.append(" ")
            continue
        kept.append(ch)
    return "".join(kept).strip()


def _mapped(text: str) -> str:
    classes = _classes()
    return "".join(classes.get(ch, ch) for ch in text)


def skeleton(name: str) -> str:
    """The form under which look-alike names are equal (see the module docstring)."""
    return _mapped(unicodedata.normalize("NFKC", _mapped(_visible(name)).casefold()))


@functools.lru_cache(maxsize=4096)
def _skeletons(name: str) -> frozenset[str]:
    """:func:`skeleton`, and the skeleton of the case-folded name (``ALICE`` is folded
    to ``alice`` first there, so that it meets a Cyrillic-spelt ``alice``)."""
    visible = _visible(name)
    return frozenset({skeleton(visible), skeleton(visible.casefold())} - {""})


def same_name(a: str, b: str) -> bool:
    """The same name as people type it: NFC, case-folded, outer spaces removed."""
    return unicodedata.normalize("NFC", a.strip()).casefold() == (
        unicodedata.normalize("NFC", b.strip()).casefold()
    )


def lookalike_of(name: str, others: Iterable[str]) -> str | None:
    """The first of ``others`` that ``name`` looks like without being the same name, or None."""
    mine = _skeletons(name)
    for other in others:
        if not same_name(name, other) and mine & _skeletons(other):
            return other
    return None


def lookalikes(names: Iterable[str]) -> dict[str, str]:
    """Every name of ``names`` that looks like another of them -> one it looks like.

    Linear in the number of names (an index by skeleton), for screens that redraw often.
    """
    index: dict[str, list[str]] = {}
    unique = list(dict.fromkeys(names))
    for name in unique:
        for sk in _skeletons(name):
            index.setdefault(sk, []).append(name)
    found: dict[str, str] = {}
    for name in unique:
        for sk in _skeletons(name):
            like = next((o for o in index[sk] if not same_name(name, o)), None)
            if like is not None:
                found[name] = like
                break
    return found


def mark(name: str, like: str | None) -> str:
    """``name`` followed, for a look-alike, by whom it looks like."""
    return name if like is None else f"{name} ({LOOKALIKE_MARK} {like})"


def marked(name: str, others: Iterable[str]) -> str:
    """``name`` as it is shown among ``others``: a look-alike says whom it looks like."""
    return mark(name, lookalike_of(name, others))


class LookalikeError(UsageError):
    """A new contact's name looks like a known contact's or one's own, and was not confirmed.

    ``name`` is the name the contact would get; ``like`` the name it looks like.
    """

    def __init__(self, name: str, like: str) -> None:
        self.name = name
        self.like = like
        super().__init__(
            f"LOOK-ALIKE NAME: {safe_line(name)!r} looks like {safe_line(like)!r} but is spelt "
            "with other characters. Someone may be posing as them. Nothing was added; if you "
            "are sure, add it again confirming the look-alike (it stays marked), or give it "
            "another name."
        )


def check_new_name(name: str, others: Iterable[str], *, allow: bool) -> str | None:
    """Refuse a contact name that looks like one of ``others`` unless ``allow``.

    Returns the name it looks like (when allowed) or None; raises :class:`LookalikeError`.
    """
    like = lookalike_of(name, others)
    if like is not None and not allow:
        raise LookalikeError(name, like)
    return like
