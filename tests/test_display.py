"""The one sanitizer for text other people chose: nothing a terminal obeys or hides gets out."""

from __future__ import annotations

import contextlib
import io
import logging
import sys
import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from meshchat.cli.common import say
from meshchat.display import MAX_MARKS, SafeFormatter, is_hidden, safe_line, safe_text

#: Code points that draw nothing or reorder text, named one by one (the oracle does not reuse
#: the module's own table).
INVISIBLE = {
    0x00AD, 0x034F, 0x061C, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x180E, 0x200B, 0x200C, 0x200D,
    0x200E, 0x200F, 0x202A, 0x202B, 0x202C, 0x202D, 0x202E, 0x2060, 0x2061, 0x2062, 0x2063,
    0x2064, 0x2066, 0x2067, 0x2068, 0x2069, 0x206A, 0x206F, 0x2800, 0x3164, 0xFEFF, 0xFFA0,
    0xFFF9, 0xFFFA, 0xFFFB, 0xE0001, 0xE0041, 0xE007F, 0xFE00, 0xE0100,
}  # fmt: skip
BAD_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}

#: Text an attacker would pick: controls, bidi, zero-width and ordinary letters mixed.
hostile = st.text(
    st.one_of(
        st.characters(codec=None),
        st.sampled_from([chr(c) for c in INVISIBLE] + ["\x1b", "\x07", "\b", "\r", "\n", "\x9b"]),
        st.sampled_from(list("alice~<> [];0123")),
    ),
    max_size=200,
)


def _unsafe(ch: str) -> bool:
    return unicodedata.category(ch) in BAD_CATEGORIES or ord(ch) in INVISIBLE


@given(hostile)
def test_a_line_never_holds_a_control_bidi_or_invisible_character(text: str) -> None:
    out = safe_line(text)
    assert not [ch for ch in out if _unsafe(ch)]
    assert "\n" not in out and "\r" not in out


@given(hostile)
def test_a_text_keeps_only_its_line_feeds(text: str) -> None:
    out = safe_text(text)
    assert not [ch for ch in out if ch != "\n" and _unsafe(ch)]
    assert out.count("\n") == text.count("\n")


@given(hostile)
def test_escaping_is_stable_and_keeps_every_visible_character(text: str) -> None:
    out = safe_line(text)
    assert safe_line(out) == out  # escapes are plain ASCII: nothing left to escape
    visible = [
        ch
        for ch in text
        if not is_hidden(ch)
        and ch not in "\ufe0e\ufe0f"
        and unicodedata.category(ch) not in {"Mn", "Me"}
    ]
    it = iter(out)
    assert all(ch in it for ch in visible)  # in order, none lost


def test_escapes_show_what_was_there() -> None:
    assert safe_line("\b\b~alice\r\n") == "\\x08\\x08~alice\\x0d\\x0a"
    assert safe_line("a\x1b]0;title\x07b") == "a\\x1b]0;title\\x07b"
    assert safe_line("\u202eevil\u200b") == "\\u202eevil\\u200b"
    assert safe_line("\U000e0041") == "\\U000e0041"
    assert safe_text("one\ntwo\tthree\r") == "one\ntwo    three\\x0d"
    assert safe_line("I \u2764\ufe0f tea") == "I \u2764 tea"  # emoji presentation dropped
    assert safe_line("élan 日本 Ωmega") == "élan 日本 Ωmega"  # ordinary text untouched


def test_a_pile_of_combining_marks_is_cut_short() -> None:
    out = safe_line("a" + "\u0301" * 50 + "b")
    assert out == "a" + "\u0301" * MAX_MARKS + "b"


def test_log_records_cannot_carry_controls_or_forge_a_record() -> None:
    formatter = SafeFormatter("%(levelname)s %(message)s")
    record = logging.LogRecord(
        "meshchat", logging.INFO, __file__, 1, "peer %s said hi", ("\x1b[2J\nINFO forged",), None
    )
    out = formatter.format(record)
    assert out == "INFO peer \\x1b[2J\\x0aINFO forged said hi"
    try:
        raise ValueError("bad\x1b[31m name")
    except ValueError:
        record = logging.LogRecord("m", logging.ERROR, __file__, 1, "x", (), sys.exc_info())
    out = formatter.format(record)
    assert "\x1b" not in out and "\\x1b[31m" in out and "Traceback" in out


@given(hostile)
def test_every_cli_line_is_one_clean_line(text: str) -> None:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        say(f"<~{text}> {text}")
        say(text, err=True)
    for printed in (out.getvalue(), err.getvalue()):
        assert printed.endswith("\n") and printed.count("\n") == 1
        assert not [ch for ch in printed[:-1] if _unsafe(ch)]
