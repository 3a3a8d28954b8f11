"""``meshchat run``: the terminal UI, on the same asyncio loop as the node.

Theory of operation. :func:`run_tui` runs one coroutine with :func:`asyncio.run`. It starts a
urwid :class:`~urwid.MainLoop` on an :class:`~urwid.AsyncioEventLoop` wrapping the running
loop, so terminal input, redraws, the node's transports and its worker all share one thread.
Then, in order:

1. a fresh home gets an identity (:func:`~meshchat.tui.onboarding.create_identity_flow`);
2. the node starts with the passphrase from ``$MESHCHAT_PASSPHRASE``, the one just chosen, or
   the unlock form; a wrong passphrase shows the form again with the error;
3. the chat screen runs until ``/quit``, Ctrl-C, Ctrl-Q, SIGTERM or SIGHUP;
4. the node stops (transports, control socket, store) and the terminal is restored.

The terminal's signal keys are switched off while the UI runs, so Ctrl-C and Ctrl-Q arrive as
keys. Log records go to ``tui.log`` in the home (rotated), never to the screen. Errors that
stop the UI (say, another node already running for this home) propagate after the terminal is
restored, for the command line to print.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import logging.handlers
import os
import signal

import urwid

from meshchat.app import NodeSettings, keep_name, running_node
from meshchat.display import SafeFormatter
from meshchat.errors import KeystoreError
from meshchat.home import Home, passphrase_from_env
from meshchat.identity import KdfProfile
from meshchat.tui.controller import ChatController
from meshchat.tui.onboarding import ask_unlock, create_identity_flow, kdf_profile_from_env
from meshchat.tui.widgets import PALETTE

__all__ = ["LOG_FILE", "Ui", "run_tui"]

log = logging.getLogger(__name__)

LOG_FILE = "tui.log"
LOG_BYTES = 1_000_000


class Ui:
    """The urwid main loop as the rest of the UI sees it: show, redraw, quit."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.quit_requested = asyncio.Event()
        self._loop = loop
        self._draw_pending = False
        self.screen = urwid.display.raw.Screen()
        placeholder = urwid.Filler(urwid.Text(("dim", "meshchat starting…"), "center"))
        self.main = urwid.MainLoop(
            placeholder,
            PALETTE,
            screen=self.screen,
            event_loop=urwid.AsyncioEventLoop(loop=loop),
            unhandled_input=self._unhandled,
            handle_mouse=False,  # leave mouse selection to the terminal: cards get copied
        )

    @property
    def unicode(self) -> bool:
        """Whether the terminal's encoding can show the delivery marks."""
        return bool(urwid.util.get_encoding_mode() != "narrow")

    def start(self) -> None:
        self.main.start()
        self.screen.tty_signal_keys("undefined", "undefined", "undefined", "undefined", "undefined")
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                self._loop.add_signal_handler(sig, self.request_quit)

    def stop(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                self._loop.remove_signal_handler(sig)
        with contextlib.suppress(OSError):  # the terminal may be gone already (SIGHUP)
            self.main.stop()

    def show(self, widget: urwid.Widget) -> None:
        self.main.widget = widget
        self.redraw()

    def redraw(self) -> None:
        """Redraw soon; many changes in one loop turn cost one redraw."""
        if not self._draw_pending:
            self._draw_pending = True
            self._loop.call_soon(self._draw)

    def _draw(self) -> None:
        self._draw_pending = False
        if self.screen.started:
            self.main.draw_screen()

    def draw_now(self) -> None:
        """Redraw at once, before the loop is held up (by a key derivation, say)."""
        if self.screen.started:
            self.main.draw_screen()

    def bell(self) -> None:
        """Ring the terminal's bell."""
        if self.screen.started:
            with contextlib.suppress(OSError):
                self.screen.write("\a")
                self.screen.flush()

    def request_quit(self) -> None:
        self.quit_requested.set()

    def _unhandled(self, key: str | tuple[str, int, int, int]) -> bool | None:
        if key in {"ctrl c", "ctrl q"}:
            self.request_quit()
            return True
        return None


def run_tui(home: Home, settings: NodeSettings, *, bell: bool = True) -> int:
    """Run the terminal UI for ``home`` until the user quits; returns the exit status.
    ``bell``: ring the terminal's bell when a direct message arrives."""
    profile = kdf_profile_from_env(os.environ) if not home.initialised else KdfProfile.MODERATE
    root = logging.getLogger()
    quiet = logging.NullHandler()  # nothing may write to the terminal under the UI
    root.addHandler(quiet)
    handlers: list[logging.Handler] = [quiet]
    logging.captureWarnings(True)
    try:
        return asyncio.run(_run(home, settings, profile, handlers, bell))
    finally:
        logging.captureWarnings(False)
        for handler in handlers:
            root.removeHandler(handler)
            handler.close()


def _log_to_home(home: Home, handlers: list[logging.Handler]) -> None:
    handler = logging.handlers.RotatingFileHandler(
        home.path / LOG_FILE, maxBytes=LOG_BYTES, backupCount=1, encoding="utf-8"
    )
    handler.setFormatter(SafeFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
    handlers.append(handler)


async def _run(
    home: Home,
    settings: NodeSettings,
    profile: KdfProfile,
    handlers: list[logging.Handler],
    bell: bool,
) -> int:
    ui = Ui(asyncio.get_running_loop())
    ui.start()
    try:
        env_passphrase = passphrase_from_env()
        passphrase: str | None
        if not home.initialised:
            passphrase = await create_identity_flow(ui, home, env_passphrase, profile)
        elif env_passphrase is not None:
            passphrase = env_passphrase
        else:
            passphrase = await ask_unlock(ui, home)
        if passphrase is None or ui.quit_requested.is_set():
            return 0
        _log_to_home(home, handlers)
        return await _chat(ui, home, settings, passphrase, bell)
    finally:
        ui.stop()


async def _chat(ui: Ui, home: Home, settings: NodeSettings, passphrase: str, bell: bool) -> int:
    while True:
        ui.draw_now()  # the key derivation that unlocks the keystore holds the loop a moment
        started = False
        try:
            async with running_node(home, passphrase, settings) as node:
                started = True
                controller = ChatController(
                    node,
                    redraw=ui.redraw,
                    on_quit=ui.request_quit,
                    unicode=ui.unicode,
                    bell=ui.bell if bell else None,
                    keep_name=functools.partial(keep_name, home, passphrase),
                    voice_dir=home.voice_notes,
                )
                ui.show(controller.screen)
                try:
                    await controller.start()
                    await ui.quit_requested.wait()
                finally:
                    await controller.close()
                log.info("leaving the chat")
                return 0
        except KeystoreError as exc:
            if started:
                raise
            retry = await ask_unlock(ui, home, f"{exc}: try again")
            if retry is None:
                return 0
            passphrase = retry
