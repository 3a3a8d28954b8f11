"""The input line's grammar: table-driven cases and properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshchat.errors import UsageError
from meshchat.tui.commands import (
    MAX_LINE_CHARS,
    AddContact,
    Command,
    Help,
    Join,
    Msg,
    Panic,
    Quit,
    Say,
    ShowId,
    Verify,
    Who,
    parse_line,
)
from meshchat.wire.payloads import MAX_TEXT_BYTES


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("hello", Say("hello")),
        ("  hello  world ", Say("hello  world")),
        ("//join is a command", Say("/join is a command")),
        ("/msg bob", Msg("bob")),
        ("/msg bob hello from tmux", Msg("bob", "hello from tmux")),
        ("/msg bob   two  spaces ", Msg("bob", "two  spaces")),
        ("/MSG #Team hi", Msg("#team", "hi")),
        ("/query 1a2b3c4d", Msg("1a2b3c4d")),
        ("/m #mesh", Msg("#mesh")),
        ("/join #team", Join("#team")),
        ("/join team", Join("#team")),
        ("/j #Team correct horse battery", Join("#team", "correct horse battery")),
        ("/who", Who()),
        ("/id", ShowId()),
        ("/add mc1:abc", AddContact("mc1:abc")),
        ("/add mc1:abc Bob Smith", AddContact("mc1:abc", "Bob Smith")),
        ("/replace mc1:abc", AddContact("mc1:abc", replace=True)),
        ("/verify bob", Verify("bob")),
        ("/verify bob confirm", Verify("bob", confirm=True)),
        ("/panic", Panic()),
        ("/panic confirm", Panic(confirm=True)),
        ("/help", Help()),
        ("/?", Help()),
        ("/quit", Quit()),
        ("/exit", Quit()),
        ("/q", Quit()),
    ],
)
def test_parses(line: str, expected: Command) -> None:
    assert parse_line(line) == expected


@pytest.mark.parametrize("line", ["", "   ", "\t"])
def test_blank_lines_do_nothing(line: str) -> None:
    assert parse_line(line) is None


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("/nope", "unknown command /nope"),
        ("/", "unknown command /"),
        ("/msg", "usage: /msg"),
        ("/join", "usage: /join"),
        ("/join #bad!name", "bad channel name"),
        ("/msg #bad!name hi", "bad channel name"),
        ("/add", "usage: /add"),
        ("/verify", "usage: /verify"),
        ("/verify bob now", "usage: /verify"),
        ("/panic now", "usage: /panic confirm"),
        ("/who me", "/who takes no arguments"),
        ("/quit now", "/quit takes no arguments"),
        ("x" * (MAX_TEXT_BYTES + 1), "longer than"),
        ("/msg bob " + "é" * MAX_TEXT_BYTES, "longer than"),
        ("a\x00b", "NUL"),
        ("x" * (MAX_LINE_CHARS + 1), "input line longer"),
    ],
)
def test_rejects_with_a_message(line: str, message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("?", r"\?")):
        parse_line(line)


def test_text_at_the_limit_is_accepted() -> None:
    assert parse_line("x" * MAX_TEXT_BYTES) == Say("x" * MAX_TEXT_BYTES)


@given(st.text(max_size=300))
def test_any_line_parses_or_raises_usage_error(line: str) -> None:
    try:
        result = parse_line(line)
    except UsageError as exc:
        assert str(exc)
        return
    if result is None:
        assert not line.strip()


_plain = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00"),
    min_size=1,
    max_size=200,
).filter(lambda t: t.strip() and not t.strip().startswith("/"))


@given(_plain)
def test_plain_text_is_said_as_typed(text: str) -> None:
    assert parse_line(text) == Say(text.strip())


@given(_plain)
def test_double_slash_escapes_any_text(text: str) -> None:
    assert parse_line("//" + text.strip()) == Say("/" + text.strip())


@given(st.from_regex(r"[a-z][a-z0-9]{0,10}", fullmatch=True), _plain)
def test_msg_keeps_target_and_text(target: str, text: str) -> None:
    assert parse_line(f"/msg {target} {text}") == Msg(target, text.strip())
