"""The view model: marks, lines, the conversation list, reports."""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from meshchat.node import LinkInfo
from meshchat.store.records import Conversation, Message, MessageState
from meshchat.tui.view import (
    ASCII_STATE_SYMBOLS,
    STATE_SYMBOLS,
    ConvEntry,
    Note,
    clock,
    conversation_entries,
    entry_markup,
    gap_markup,
    header_markup,
    id_text,
    message_markup,
    neighbour_markup,
    note_markup,
    printable,
    short_id,
    state_mark,
    step,
    timeline,
    who_text,
)

NOON = int(datetime(2026, 3, 1, 12, 0, tzinfo=UTC).timestamp() * 1000)
BOB = bytes.fromhex("e66d886b10cca9c55724856d102baf92")
CAROL = bytes.fromhex("0badcafe" * 4)


def message(
    text: str = "hi",
    *,
    outgoing: bool = True,
    state: MessageState = MessageState.QUEUED,
    created: int = NOON,
    updated: int = NOON,
    row: int = 1,
    name: str = "bob",
    held: bool = False,
    late: bool = False,
    missing: int = 0,
) -> Message:
    return Message(
        row,
        "dm:" + BOB.hex(),
        bytes([row]) * 16,
        outgoing,
        BOB,
        name,
        text,
        created,
        state if outgoing else MessageState.RECEIVED,
        updated,
        order_ms=None if held else created,
        late=late,
        missing=missing,
    )


def plain(markup: list[tuple[str, str]]) -> str:
    return "".join(text for _attr, text in markup)


@pytest.mark.parametrize(
    ("state", "symbol"),
    [
        (MessageState.QUEUED, "…"),
        (MessageState.SENT, "✓"),
        (MessageState.DELIVERED, "✓✓"),
        (MessageState.FAILED, "✗"),
    ],
)
def test_outgoing_lines_carry_their_state_mark(state: MessageState, symbol: str) -> None:
    line = message_markup(message("hello", state=state), "alice", NOON, tz=UTC)
    assert line[0] == ("time", "12:00 ")
    assert line[1] == (f"state_{state.value}", symbol.ljust(2) + " ")
    assert plain(line) == f"12:00 {symbol.ljust(2)} alice: hello"
    assert ("me", "alice") in line


def test_incoming_lines_have_a_blank_mark_and_the_sender() -> None:
    line = message_markup(message("yo", outgoing=False), "alice", NOON, tz=UTC)
    assert plain(line) == "12:00    bob: yo"
    assert ("them", "bob") in line


def test_every_state_has_a_distinct_mark_in_both_alphabets() -> None:
    outgoing = [s for s in MessageState if s is not MessageState.RECEIVED]
    for table in (STATE_SYMBOLS, ASCII_STATE_SYMBOLS):
        marks = [table[s] for s in outgoing]
        assert len(set(marks)) == len(marks)
        assert all(0 < len(m) <= 2 for m in marks)
    assert all(ord(c) < 128 for s in outgoing for c in ASCII_STATE_SYMBOLS[s])
    assert state_mark(MessageState.DELIVERED, unicode=False) == ("state_delivered", "++")


def test_clock_shows_the_date_only_for_other_days() -> None:
    assert clock(NOON + 61_000, NOON, UTC) == "12:01"
    assert clock(NOON - 86_400_000, NOON, UTC) == "02-28 12:00"


def test_notes_are_marked_and_errors_are_red() -> None:
    info = note_markup(Note(NOON, "joined #team"), NOON, tz=UTC)
    error = note_markup(Note(NOON, "no contact", error=True), NOON, tz=UTC)
    assert plain(info) == "12:00 -- joined #team"
    assert plain(error) == "12:00 !! no contact"
    assert {a for a, _ in error[1:]} == {"error"}
    assert {a for a, _ in info[1:]} == {"system"}


