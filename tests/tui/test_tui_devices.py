"""``/device`` on the chat screen over real nodes: link a second device, both screens show the
same confirmation string, both confirm; a wrong string links nothing; the grammar."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from test_tui_controller import Side, make_side, until

from meshchat.errors import UsageError
from meshchat.transports.memory import MemoryHub
from meshchat.tui.commands import HELP_TEXT, parse_line
from meshchat.tui.devices import DeviceConfirm, DeviceJoin, DeviceLink, DeviceList, DeviceRevoke
from meshchat.tui.helptext import help_for


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[tuple[Side, Side]]:
    hub = MemoryHub()
    sides = []
    for i, name in enumerate(("alice", "alice")):
        (tmp_path / str(i)).mkdir()
        sides.append(await make_side(tmp_path / str(i), hub, name))
    hub.connect(sides[0].transport, sides[1].transport)
    yield sides[0], sides[1]
    for side in sides:
        await side.ctl.close()
        await side.node.stop()
        side.store.close()


def string_on(side: Side) -> str | None:
    found = re.search(r"confirmation string (\d{3} \d{3})", side.text())
    return found.group(1) if found else None


async def start(existing: Side, new: Side) -> tuple[str, str]:
    existing.type("/device link")
    await existing.ctl.idle()
    code = re.search(r"link code: ([A-Z2-7-]{29})", existing.text())
    assert code is not None, existing.text()
    await until(lambda: existing.node.identity.node_id in new.node.announced_peers())
    new.type(f"/device join {code.group(1)}")
    await until(lambda: string_on(new) is not None and string_on(existing) is not None)
    return str(string_on(existing)), str(string_on(new))


async def test_link_a_second_device_from_the_chat_screen(pair: tuple[Side, Side]) -> None:
    existing, new = pair
    shown_e, shown_n = await start(existing, new)
    assert shown_e == shown_n
    existing.type(f"/device confirm {shown_n}")
    new.type("/device confirm y")
    await until(lambda: "this device is now on account" in new.text())
    assert "is now a device of your account" in existing.text()
    assert new.node.account_id == existing.node.account_id
    new.type("/device list")
    await new.ctl.idle()
    assert "2 device(s)" in new.text() and "(this device)" in new.text()


async def test_a_wrong_string_on_the_screen_links_nothing(pair: tuple[Side, Side]) -> None:
    existing, new = pair
    shown, _ = await start(existing, new)
    wrong = "000 000" if shown != "000 000" else "111 111"
    new.type(f"/device confirm {wrong}")
    await until(lambda: "not linked" in existing.text() and "not linked" in new.text())
    assert "strings differ" in new.text()
    assert len(existing.node.device_list().devices) == 1
    assert new.node.account_id == new.node.identity.node_id


async def test_confirm_with_nothing_to_confirm_says_so(pair: tuple[Side, Side]) -> None:
    existing, _ = pair
    existing.type("/device confirm y")
    await existing.ctl.idle()
    assert "no link waits for an answer" in existing.text()


def test_the_device_grammar() -> None:
    assert parse_line("/device link") == DeviceLink()
    assert parse_line("/device list") == DeviceList()
    assert parse_line("/device confirm 123 456") == DeviceConfirm("123 456")
    assert parse_line("/device revoke old phone") == DeviceRevoke("old phone")
    code = "AAAA-" * 5 + "AAAA"
    with pytest.raises(UsageError):  # its check letter is wrong
        parse_line(f"/device join {code}")
    for bad in (
        "/device",
        "/device link now",
        "/device join",
        "/device confirm",
        "/device x",
        "/device revoke",
    ):
        with pytest.raises(UsageError):
            parse_line(bad)
    from meshchat.account.link import LinkCode

    text = LinkCode.generate(bytes(16)).to_text()
    assert parse_line(f"/device join {text.lower()}") == DeviceJoin(text.lower())
    assert "/device link" in HELP_TEXT and "/device link" in help_for("device")


def test_device_list_changes_are_told_loudly_when_not_signed_by_a_trusted_device() -> None:
    from meshchat.node._types import DevicesNotice
    from meshchat.tui.devices import DeviceActions

    class Screen:
        node = None

        def __init__(self) -> None:
            self.notes: list[tuple[str, bool]] = []

        def note(self, text: str, error: bool = False) -> None:
            self.notes.append((text, error))

    screen = Screen()
    actions = DeviceActions(screen)  # type: ignore[arg-type]
    added = (bytes.fromhex("ab" * 16),)
    actions.on_devices(DevicesNotice(bytes(16), "bob\x1b[2J", False, added, (), loud=True))
    actions.on_devices(DevicesNotice(bytes(16), "bob", False, (), added, loud=False))
    actions.on_devices(DevicesNotice(bytes(16), "", True, (), added, False, True))
    (loud, shouted), (quiet, calm), (revoked, alarm) = screen.notes
    assert loud.startswith("!!") and "not signed by a device you trusted" in loud and shouted
    assert "\x1b" not in loud and "abababab" in loud  # the peer's name is escaped
    assert quiet.startswith("device list changed for bob: revoked") and not calm
    assert "THIS DEVICE WAS REVOKED" in revoked and alarm
