"""``--bitchat`` and the ``[bitchat]`` keys: off by default, on by flag or by config.toml, the
marks the faces show, and no Bluetooth stack loaded unless the bridge is on."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from meshchat.bridges.marks import (
    BITCHAT_DM_MARK,
    BITCHAT_MARK,
    bitchat_dm_conversation,
    network_mark,
)
from meshchat.cli.node_cmds import add_node_arguments, settings_from
from meshchat.config import load
from meshchat.crypto.channel import normalise_channel_name
from meshchat.errors import ConfigError, UsageError


def _parse(*args: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_node_arguments(parser)
    return parser.parse_args(list(args))


def test_off_by_default_on_by_flag_or_config(tmp_path: Path) -> None:
    assert settings_from(_parse()).bitchat is None
    on = settings_from(_parse("--bitchat", "--bitchat-controller", "usb:1"))
    assert (on.bitchat, on.bitchat_nickname) == ("usb:1", None)
    config = tmp_path / "config.toml"
    config.write_text('[bitchat]\nenabled = true\nnickname = "carol"\n')
    from_file = settings_from(_parse(), load(config))
    assert (from_file.bitchat, from_file.bitchat_nickname) == ("usb:0", "carol")
    assert settings_from(_parse("--no-bitchat"), load(config)).bitchat is None
    with pytest.raises(ConfigError):
        settings_from(_parse("--bitchat", "--bitchat-nickname", "n" * 65))


def test_read_receipts_are_on_unless_turned_off(tmp_path: Path) -> None:
    assert settings_from(_parse("--bitchat")).bitchat_read_receipts is True
    off = settings_from(_parse("--bitchat", "--no-bitchat-read-receipts"))
    assert off.bitchat_read_receipts is False
    config = tmp_path / "config.toml"
    config.write_text("[bitchat]\nenabled = true\nread_receipts = false\n")
    assert settings_from(_parse(), load(config)).bitchat_read_receipts is False
    on = settings_from(_parse("--bitchat-read-receipts"), load(config))
    assert on.bitchat_read_receipts is True


def test_marks_go_by_conversation_name() -> None:
    assert network_mark("#bitchat") == network_mark("#BitChat") == BITCHAT_MARK
    dm = bitchat_dm_conversation(bytes(range(8)))
    assert dm == "#bitchat:dm:0001020304050607" and network_mark(dm) == BITCHAT_DM_MARK
    assert network_mark("#mesh") is None and network_mark("dm:00") is None
    with pytest.raises(UsageError):  # no meshchat channel can take a DM conversation's name
        normalise_channel_name(dm)


def test_the_node_does_not_load_bitchat_unless_asked() -> None:
    code = (
        "import sys, meshchat.app, meshchat.cli.main, meshchat.node, meshchat.control\n"
        "print(sorted(m for m in ('bumble', 'meshchat.bridges.bitchat', "
        "'meshchat.node._bitchat') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


async def test_a_missing_controller_is_one_clear_error(tmp_path: Path) -> None:
    import os
    import socket

    from meshchat.identity import Identity
    from meshchat.node import Node
    from meshchat.node._bitchat import BitchatGateway
    from meshchat.store import Store

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    store = Store.open(tmp_path / "a.db", key=os.urandom(32))
    node = Node(Identity.generate(), "alice", store, [])
    await node.start()
    try:
        with pytest.raises(UsageError, match="no Bluetooth controller at tcp-client"):
            await BitchatGateway(node, f"tcp-client:127.0.0.1:{port}").start()
        assert "#bitchat" not in node.bridges
        assert "#bitchat" not in [c.name for c in await node.channels()]  # nothing joined
        assert not await node.messages("#bitchat")  # nothing stored
    finally:
        await node.stop()
        store.close()