def test_timeline_orders_by_local_time_and_keeps_store_order_on_ties() -> None:
    a = message("a", row=1, created=NOON)
    b = message("b", row=2, outgoing=False, created=NOON - 999_999, updated=NOON + 10)
    c = message("c", row=3, created=NOON + 10)
    notes = [Note(NOON + 5, "between"), Note(NOON + 10, "after both")]
    got = timeline([a, b, c], notes)
    labels = [x.text for x in got]
    # b was written long ago by its sender's clock, but it arrived here at NOON+10.
    assert labels == ["a", "between", "b", "c", "after both"]


def test_timeline_keeps_the_causal_order_and_places_notes_by_local_time() -> None:
    # c was released from waiting and sorts before b, though stored after it.
    a = message("a", row=1, created=NOON, updated=NOON)
    c = message("c", row=3, outgoing=False, created=NOON + 1, updated=NOON + 30)
    b = message("b", row=2, outgoing=False, created=NOON + 2, updated=NOON + 10)
    held = message("h", row=4, outgoing=False, held=True, updated=NOON + 20)
    notes = [Note(NOON + 5, "n5"), Note(NOON + 25, "n25"), Note(NOON + 40, "n40")]
    got = [x.text for x in timeline([a, c, b, held], notes)]
    # messages are never re-sorted; a note never goes before an earlier note
    assert got == ["a", "n5", "c", "b", "h", "n25", "n40"]
    # a note written after every message arrived comes last
    got = [x.text for x in timeline([a, c, b], [Note(NOON + 35, "last")])]
    assert got == ["a", "c", "b", "last"]
    assert [x.text for x in timeline([a], [Note(NOON - 1, "first")])] == ["first", "a"]


def test_a_held_message_shows_what_it_waits_for_not_its_text() -> None:
    line = message_markup(
        message("answer: yes", outgoing=False, held=True, missing=2), "me", NOON, tz=UTC
    )
    assert plain(line) == "12:00    bob (waiting for 2 earlier messages)"
    assert "answer" not in plain(line)
    assert ("waiting", " (waiting for 2 earlier messages)") in line
    one = message_markup(message("x", outgoing=False, held=True, missing=1), "me", NOON, tz=UTC)
    assert plain(one).endswith("(waiting for 1 earlier message)")
    cycle = message_markup(message("x", outgoing=False, held=True), "me", NOON, tz=UTC)
    assert plain(cycle).endswith("(waiting for earlier messages)")


def test_late_messages_say_so_and_gaps_get_a_line_of_their_own() -> None:
    line = message_markup(message("old news", outgoing=False, late=True), "me", NOON, tz=UTC)
    assert plain(line) == "12:00    bob: old news  (arrived late)"
    assert line[-1] == ("late", "  (arrived late)")
    assert "arrived late" not in plain(message_markup(message("x"), "me", NOON, tz=UTC))
    gap = gap_markup(3)
    assert plain(gap).strip() == "~~ 3 earlier messages missing ~~"
    assert plain(gap_markup(1)).strip() == "~~ 1 earlier message missing ~~"
    assert {a for a, _ in gap[1:]} == {"gap"}


def test_printable_escapes_terminal_controls_and_bidi_overrides() -> None:
    assert printable("a\x1b[2Jb\u202ec\td\ne") == "a\\x1b[2Jb\\u202ec    d\ne"


@given(st.text(max_size=200))
def test_printable_leaves_no_control_characters(text: str) -> None:
    out = printable(text)
    assert all(
        ch == "\n" or unicodedata.category(ch) not in {"Cc", "Cf", "Cs", "Zl", "Zp"} for ch in out
    )


def test_names_and_texts_from_others_are_made_printable() -> None:
    line = message_markup(message("x\x1b]0;pwned\x07", outgoing=False, name="e\x1bvil"), "a", NOON)
    assert "\x1b" not in plain(line) and "\x07" not in plain(line)


NAMES = st.text(max_size=40)


