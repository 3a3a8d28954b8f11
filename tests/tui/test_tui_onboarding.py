"""Onboarding forms driven by keys, with a real home on disk and no terminal."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import urwid
from urwid.testing import render_text

from meshchat.app import offline_card
from meshchat.errors import IdentityError, UsageError
from meshchat.home import Home
from meshchat.identity import KdfProfile
from meshchat.tui.onboarding import (
    Form,
    ask_unlock,
    create_identity_flow,
    kdf_profile_from_env,
    validate_new_identity,
)

SIZE = (100, 30)


class ScreenlessSurface:
    """What the forms need from the main loop, without a terminal: the widget shown last."""

    def __init__(self) -> None:
        self.quit_requested = asyncio.Event()
        self.widget: urwid.Widget | None = None
        self.draws = 0

    def show(self, widget: urwid.Widget) -> None:
        self.widget = widget

    def redraw(self) -> None:
        self.draws += 1

    def draw_now(self) -> None:
        self.draws += 1

    def form(self) -> Form:
        assert isinstance(self.widget, Form)
        return self.widget

    def text(self) -> str:
        assert self.widget is not None
        return "\n".join(render_text(self.widget, SIZE, focus=True))

    async def type(self, *keys: str) -> None:
        """Type each string (a special key if it is a key name) into the form on screen."""
        await settle()
        for key in keys:
            for k in [key] if key in {"enter", "tab", "shift tab", "up", "down"} else key:
                self.form().keypress(SIZE, k)
            await settle()


async def settle() -> None:
    """Let the flow being tested run until it waits for the next key."""
    for _ in range(10):
        await asyncio.sleep(0)


def test_kdf_profile_comes_from_the_environment() -> None:
    assert kdf_profile_from_env({}) is KdfProfile.MODERATE
    assert kdf_profile_from_env({"MESHCHAT_KDF": "interactive"}) is KdfProfile.INTERACTIVE
    assert kdf_profile_from_env({"MESHCHAT_KDF": " Sensitive "}) is KdfProfile.SENSITIVE
    with pytest.raises(UsageError, match="MESHCHAT_KDF must be one of"):
        kdf_profile_from_env({"MESHCHAT_KDF": "fast"})


def test_validate_new_identity() -> None:
    assert validate_new_identity(" alice ", "pw", "pw", None) == ("alice", "pw")
    assert validate_new_identity("alice", "", "", "from-env") == ("alice", "from-env")
    with pytest.raises(UsageError, match="choose a name"):
        validate_new_identity("  ", "pw", "pw", None)
    with pytest.raises(UsageError, match="choose a passphrase"):
        validate_new_identity("alice", "", "", None)
    with pytest.raises(UsageError, match="differ"):
        validate_new_identity("alice", "pw", "pW", None)
    with pytest.raises(IdentityError):
        validate_new_identity("x" * 65, "pw", "pw", None)


def test_form_moves_between_fields_and_masks_secrets() -> None:
    form = Form("T", "intro", [("Name:", False), ("Secret:", True)])
    for ch in "ann":
        form.keypress(SIZE, ch)
    form.keypress(SIZE, "enter")
    assert form.field_index() == 1
    for ch in "hunter2":
        form.keypress(SIZE, ch)
    form.keypress(SIZE, "shift tab")
    assert form.field_index() == 0
    form.keypress(SIZE, "up")
    assert form.field_index() == 0
    assert form.values() == ["ann", "hunter2"]
    shown = "\n".join(render_text(form, SIZE))
    assert "ann" in shown and "hunter2" not in shown and "•••••••" in shown


async def test_new_user_is_walked_through_creating_an_identity(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    surface = ScreenlessSurface()
    flow = asyncio.create_task(create_identity_flow(surface, home, None, KdfProfile.INTERACTIVE))
    await surface.type("carol", "enter", "secret", "enter", "secreX", "enter")
    assert "the two passphrases differ" in surface.text()
    assert surface.form().values() == ["carol", "", ""]  # secrets are cleared to type again
    assert surface.form().field_index() == 1
    assert not home.initialised
    await surface.type("secret", "enter", "secret", "enter")
    assert await asyncio.wait_for(flow, 10) == "secret"
    assert home.initialised
    identity, name = home.unlock("secret")
    assert name == "carol"
    assert not home.card.exists()  # nothing about us is kept in clear
    card = await offline_card(home, "secret")
    assert card.identity == identity.public and card.name == "carol"


async def test_passphrase_from_the_environment_is_not_asked(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    surface = ScreenlessSurface()
    flow = asyncio.create_task(
        create_identity_flow(surface, home, "env-pass", KdfProfile.INTERACTIVE)
    )
    await settle()
    assert "Passphrase" not in surface.text()
    await surface.type("enter")
    assert "choose a name" in surface.text()
    await surface.type("dave", "enter")
    assert await asyncio.wait_for(flow, 10) == "env-pass"
    assert home.unlock("env-pass")[1] == "dave"


async def test_quitting_onboarding_creates_nothing(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    surface = ScreenlessSurface()
    flow = asyncio.create_task(create_identity_flow(surface, home, None, KdfProfile.INTERACTIVE))
    await surface.type("erin")
    surface.quit_requested.set()
    assert await asyncio.wait_for(flow, 5) is None
    assert not home.initialised


async def test_unlock_form_shows_the_error_and_wants_a_passphrase(tmp_path: Path) -> None:
    surface = ScreenlessSurface()
    asking = asyncio.create_task(ask_unlock(surface, Home(tmp_path), "wrong passphrase"))
    await settle()
    assert "wrong passphrase" in surface.text()
    await surface.type("enter")
    assert "type your passphrase" in surface.text()
    await surface.type("pw", "enter")
    assert await asyncio.wait_for(asking, 5) == "pw"
    assert "unlocking" in surface.text()
