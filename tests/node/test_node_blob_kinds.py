"""A running node registers every account control blob kind of the table exactly once."""

from __future__ import annotations

import collections
import os
from pathlib import Path
from typing import Any

import pytest

from meshchat.account.kinds import BLOB_KINDS
from meshchat.engine._account import AccountGlue
from meshchat.identity import Identity
from meshchat.node import Node
from meshchat.store import Store
from meshchat.transports.memory import MemoryHub


async def test_every_kind_is_registered_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: collections.Counter[int] = collections.Counter()
    register = AccountGlue.register

    def counting(self: AccountGlue, kind: int, *args: Any, **kwargs: Any) -> None:
        calls[kind] += 1
        register(self, kind, *args, **kwargs)

    monkeypatch.setattr(AccountGlue, "register", counting)
    identity = Identity.generate()
    store = Store.open(tmp_path / "n.db", key=os.urandom(32))
    node = Node(identity, "n", store, [MemoryHub().transport(identity.public)])
    try:
        await node.start()
        assert calls == dict.fromkeys(BLOB_KINDS, 1)
        assert set(node.engine.account_glue.registered()) == set(BLOB_KINDS)
    finally:
        await node.stop()
        store.close()
