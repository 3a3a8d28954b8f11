"""``meshchat log`` says how many of the recipient's devices have an own message."""

from __future__ import annotations

from typing import Any

from meshchat.cli.history_cmds import log_lines


def _mine(devices: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "msg_id": "ab" * 16, "outgoing": True, "sender_name": "me", "text": "hi",
        "created_ms": 0, "state": "delivered", "devices": devices,
    }  # fmt: skip


def test_several_devices_are_counted_one_is_not_mentioned() -> None:
    two = [{"device": "01", "state": "delivered"}, {"device": "02", "state": "sent"}]
    [line] = log_lines([_mine(two)], [])
    assert line.endswith("hi [delivered, 1 of 2 devices]")
    [line] = log_lines([_mine(two[:1])], [])
    assert line.endswith("hi [delivered]")  # a contact of one device: as before
