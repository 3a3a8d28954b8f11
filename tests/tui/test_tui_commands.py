"""The input line's grammar: table-driven cases and properties."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshchat.errors import UsageError
from meshchat.tui.commands import (
    HELP_TEXT,
    MAX_DELETE_BACK,
    MAX_LINE_CHARS,
    AddContact,
    Command,
    Delete,
    GroupChange,
    GroupCreate,
    GroupList,
    GroupShow,
    Help,
    Join,
    Msg,
    Panic,
    Quit,
    Say,
    ShowId,
    Verify,
    Who,
    Yes,
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
        ("/msg +crew", Msg("+crew")),
        ("/msg +Crew hello  all ", Msg("+Crew", "hello  all")),
        ("/msg GRP:AB12 hi", Msg("grp:ab12", "hi")),
        ("/group", GroupList()),
        ("/group list", GroupList()),
        ("/g LIST", GroupList()),
        ("/group show +crew", GroupShow("+crew")),
        ("/group show grp:0A1b", GroupShow("grp:0a1b")),
        ("/group +crew", GroupShow("+crew")),
        ("/group create crew bob", GroupCreate("crew", ("bob",))),
        ("/group create +crew bob 1a2b3c4d bob", GroupCreate("crew", ("bob", "1a2b3c4d"))),
        ("/GROUP Create Crew Bob", GroupCreate("Crew", ("Bob",))),
        ("/group add +crew carol", GroupChange("add", "+crew", ("carol",))),
        ("/group add grp:ab carol dave", GroupChange("add", "grp:ab", ("carol", "dave"))),
        ("/group remove +crew carol", GroupChange("remove", "+crew", ("carol",))),
        ("/group admin +crew bob", GroupChange("admin", "+crew", ("bob",))),
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
        ("/msg +", "usage: /msg +group"),
        ("/msg grp:", "grp: takes 1 to 32 hex digits"),
        ("/msg grp:xyz hi", "a group id is hex digits"),
        ("/msg grp:" + "a" * 33, "grp: takes 1 to 32 hex digits"),
        ("/msg +" + "x" * 65, "at most 64 bytes"),
        ("/group list all", "/group list takes no arguments"),
        ("/group frobnicate", "unknown /group action 'frobnicate': one of list, show, create"),
        ("/group show", "usage: /group show <+group>"),
        ("/group show +crew +more", "usage: /group show <+group>"),
        ("/group +crew bob", "usage: /group show <+group>"),
        ("/group show crew", "a group is +name or grp:<id>, not 'crew'"),
        ("/group create", "usage: /group create <name> <contact>..."),
        ("/group create crew", "usage: /group create <name> <contact>..."),
        ("/group create + bob", "usage: /group create"),
        ("/group create #crew bob", "bad group name '#crew'"),
        ("/group create grp:ab bob", "bad group name 'grp:ab'"),
        ("/group create ++crew bob", "bad group name"),
        ("/group create " + "x" * 65 + " bob", "at most 64 bytes"),
        ("/group create crew +bob", "'+bob' is not a person"),
        ("/group create crew " + " ".join(f"m{i}" for i in range(65)), "at most 64 members"),
        ("/group add", "usage: /group add <+group> <contact>..."),
        ("/group add +crew", "usage: /group add <+group> <contact>..."),
        ("/group add crew bob", "name the group first, as +name or grp:<id> (not 'crew')"),
        ("/group remove bob +crew", "name the group first"),
        ("/group remove +crew", "usage: /group remove <+group> <member>..."),
        ("/group admin +crew #mesh", "'#mesh' is not a person"),
        ("/group admin grp:zz bob", "a group id is hex digits"),
        ("/who me", "/who takes no arguments"),
        ("/quit now", "/quit takes no arguments"),
        ("x" * (MAX_TEXT_BYTES + 1), "longer than"),
        ("/msg bob " + "é" * MAX_TEXT_BYTES, "longer than"),
        ("a\x00b", "NUL"),
        ("x" * (MAX_LINE_CHARS + 1), "input line longer"),
    ],
)
def test_rejects_with_a_message(line: str, message: str) -> None:
    with pytest.raises(UsageError, match=re.escape(message)):
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


_word = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,15}", fullmatch=True)


@given(st.sampled_from(["add", "remove", "admin"]), _word, st.lists(_word, min_size=1, max_size=8))
def test_group_changes_keep_group_and_members(action: str, group: str, members: list[str]) -> None:
    line = f"/group {action} +{group} {' '.join(members)}"
    assert parse_line(line) == GroupChange(action, "+" + group, tuple(dict.fromkeys(members)))  # type: ignore[arg-type]


@given(_word, st.lists(_word, min_size=1, max_size=8), st.booleans())
def test_group_create_takes_the_name_with_or_without_plus(
    name: str, members: list[str], plus: bool
) -> None:
    line = f"/group create {'+' if plus else ''}{name} {' '.join(members)}"
    assert parse_line(line) == GroupCreate(name, tuple(dict.fromkeys(members)))


@given(st.text(max_size=120))
def test_any_group_line_parses_or_raises_usage_error(rest: str) -> None:
    try:
        result = parse_line("/group " + rest)
    except UsageError as exc:
        assert str(exc)
        return
    assert isinstance(result, GroupList | GroupShow | GroupCreate | GroupChange)


def test_help_names_every_group_action() -> None:
    from meshchat.tui.commands import HELP_TEXT

    for action in ("/group [list]", "show", "create", "add", "remove", "admin", "/msg +group"):
        assert action in HELP_TEXT.split("private groups", 1)[1]


def test_group_leave_parses_and_needs_exactly_one_group() -> None:
    from meshchat.tui.commands import GroupLeave

    assert parse_line("/group leave +crew") == GroupLeave("+crew")
    for bad in ("/group leave", "/group leave +crew +other"):
        with pytest.raises(UsageError):
            parse_line(bad)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("/delete", Delete()),
        ("/delete 1", Delete(1)),
        ("/del  12 ", Delete(12)),
        (f"/delete {MAX_DELETE_BACK}", Delete(MAX_DELETE_BACK)),
        ("/yes", Yes()),
        ("/YES", Yes()),
    ],
)
def test_delete_and_its_confirmation_parse(line: str, expected: Command) -> None:
    assert parse_line(line) == expected


@pytest.mark.parametrize(
    "line",
    ["/delete 0", "/delete -1", "/delete x", "/delete 1 2", f"/delete {MAX_DELETE_BACK + 1}",
     "/delete \u0661", "/delete " + "9" * 4000, "/yes please"],
)  # fmt: skip
def test_bad_delete_lines_say_how(line: str) -> None:
    with pytest.raises(UsageError, match=r"usage: /delete \[N\]|takes no arguments"):
        parse_line(line)


@given(st.text(max_size=30))
def test_any_delete_line_parses_or_raises_usage_error(rest: str) -> None:
    try:
        command = parse_line("/delete " + rest)
    except UsageError:
        return
    assert isinstance(command, Delete)
    assert command.back is None or 1 <= command.back <= MAX_DELETE_BACK


def test_help_shows_delete_and_yes() -> None:
    assert "/delete [N]" in HELP_TEXT and "/yes" in HELP_TEXT
