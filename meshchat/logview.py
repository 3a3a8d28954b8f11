"""A conversation's causal history as the faces show it: positions, markers, picked messages.

Theory of operation
-------------------
The store hands a conversation out in its shown order (:meth:`Store.history`): the shown
messages sorted by ``(order_ms, msg_id)``, then the *held* ones (``order_ms`` is None: some
blocking parent has not arrived yet). The faces (``meshchat log``, its ``--json``, the chat
screen) never re-sort it; they add what the order alone does not say:

===========  ============================================  ===============================
marker       when                                          shown as
===========  ============================================  ===============================
``gap``      a shown message released with ``missing``     a line before it: "2 earlier
             parents (held until the hold ran out, or       messages missing"
             pushed out by a flood of held messages)
``late``     placed at the end because it claimed a time   "arrived late" after it
             before messages already shown
``waiting``  held: ``missing`` parents not here yet        "waiting for 1 earlier message"
===========  ============================================  ===============================

A held message's text is not shown, only its sender and what it waits for. What a message
says depends on what it answers: "yes, do it" shown before the question it answers (which
is still on its way) misleads, and once shown it cannot be taken back to its place. The wait
is bounded (:data:`meshchat.causal.HOLD_MS`, and :data:`~meshchat.causal.MAX_HELD` per
conversation), after which it is shown in its place with a gap marker. ``--json`` keeps the
exact stored values, the held message's text included, marked ``"history": "held"``.

Messages are picked by id prefix (``meshchat delete``): a prefix names a message only when
exactly one message of the conversation starts with it; otherwise :class:`UsageError` says
which messages it matches, so the user can give more digits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from meshchat.errors import UsageError
from meshchat.store.records import Message

__all__ = [
    "MAX_SUGGESTED",
    "SHORT_ID",
    "Entry",
    "entries",
    "entry_json",
    "gap_text",
    "pick",
    "plural",
    "waiting_text",
]

#: How many matching messages an ambiguous prefix's error names.
MAX_SUGGESTED = 5
#: Hex digits of a message id shown to humans (``log``, the chat screen's confirmations).
SHORT_ID = 8


def plural(count: int, word: str) -> str:
    """``1 earlier message``, ``2 earlier messages``."""
    return f"{count} {word}" + ("" if count == 1 else "s")


@dataclass(frozen=True, slots=True)
class Entry:
    """One message of a listing with what the faces show about its place.

    ``position`` counts the shown messages of the listing from 0 (None while held); ``gap``
    is how many earlier messages are missing before a shown one, ``waiting`` how many a held
    one waits for (0 when what it waits for is held itself, or is a cycle).
    """

    message: Message
    position: int | None
    gap: int
    waiting: int

    @property
    def held(self) -> bool:
        return self.position is None

    @property
    def late(self) -> bool:
        return self.message.late and not self.held

    @property
    def markers(self) -> tuple[str, ...]:
        """The marker kinds, in the order shown: ``gap``, ``late``, ``waiting``."""
        kinds = []
        if self.gap:
            kinds.append("gap")
        if self.late:
            kinds.append("late")
        if self.held:
            kinds.append("waiting")
        return tuple(kinds)


def entries(messages: Sequence[Message]) -> list[Entry]:
    """The entries of a listing in the store's order (shown ones first, then held ones)."""
    out: list[Entry] = []
    position = 0
    for message in messages:
        if message.order_ms is None:
            out.append(Entry(message, None, 0, max(0, message.missing)))
        else:
            out.append(Entry(message, position, max(0, message.missing), 0))
            position += 1
    return out


def gap_text(count: int) -> str:
    """The gap marker: ``2 earlier messages missing``."""
    return plural(count, "earlier message") + " missing"


def waiting_text(count: int) -> str:
    """What a held message shows instead of its text."""
    if count <= 0:
        return "waiting for earlier messages"
    return "waiting for " + plural(count, "earlier message")


def entry_json(entry: Entry, base: dict[str, Any]) -> dict[str, Any]:
    """``base`` (a message's :func:`~meshchat.control.message_json`) with its place in the
    history: ``history`` ("shown" or "held"), ``position``, ``order_ms``, ``parents`` and
    ``loose`` (hex), ``late``, ``missing`` and ``markers`` (kinds, see the module table)."""
    message = entry.message
    return {
        **base,
        "history": "held" if entry.held else "shown",
        "position": entry.position,
        "order_ms": message.order_ms,
        "parents": [p.hex() for p in message.parents],
        "loose": [p.hex() for p in message.loose],
        "late": entry.late,
        "missing": entry.waiting if entry.held else entry.gap,
        "markers": list(entry.markers),
    }


def _prefix(text: str) -> str:
    prefix = text.strip().lower()
    if not prefix or any(ch not in "0123456789abcdef" for ch in prefix):
        raise UsageError(f"{text!r} is not a message id: give hex digits (see 'meshchat log')")
    return prefix


def pick(messages: Sequence[Message], prefixes: Sequence[str]) -> list[Message]:
    """The messages the hex ``prefixes`` name, in the order given, each once.

    Raises :class:`UsageError` for a prefix that is not hex, that matches no message, or that
    matches several (naming up to :data:`MAX_SUGGESTED` of them).
    """
    by_hex = {m.msg_id.hex(): m for m in messages}
    picked: dict[bytes, Message] = {}
    for text in prefixes:
        prefix = _prefix(text)
        matches = [m for h, m in by_hex.items() if h.startswith(prefix)]
        if not matches:
            raise UsageError(f"no message {prefix} in this conversation")
        if len(matches) > 1:
            digits = max(SHORT_ID, len(prefix) + 2)
            shown = ", ".join(m.msg_id.hex()[:digits] for m in matches[:MAX_SUGGESTED])
            more = ", ..." if len(matches) > MAX_SUGGESTED else ""
            raise UsageError(
                f"{prefix} matches {len(matches)} messages ({shown}{more}): give more digits"
            )
        picked.setdefault(matches[0].msg_id, matches[0])
    return list(picked.values())
