"""One command's help (``/help msg``): its lines of the full help, and its other spellings."""

from __future__ import annotations

from meshchat.tui.commands import _ALIASES, HELP_TEXT

__all__ = ["help_for"]


def help_for(topic: str) -> str:
    """The lines of :data:`HELP_TEXT` about the command ``topic`` (its canonical name), and
    its other spellings."""
    lines = HELP_TEXT.splitlines()
    out: list[str] = []
    taking = False
    for line in lines:
        if line.startswith("  /"):
            taking = line.split()[0] == "/" + topic or (topic == "quit" and "/quit" in line)
        elif not line.startswith("      "):
            taking = False
        if taking:
            out.append(line)
    if topic == "yes":
        out = ["  /yes                         confirms the /delete just asked (/help delete)"]
    spellings = sorted(k for k, v in _ALIASES.items() if v == topic and k != topic)
    if spellings:
        out.append("  also: " + ", ".join("/" + k for k in spellings))
    return "\n".join(out) if out else f"/{topic}: see /help"
