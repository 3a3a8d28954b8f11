"""Look-alike names through the real ``meshchat`` command: refused unless confirmed, then marked."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from clirun import run_cli

from meshchat.engine import dm_conversation
from meshchat.home import Home
from meshchat.identity import Identity
from meshchat.store import Store

PASS = "look-alike passphrase"
CYRILLIC_ALICE = "\u0430lice"  # the first letter is Cyrillic (U+0430)
CYRILLIC_BOB = "b\u043eb"  # the middle letter is Cyrillic (U+043E)


def cli(home: Path, *args: str) -> Any:
    return run_cli(home, PASS, *args)


def contacts(home: Path) -> list[dict[str, Any]]:
    result = cli(home, "contacts", "list", "--json")
    assert result.returncode == 0, result.stderr
    return list(json.loads(result.stdout))


@pytest.fixture
def alice(tmp_path: Path) -> Path:
    home = tmp_path / "alice"
    assert cli(home, "init", "--name", "alice", "--kdf", "interactive").returncode == 0
    bob = Identity.generate().card("bob").to_text()
    assert cli(home, "contacts", "add", bob).returncode == 0
    return home


def test_a_lookalike_of_a_contact_or_of_oneself_is_refused_unless_confirmed(alice: Path) -> None:
    fake_bob = Identity.generate().card(CYRILLIC_BOB).to_text()
    refused = cli(alice, "contacts", "add", fake_bob)
    assert refused.returncode == 1
    assert "LOOK-ALIKE" in refused.stderr and "'bob'" in refused.stderr
    assert [c["name"] for c in contacts(alice)] == ["bob"]

    fake_me = Identity.generate().card(CYRILLIC_ALICE).to_text()
    refused = cli(alice, "contacts", "add", fake_me)
    assert refused.returncode == 1 and "'alice'" in refused.stderr
    # Given another name by the user, the card is an ordinary new contact.
    assert cli(alice, "contacts", "add", fake_me, "--name", "Alicia").returncode == 0
    # A zero-width space does not make a new name either.
    sneaky = Identity.generate().card("bo\u200bb").to_text()
    assert cli(alice, "contacts", "add", sneaky).returncode == 1

    confirmed = cli(alice, "contacts", "add", fake_bob, "--allow-lookalike")
    assert confirmed.returncode == 0, confirmed.stderr
    assert "looks like bob" in confirmed.stdout + confirmed.stderr
    listed = cli(alice, "contacts", "list")
    lines = {line.split()[0]: line for line in listed.stdout.splitlines()}
    assert "!! looks like bob" in lines[CYRILLIC_BOB]
    assert "!! looks like" in lines["bob"]  # each of the two is ambiguous now
    assert "looks like" not in lines["Alicia"]


def test_log_marks_a_lookalike_sender(alice: Path) -> None:
    fake_bob = Identity.generate()
    added = cli(
        alice, "contacts", "add", fake_bob.card(CYRILLIC_BOB).to_text(), "--allow-lookalike"
    )
    assert added.returncode == 0, added.stderr
    unlocked = Home(alice).unlock_all(PASS)
    now = int(time.time() * 1000)
    with Store.open(Home(alice).database, key=unlocked.store_key) as store:
        conversation = dm_conversation(fake_bob.node_id)
        store.add_incoming(
            conversation, os.urandom(16), fake_bob.node_id, CYRILLIC_BOB, "it's me", now, now
        )
    shown = cli(alice, "log", fake_bob.node_id.hex()[:8])
    assert shown.returncode == 0, shown.stderr
    assert f"<{CYRILLIC_BOB} (!! looks like bob)> it's me" in shown.stdout
