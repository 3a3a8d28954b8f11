"""The chat screen's urwid widgets: panes, the input line, the palette and the key bindings.

The screen knows nothing of nodes or stores. The controller fills it with markup from
:mod:`meshchat.tui.view` and hears back through three callbacks: a submitted input line, a
request to step to another conversation, and a request to open one from the list.

Layout::

    header: meshchat | our name | short id | links                       key hints
    +- Conversations -+- #mesh --------------------------+- Neighbours ---+
    | > #mesh         | 14:02 ✓✓ alice: hello            | lan  1a2b3c4d  |
    |   bob (2)       | 14:03    bob: hi                 |                |
    +-----------------+----------------------------------+----------------+
    [#mesh]> input line

Focus moves with Tab / Shift-Tab through input, conversations, messages and neighbours;
typing a character while another pane has the focus goes to the input line. The neighbours
pane is left out when the terminal is narrower than :data:`WIDE_COLS`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import urwid

from meshchat.tui.view import ConvEntry, Markup, entry_markup

__all__ = [
    "PALETTE",
    "WIDE_COLS",
    "ChatScreen",
    "ConvItem",
    "InputLine",
    "MessageLine",
    "ScrollList",
]

#: Narrower terminals do not get the neighbours pane (the header still counts links).
WIDE_COLS = 110
CONV_COLS = 22
NEIGHBOUR_COLS = 30
HISTORY_SIZE = 100
#: How many leading markup pairs of a message line form its margin (time and mark).
MARGIN_PARTS = 2
MAX_MESSAGE_LINES = 1000

PALETTE: list[tuple[str, str, str] | tuple[str, str, str, str]] = [
    ("header", "white,bold", "dark blue"),
    ("header_title", "black,bold", "light cyan"),
    ("header_dim", "light gray", "dark blue"),
    ("header_links", "light green,bold", "dark blue"),
    ("header_nolinks", "yellow,bold", "dark blue"),
    ("header_hint", "light gray", "dark blue"),
    ("title", "light gray", "default"),
    ("title_focus", "light cyan,bold", "default"),
    ("conv", "light gray", "default"),
    ("conv_current", "white,bold", "default"),
    ("conv_focus", "black", "light cyan"),
    ("unread", "yellow,bold", "default"),
    ("time", "dark gray", "default"),
    ("me", "light green,bold", "default"),
    ("them", "light cyan,bold", "default"),
    ("text", "default", "default"),
    ("state_queued", "yellow", "default"),
    ("state_sent", "light gray", "default"),
    ("state_delivered", "light green,bold", "default"),
    ("state_failed", "light red,bold", "default"),
    ("state_received", "default", "default"),
    ("system", "dark cyan", "default"),
    ("gap", "yellow", "default"),
    ("late", "brown", "default"),
    ("waiting", "dark gray", "default"),
    ("error", "light red,bold", "default"),
    ("prompt", "light green,bold", "default"),
    ("input", "default", "default"),
    ("node_id", "light gray", "default"),
    ("medium_lan", "light blue,bold", "default"),
    ("medium_ble", "light magenta,bold", "default"),
    ("medium_mem", "brown,bold", "default"),
    ("medium_other", "light gray,bold", "default"),
    ("transport_up", "light green", "default"),
    ("transport_down", "light red", "default"),
    ("dim", "dark gray", "default"),
    ("form", "default", "default"),
    ("form_title", "light cyan,bold", "default"),
    ("form_label", "light gray", "default"),
    ("form_field", "white", "dark gray"),
    ("form_field_focus", "black", "light gray"),
    ("form_error", "light red,bold", "default"),
    ("form_busy", "yellow,bold", "default"),
]

_CONV_FOCUS = {"conv": "conv_focus", "conv_current": "conv_focus", "unread": "conv_focus"}
_PANES = ("input", "conversations", "messages", "neighbours")


class ScrollList(urwid.ListBox[int]):
    """A list box that remembers its last size, so keys can scroll it when it has no focus."""

    def __init__(self, *, follow_end: bool = False) -> None:
        # Any: urwid types list items as a flow-widget protocol that its own widgets do not name.
        self.walker: urwid.SimpleFocusListWalker[Any] = urwid.SimpleFocusListWalker(
            [], follow_end=follow_end
        )
        super().__init__(self.walker)
        self.last_size: tuple[int, int] | None = None

    def render(self, size: tuple[int, int], focus: bool = False) -> urwid.Canvas:  # type: ignore[override]
        self.last_size = size
        return super().render(size, focus)

    def scroll(self, key: str) -> None:
        """Apply a paging key as if this list had the focus."""
        if self.last_size is not None and len(self.walker):
            self.keypress(self.last_size, key)

    def at_end(self) -> bool:
        return not len(self.walker) or self.walker.focus == len(self.walker) - 1

    def to_end(self) -> None:
        if len(self.walker):
            self.walker.set_focus(len(self.walker) - 1)


class ConvItem(urwid.WidgetWrap[urwid.AttrMap[urwid.Text]]):
    """One selectable line of the conversation list; Enter opens it."""

    def __init__(self, entry: ConvEntry, current: bool, on_open: Callable[[str], None]) -> None:
        self.key = entry.key
        self._on_open = on_open
        text = urwid.Text(list(entry_markup(entry, current)), wrap="ellipsis")
        super().__init__(urwid.AttrMap(text, None, focus_map=_CONV_FOCUS))

    def selectable(self) -> bool:
        return True

    def keypress(self, size: tuple[int], key: str) -> str | None:  # type: ignore[override]
        if key in {"enter", " "}:
            self._on_open(self.key)
            return None
        return key


class InputLine(urwid.Edit):
    """The input line: Enter submits, Up/Down walk the history of submitted lines."""

    def __init__(self, on_submit: Callable[[str], None]) -> None:
        super().__init__(("prompt", "> "))
        self._on_submit = on_submit
        self.history: list[str] = []
        self._cursor = 0
        self._draft = ""

    def keypress(self, size: tuple[int], key: str) -> str | None:  # type: ignore[override]
        if key == "enter":
            line = self.edit_text
            self.set_edit_text("")
            self._remember(line)
            self._on_submit(line)
            return None
        if key in {"up", "down"}:
            self._walk(-1 if key == "up" else 1)
            return None
        return super().keypress(size, key)

    def _remember(self, line: str) -> None:
        # A private channel's passphrase is not kept around for Up to show again.
        if line.strip() and not _holds_secret(line):
            if not self.history or self.history[-1] != line:
                self.history.append(line)
            del self.history[:-HISTORY_SIZE]
        self._cursor = len(self.history)
        self._draft = ""

    def _walk(self, delta: int) -> None:
        if not self.history:
            return
        if self._cursor == len(self.history):
            self._draft = self.edit_text
        self._cursor = max(0, min(len(self.history), self._cursor + delta))
        text = self._draft if self._cursor == len(self.history) else self.history[self._cursor]
        self.set_edit_text(text)
        self.set_edit_pos(len(text))


class MessageLine(urwid.WidgetWrap[urwid.Columns]):
    """A message or note: time and mark in a margin, the text wrapped beside it."""

    def __init__(self, markup: Markup) -> None:
        self.margin = urwid.Text("")
        self.body = urwid.Text("")
        super().__init__(urwid.Columns([("pack", self.margin), self.body]))
        self.set_markup(markup)

    def set_markup(self, markup: Markup) -> None:
        self.margin.set_text(list(markup[:MARGIN_PARTS]))
        self.body.set_text(list(markup[MARGIN_PARTS:]) or "")
        self._w.contents[0] = (self.margin, self._w.options("given", self.margin.pack()[0]))


def _holds_secret(line: str) -> bool:
    words = line.strip().split()
    return len(words) > 2 and words[0].lower() in {"/join", "/j"}


def _box(widget: urwid.Widget, title: str) -> urwid.LineBox[urwid.Widget]:
    inner = urwid.Padding(widget, left=1, right=0)
    return urwid.LineBox(inner, title=("title", f" {title} "), title_align="left")


class ChatScreen(urwid.WidgetWrap["urwid.Frame[Any, Any, Any]"]):
    """The whole chat screen; see the module docstring for its layout and keys."""

    def __init__(
        self,
        on_submit: Callable[[str], None],
        on_step: Callable[[int], None],
        on_open: Callable[[str], None],
        on_quit: Callable[[], None],
    ) -> None:
        self._on_step = on_step
        self._on_open = on_open
        self._on_quit = on_quit
        self.header = urwid.Text("")
        hint = urwid.Text(("header_hint", "Tab panes  Ctrl-N/P conversations  /help "), "right")
        header = urwid.AttrMap(
            urwid.Columns([self.header, ("pack", hint)], dividechars=1), "header"
        )
        self.conversations = ScrollList()
        self.messages = ScrollList(follow_end=True)
        self.neighbours = ScrollList()
        self.transports = urwid.Text("")
        self.input = InputLine(on_submit)
        self._titles = {
            "conversations": "Conversations",
            "messages": "",
            "neighbours": "Neighbours",
        }
        self._boxes = {
            "conversations": _box(self.conversations, "Conversations"),
            "messages": _box(self.messages, ""),
            "neighbours": _box(
                urwid.Pile([self.neighbours, ("pack", self.transports)]), "Neighbours"
            ),
        }
        self._columns = urwid.Columns([])
        self._ready = False
        self._wide = False
        self._set_wide(True)
        footer = urwid.AttrMap(self.input, "input")
        frame = urwid.Frame(self._columns, header=header, footer=footer, focus_part="footer")
        super().__init__(frame)
        self._ready = True
        self.focus_pane("input")

    # -- layout ------------------------------------------------------------------------------

    def _set_wide(self, wide: bool) -> None:
        if wide == self._wide and self._ready:
            return
        focus = self.pane() if self._ready else "input"
        self._wide = wide
        boxes = self._boxes
        cols = self._columns
        contents: list[Any] = [
            (boxes["conversations"], cols.options("given", CONV_COLS)),
            (boxes["messages"], cols.options("weight", 1)),
        ]
        if wide:
            contents.append((boxes["neighbours"], cols.options("given", NEIGHBOUR_COLS)))
        cols.contents = contents
        if focus == "neighbours" and not wide:
            focus = "input"
        if self._ready:
            self.focus_pane(focus)

    def render(self, size: tuple[int, int], focus: bool = False) -> urwid.Canvas:  # type: ignore[override]
        self._set_wide(size[0] >= WIDE_COLS)
        return super().render(size, focus)

    def panes(self) -> list[str]:
        return [p for p in _PANES if self._wide or p != "neighbours"]

    def pane(self) -> str:
        """The pane that has the focus."""
        frame = self._w
        if frame.focus_position == "footer":
            return "input"
        return _PANES[1 + self._columns.focus_position]

    def focus_pane(self, pane: str) -> None:
        frame = self._w
        if pane == "input":
            frame.focus_position = "footer"
        else:
            frame.focus_position = "body"
            self._columns.focus_position = _PANES.index(pane) - 1
        self._refresh_titles()

    def _refresh_titles(self) -> None:
        current = self.pane()
        for pane, box in self._boxes.items():
            attr = "title_focus" if pane == current else "title"
            box.set_title((attr, f" {self._titles[pane]} "))

    # -- content -----------------------------------------------------------------------------

    def set_header(self, markup: Markup) -> None:
        self.header.set_text(list(markup))

    def set_conversation_title(self, title: str) -> None:
        self._titles["messages"] = title
        self._refresh_titles()

    def set_prompt(self, label: str) -> None:
        self.input.set_caption(("prompt", f"[{label}]> "))

    def set_conversations(self, entries: Sequence[ConvEntry], current: str) -> None:
        """Replace the list, keeping the list's cursor on the same conversation."""
        walker = self.conversations.walker
        focused = walker[walker.focus].key if len(walker) and walker.focus is not None else current
        items = [ConvItem(e, e.key == current, self._on_open) for e in entries]
        walker[:] = items
        keys = [e.key for e in entries]
        if focused in keys:
            walker.set_focus(keys.index(focused))

    def set_messages(self, lines: Sequence[Markup], focus: int | None = None) -> list[MessageLine]:
        """Show these lines (oldest first) scrolled to the newest, or to line ``focus`` (an
        index into ``lines``, for a pane the user had scrolled up); returns their widgets."""
        cut = max(0, len(lines) - MAX_MESSAGE_LINES)
        texts = [MessageLine(m) for m in lines[cut:]]
        self.messages.walker[:] = texts
        if focus is None or focus - cut not in range(len(texts)):
            self.messages.to_end()
        else:
            self.messages.walker.set_focus(focus - cut)
        return texts

    def focused_message(self) -> MessageLine | None:
        """The message pane's focused line, if the pane is scrolled away from its end."""
        focus = self.messages.walker.focus
        if focus is None or self.messages.at_end():
            return None
        widget = self.messages.walker[focus]
        return widget if isinstance(widget, MessageLine) else None

    def add_message(self, markup: Markup) -> MessageLine:
        """Append a line; the pane follows it unless the user scrolled up."""
        walker = self.messages.walker
        text = MessageLine(markup)
        follow = self.messages.at_end()
        walker.append(text)
        if len(walker) > MAX_MESSAGE_LINES:
            del walker[: len(walker) - MAX_MESSAGE_LINES]
        if follow:
            self.messages.to_end()
        return text

    def set_neighbours(self, lines: Sequence[Markup], transports: Markup) -> None:
        if lines:
            self.neighbours.walker[:] = [urwid.Text(list(m), wrap="ellipsis") for m in lines]
        else:
            self.neighbours.walker[:] = [urwid.Text(("dim", "no neighbours yet"))]
        self.transports.set_text(list(transports) or "")

    # -- keys --------------------------------------------------------------------------------

    def keypress(self, size: tuple[int, int], key: str) -> str | None:  # type: ignore[override]
        if key in {"ctrl c", "ctrl q"}:
            self._on_quit()
            return None
        if key in {"tab", "shift tab"}:
            panes = self.panes()
            index = panes.index(self.pane()) if self.pane() in panes else 0
            self.focus_pane(panes[(index + (1 if key == "tab" else -1)) % len(panes)])
            return None
        if key in {"ctrl n", "ctrl p"}:
            self._on_step(1 if key == "ctrl n" else -1)
            return None
        if key in {"page up", "page down"}:
            self.messages.scroll(key)
            return None
        if self.pane() != "input" and len(key) == 1 and key.isprintable() and key != " ":
            self.focus_pane("input")
        result: str | None = super().keypress(size, key)
        return result
