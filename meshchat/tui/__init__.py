"""The terminal face of meshchat: urwid widgets on the node's own asyncio loop.

``commands`` (the input line's grammar) and ``view`` (what the panes show) are pure;
``widgets`` lays the screen out; ``controller`` binds a running node to it; ``onboarding``
makes or unlocks the identity; ``app`` puts them together for ``meshchat run``.
"""

from __future__ import annotations

from meshchat.tui.app import run_tui

__all__ = ["run_tui"]
