"""Text other people chose (names, messages, group names), made safe to show to a human.

Theory of operation
-------------------
A terminal obeys the characters it is sent: a backspace erases the ``~`` that marks a
stranger, a carriage return or line feed starts a forged line "from alice", an escape sequence
(CSI, OSC) moves the cursor, erases lines or sets the window title, and a bidirectional
override (U+202E) shows a line in another order than it is stored. Zero-width and other
invisible characters make two different names look the same. So every peer-controlled string
passes through this module before it reaches a screen or a log line:

==========================================  ============================================
character                                   shown as
==========================================  ============================================
C0 controls, DEL, C1 controls (``Cc``)      ``\\x1b``, ``\\x07``, ``\\x9b`` ... (visible)
format characters (``Cf``): bidi embedding,  ``\\u202e``, ``\\u200b``, ``\\U000e0041`` ...
overrides and isolates, marks, zero-width
space/joiners, word joiner, BOM, tags
line and paragraph separators (``Zl``,       escaped the same way
``Zp``), surrogates, private use,
unassigned code points
other invisible (default-ignorable) code     escaped the same way
points: U+034F, Hangul fillers, Khmer and
Mongolian invisibles, U+2800
variation selectors U+FE0E, U+FE0F           dropped (emoji presentation, harmless)
more than :data:`MAX_MARKS` combining marks  the rest dropped (no "zalgo" text spilling
on one character                             over the lines above and below)
==========================================  ============================================

:func:`safe_line` escapes newlines and tabs too (a name, a title, a log record: one line).
:func:`safe_text` keeps newlines (a multi-line message in the chat screen, which indents its
further lines under the sender) and turns a tab into four spaces. Escapes are plain ASCII, so
what is shown is printable by construction and says that something odd was there. ``--json``
output is not passed through here: it keeps the exact values (JSON escapes control characters
itself).

:class:`SafeFormatter` applies :func:`safe_line` to every log message (a peer's name or text in a
log record cannot forge a record either) and :func:`safe_text` to tracebacks.
"""

from __future__ import annotations

import logging
import unicodedata

__all__ = [
    "MAX_MARKS",
    "SafeFormatter",
    "is_hidden",
    "safe_line",
    "safe_text",
]

#: Combining marks kept on one base character; more are dropped.
MAX_MARKS = 4

_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
#: Default-ignorable code points (Unicode DerivedCoreProperties) outside the ``C*`` categories,
#: and the blank Braille pattern: they draw nothing.
_INVISIBLE_RANGES = (
    (0x034F, 0x034F),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x2800, 0x2800),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0D),
    (0xFFA0, 0xFFA0),
    (0x1D173, 0x1D17A),
    (0xE0100, 0xE01EF),
)
_DROPPED = frozenset({"\ufe0e", "\ufe0f"})
_MARK_CATEGORIES = frozenset({"Mn", "Me"})


def is_hidden(ch: str) -> bool:
    """True for a character a terminal would obey or draw as nothing (see the table above)."""
    if unicodedata.category(ch) in _HIDDEN_CATEGORIES:
        return True
    code = ord(ch)
    return any(low <= code <= high for low, high in _INVISIBLE_RANGES)


def _escape(ch: str) -> str:
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def _clean(text: str, keep_newlines: bool) -> str:
    plain = text.replace("\n", "") if keep_newlines else text
    if plain.isascii() and plain.isprintable():
        return text  # the common case: printable ASCII needs nothing
    out: list[str] = []
    marks = 0
    for ch in text:
        if keep_newlines and ch == "\n":
            out.append(ch)
            marks = 0
        elif keep_newlines and ch == "\t":
            out.append("    ")
            marks = 0
        elif ch in _DROPPED:
            continue
        elif is_hidden(ch):
            out.append(_escape(ch))
            marks = 0
        elif unicodedata.category(ch) in _MARK_CATEGORIES:
            marks += 1
            if marks <= MAX_MARKS:
                out.append(ch)
        else:
            out.append(ch)
            marks = 0
    return "".join(out)


def safe_line(text: str) -> str:
    """``text`` on one line, every control, format and invisible character escaped."""
    return _clean(text, keep_newlines=False)


def safe_text(text: str) -> str:
    """Like :func:`safe_line`, but newlines stay and a tab becomes four spaces."""
    return _clean(text, keep_newlines=True)


class SafeFormatter(logging.Formatter):
    """A log formatter whose records cannot carry terminal controls or forge a line.

    The message (with its arguments, which may be a peer's name or text) is one line; a
    traceback keeps its lines but nothing else that a terminal would obey.
    """

    def formatMessage(self, record: logging.LogRecord) -> str:
        return safe_line(super().formatMessage(record))

    def formatException(self, ei: logging._SysExcInfoType) -> str:
        return safe_text(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return safe_text(super().formatStack(stack_info))