@given(NAMES, st.text(max_size=100))
@example("\b\b\nalice", "hi\r\n12:00 alice: forged")
def test_a_senders_name_stays_on_its_line(name: str, text: str) -> None:
    line = message_markup(message(text, outgoing=False, name="~" + name), "me", NOON)
    sender = line[2][1]
    assert sender.startswith("~")  # the stranger mark cannot be erased or moved
    assert "\n" not in sender and all(unicodedata.category(ch)[0] != "C" for ch in sender)
    assert all(ch == "\n" or unicodedata.category(ch)[0] != "C" for ch in plain(line))


def test_further_lines_of_a_message_are_marked_as_such() -> None:
    forged = "hi\nalice: the new passphrase is 1234"
    line = message_markup(message(forged, outgoing=False, name="~mallory"), "me", NOON)
    assert line[-1][1] == ": hi\n  \u21b3 alice: the new passphrase is 1234"
    ascii_line = message_markup(message(forged, outgoing=False), "me", NOON, unicode=False)
    assert ascii_line[-1][1].split("\n")[1].startswith("  > alice")


@given(NAMES)
def test_names_in_the_panes_are_one_clean_line(name: str) -> None:
    shown = [
        plain(neighbour_markup(LinkInfo("lan:1", "lan", BOB, name, "x", NOON))),
        plain(header_markup(name, BOB, 1)),
        id_text(name, BOB, "1 2", "mc1:x").split("\n")[0],
        *(e.label for e in conversation_entries([], {BOB: name}, [])),
    ]
    for text in shown:
        assert all(unicodedata.category(ch)[0] != "C" for ch in text), text


def test_who_shows_no_line_a_stranger_forged() -> None:
    forged = "x\n  lan  0badcafe  alice (contact)"
    report = who_text([], {CAROL: forged}, {BOB: "alice"})
    lines = report.split("\n")
    assert len(lines) == 4  # headers, "none yet", one announced peer
    assert lines[-1].startswith(f"  {short_id(CAROL)}  ~x")
    assert not any(line.strip().startswith("lan") for line in lines)


def test_conversation_list_order_and_unread_counts() -> None:
    summaries = [
        Conversation("dm:" + BOB.hex(), NOON, 2, "hi"),
        Conversation("#zeta", NOON, 1, "x"),
        Conversation("dm:" + CAROL.hex(), NOON, 3, "who is this"),
    ]
    entries = conversation_entries(["#zeta", "#alpha", "#mesh"], {BOB: "Bob"}, summaries)
    assert entries == [
        ConvEntry("#mesh", "#mesh", 0),
        ConvEntry("#alpha", "#alpha", 0),
        ConvEntry("#zeta", "#zeta", 1),
        ConvEntry("dm:" + CAROL.hex(), "?0badcafe", 3),
        ConvEntry("dm:" + BOB.hex(), "Bob", 2),
    ]


def test_mesh_is_listed_even_before_the_store_reports_it() -> None:
    assert [e.key for e in conversation_entries([], {}, [])] == ["#mesh"]


def test_entry_markup_points_at_the_open_conversation() -> None:
    entry = ConvEntry("dm:ab", "bob", 4)
    assert plain(entry_markup(entry, current=True)) == "▸ bob (4)"
    assert plain(entry_markup(ConvEntry("#mesh", "#mesh"), current=False)) == "  #mesh"
    assert ("unread", " (4)") in entry_markup(entry, current=False)


def test_step_wraps_around() -> None:
    entries = [ConvEntry(k, k) for k in ("#mesh", "#a", "dm:1")]
    assert step(entries, "#mesh", 1) == "#a"
    assert step(entries, "dm:1", 1) == "#mesh"
    assert step(entries, "#mesh", -1) == "dm:1"
    assert step(entries, "gone", 1) == "#a"
    assert step([], "#mesh", 1) == "#mesh"


def link(node_id: bytes, name: str, transport: str = "lan") -> LinkInfo:
    return LinkInfo("lan:1", transport, node_id, name, "127.0.0.1:4000", NOON)


