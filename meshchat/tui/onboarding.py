"""Before the chat: create an identity on a fresh home, or unlock an existing one.

Theory of operation. Both steps are small urwid forms shown on the same main loop (and the
same asyncio loop) the chat will use. :func:`run_form` shows a form and waits until it is
submitted or the user quits (Ctrl-C / Ctrl-Q, reported through the surface's
``quit_requested`` event). Validation stays in pure functions (:func:`validate_new_identity`,
:func:`kdf_profile_from_env`) so it can be tested without a terminal.

* Fresh home: ask a display name and a passphrase twice (or take ``$MESHCHAT_PASSPHRASE``
  without asking), then seal the new keystore. Argon2id takes about a second, so it runs off
  the loop and the form says so meanwhile. The Argon2id cost is ``moderate`` unless
  ``$MESHCHAT_KDF`` names another profile (tests use ``interactive``).
* Existing home: ask the passphrase (unless ``$MESHCHAT_PASSPHRASE`` is set). The caller tries
  it by starting the node; a wrong one brings the form back with the error shown.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import urwid

from meshchat.cli.identity_cmds import create_identity
from meshchat.errors import MeshchatError, UsageError
from meshchat.home import Home
from meshchat.identity import KdfProfile, clean_name

__all__ = [
    "KDF_ENV",
    "Form",
    "Surface",
    "ask_unlock",
    "create_identity_flow",
    "kdf_profile_from_env",
    "run_form",
    "validate_new_identity",
]

KDF_ENV = "MESHCHAT_KDF"
FORM_COLS = 72
LABEL_COLS = 18
MAX_FIELD_CHARS = 1024


class Surface(Protocol):
    """Where forms are shown: the application's main loop, seen from the forms."""

    quit_requested: asyncio.Event

    def show(self, widget: urwid.Widget) -> None: ...

    def redraw(self) -> None: ...

    def draw_now(self) -> None: ...


def kdf_profile_from_env(environ: Mapping[str, str]) -> KdfProfile:
    """The Argon2id profile for a new keystore: ``$MESHCHAT_KDF`` or ``moderate``."""
    value = environ.get(KDF_ENV, "").strip().lower()
    if not value:
        return KdfProfile.MODERATE
    try:
        return KdfProfile(value)
    except ValueError:
        names = ", ".join(p.value for p in KdfProfile)
        raise UsageError(f"${KDF_ENV} must be one of {names}, not {value!r}") from None


def validate_new_identity(
    name: str, passphrase: str, again: str, env_passphrase: str | None
) -> tuple[str, str]:
    """The cleaned name and the passphrase to use; :class:`MeshchatError` says what is wrong."""
    cleaned = clean_name(name)
    if not cleaned:
        raise UsageError("choose a name that others will see")
    if env_passphrase is not None:
        return cleaned, env_passphrase
    if not passphrase:
        raise UsageError("choose a passphrase: it protects your keys on this device")
    if passphrase != again:
        raise UsageError("the two passphrases differ: type them again")
    return cleaned, passphrase