def test_neighbour_line_shows_transport_short_id_and_name() -> None:
    line = neighbour_markup(link(BOB, "bob"))
    assert plain(line) == "lan e66d886b ~bob"  # a stranger: the name is theirs to choose
    assert plain(neighbour_markup(link(BOB, "bob"), {BOB: "Bobby"})) == "lan e66d886b Bobby"
    marks = {"b\u043eb": "bob"}
    shown = plain(neighbour_markup(link(BOB, "x"), {BOB: "b\u043eb"}, marks))
    assert shown == "lan e66d886b b\u043eb (!! looks like bob)"
    assert line[0][0] == "medium_lan"
    assert neighbour_markup(link(BOB, "", "ble"))[0] == ("medium_ble", "ble ")
    assert neighbour_markup(link(BOB, "", "relay"))[0][0] == "medium_other"


def test_header_counts_links() -> None:
    assert plain(header_markup("alice", BOB, 1)) == " meshchat  alice e66d886b  1 link "
    assert plain(header_markup("alice", BOB, 0)).endswith(" 0 links ")
    assert header_markup("alice", BOB, 0)[-1][0] == "header_nolinks"


def test_who_lists_links_then_peers_further_away() -> None:
    report = who_text([link(BOB, "bob")], {BOB: "bob", CAROL: "carol"}, {BOB: "Bobby"})
    assert report.splitlines() == [
        "neighbours (1):",
        "  lan  e66d886b  Bobby (contact)  127.0.0.1:4000",
        "announced peers further away (1):",
        "  0badcafe  ~carol",
    ]
    assert "none yet" in who_text([], {}, {})


def test_id_report_has_everything_needed_to_add_us() -> None:
    text = id_text("alice", BOB, "12345 67890", "mc1:xyz")
    assert "e66d886b" in text and BOB.hex() in text
    assert "fingerprint: 12345 67890" in text and "card:        mc1:xyz" in text
    assert short_id(BOB) == "e66d886b"


def test_the_header_says_in_one_line_what_status_says() -> None:
    from meshchat.transports.base import TransportStatus

    statuses = [
        TransportStatus("lan", True, "2 links"),
        TransportStatus("relay", False, reason="connection refused by 127.0.0.1:1883\x1b[2J"),
        TransportStatus("ble", False),
    ]
    text = plain(header_markup("alice", BOB, 2, statuses, gateway=True))
    assert text.startswith(" meshchat  alice e66d886b  2 links ")
    assert " lan up" in text and " ble down" in text and text.endswith(" gateway")
    assert " relay down (connection refused by 127.0.0.1…)" in text
    assert "\x1b" not in text and "\n" not in text
    assert "gateway" not in plain(header_markup("alice", BOB, 2, statuses))


def test_the_header_counts_queued_carried_and_gateways_heard() -> None:
    text = plain(header_markup("alice", BOB, 1, queued=2, carried=5, heard=1))
    assert text.endswith(" 1 link  via 1 gateway  2 queued 5 carried")
    markup = header_markup("alice", BOB, 1, queued=0, carried=0, heard=3)
    assert plain(markup).endswith(" via 3 gateways  0 queued 0 carried")
    assert ("header_dim", "  0 queued") in markup  # nothing waiting: not highlighted
    assert ("header_nolinks", "  2 queued") in header_markup("a", BOB, 1, queued=2)
    # this node a gateway: the gateways it heard are not counted
    assert "via" not in plain(header_markup("alice", BOB, 1, gateway=True, heard=2))


def test_the_header_names_why_bluetooth_is_not_in_use() -> None:
    from meshchat.transports.base import TransportStatus

    none = TransportStatus("ble", False, reason="no Bluetooth adapter: ...", state="no adapter")
    text = plain(header_markup("alice", BOB, 0, [TransportStatus("lan", True), none]))
    assert text.endswith(" lan up ble: no adapter")


def test_the_header_shows_the_history_sync_with_my_devices() -> None:
    text = plain(header_markup("alice", BOB, 1, sync="syncing, 1,200 left"))
    assert text.endswith("  syncing, 1,200 left")
    assert header_markup("alice", BOB, 1, sync="syncing, 3 left")[-1][0] == "header_nolinks"
    assert plain(header_markup("alice", BOB, 1)).endswith(" 1 link ")  # nothing before a sync