class Form(urwid.WidgetWrap["urwid.Filler[Any]"]):
    """A centred box of labelled fields. Enter moves to the next field, then submits."""

    def __init__(
        self, title: str, intro: str, fields: Sequence[tuple[str, bool]], hint: str = ""
    ) -> None:
        self._secret = [secret for _label, secret in fields]
        self.edits = [urwid.Edit("", "", mask="•" if secret else None) for _label, secret in fields]
        self.error = urwid.Text("")
        self.busy = urwid.Text("")
        self.waiter: asyncio.Future[list[str]] | None = None
        rows: list[urwid.Widget] = [
            urwid.Text(("form_title", title), "center"),
            urwid.Divider(),
            urwid.Text(("form", intro)),
            urwid.Divider(),
        ]
        for (label, _secret), edit in zip(fields, self.edits, strict=True):
            field = urwid.AttrMap(edit, "form_field", "form_field_focus")
            rows.append(
                urwid.Columns(
                    [(LABEL_COLS, urwid.Text(("form_label", label), "right")), field],
                    dividechars=1,
                )
            )
        rows += [
            urwid.Divider(),
            self.error,
            self.busy,
            urwid.Text(("dim", hint or "Enter: next field / confirm    Ctrl-C: quit"), "center"),
        ]
        self.pile = urwid.Pile(rows)
        self._first_field = 4
        self.pile.focus_position = self._first_field
        box = urwid.LineBox(urwid.Padding(self.pile, left=1, right=1))
        self._padding = urwid.Padding(box, "center", width=FORM_COLS)
        super().__init__(urwid.Filler(self._padding, "middle"))

    def _fit(self, cols: int) -> None:
        """As wide as :data:`FORM_COLS`, or the whole terminal when that is narrower."""
        width = max(1, min(FORM_COLS, cols))
        if self._padding.width != width:
            self._padding.width = width

    def render(self, size: tuple[int, int], focus: bool = False) -> urwid.Canvas:  # type: ignore[override]
        self._fit(size[0])
        return super().render(size, focus)

    def values(self) -> list[str]:
        return [e.edit_text[:MAX_FIELD_CHARS] for e in self.edits]

    def field_index(self) -> int:
        return int(self.pile.focus_position) - self._first_field

    def focus_field(self, index: int) -> None:
        index = max(0, min(len(self.edits) - 1, index))
        self.pile.focus_position = self._first_field + index

    def set_error(self, text: str) -> None:
        self.error.set_text(("form_error", text) if text else "")
        self.busy.set_text("")

    def set_busy(self, text: str) -> None:
        self.busy.set_text(("form_busy", text) if text else "")

    def clear_secrets(self) -> None:
        for edit, secret in zip(self.edits, self._secret, strict=True):
            if secret:
                edit.set_edit_text("")

    def keypress(self, size: tuple[int, int], key: str) -> str | None:  # type: ignore[override]
        self._fit(size[0])
        index = self.field_index()
        if key in {"tab", "down"}:
            self.focus_field(index + 1)
            return None
        if key in {"shift tab", "up"}:
            self.focus_field(index - 1)
            return None
        if key == "enter":
            if index < len(self.edits) - 1:
                self.focus_field(index + 1)
            elif self.waiter is not None and not self.waiter.done():
                self.waiter.set_result(self.values())
            return None
        result: str | None = super().keypress(size, key)
        return result


async def run_form(surface: Surface, form: Form) -> list[str] | None:
    """Show ``form`` and wait for its values; None when the user quits instead."""
    future: asyncio.Future[list[str]] = asyncio.get_running_loop().create_future()
    form.waiter = future
    surface.show(form)
    quitting = asyncio.ensure_future(surface.quit_requested.wait())
    waiting: set[asyncio.Future[Any]] = {future, quitting}
    try:
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    finally:
        quitting.cancel()
        form.waiter = None
    if future.done() and not future.cancelled():
        return future.result()
    future.cancel()
    return None


def new_identity_form(ask_passphrase: bool) -> Form:
    fields = [("Your name:", False)]
    if ask_passphrase:
        fields += [("Passphrase:", True), ("Again:", True)]
    intro = (
        "No identity on this device yet. Choose the name others will see; "
        "your keys are made here and never leave this device."
    )
    if ask_passphrase:
        intro += " The passphrase protects them: there is no way to recover it."
    return Form("Welcome to meshchat", intro, fields)


async def create_identity_flow(
    surface: Surface, home: Home, env_passphrase: str | None, profile: KdfProfile
) -> str | None:
    """Walk a new user through making an identity; returns the passphrase, None if they quit."""
    form = new_identity_form(ask_passphrase=env_passphrase is None)
    while True:
        values = await run_form(surface, form)
        if values is None:
            return None
        values += ["", ""]
        try:
            name, passphrase = validate_new_identity(
                values[0], values[1], values[2], env_passphrase
            )
        except MeshchatError as exc:
            form.set_error(str(exc))
            if "passphrase" in str(exc):
                form.clear_secrets()
                form.focus_field(1)
            continue
        form.set_error("")
        form.set_busy("creating your keys…")
        surface.draw_now()
        try:
            await asyncio.to_thread(create_identity, home, name, passphrase, profile)
        except MeshchatError as exc:
            form.set_error(str(exc))
            continue
        except OSError as exc:
            form.set_error(f"cannot write to {home.path}: {exc.strerror or exc}")
            continue
        return passphrase


def unlock_form(home: Home, error: str) -> Form:
    intro = f"Unlock your identity in {home.path}."
    form = Form("meshchat", intro, [("Passphrase:", True)])
    form.set_error(error)
    return form


async def ask_unlock(surface: Surface, home: Home, error: str = "") -> str | None:
    """Ask the passphrase (showing ``error`` from a previous try); None if the user quits.

    The form stays on screen saying "unlocking…" while the caller tries the passphrase.
    """
    form = unlock_form(home, error)
    while True:
        values = await run_form(surface, form)
        if values is None:
            return None
        if values[0]:
            form.set_error("")
            form.set_busy("unlocking…")
            surface.draw_now()
            return values[0]
        form.set_error("type your passphrase, then Enter")
