"""``meshchat log`` shows the causal order with its markers; ``meshchat delete`` erases.

Both without a node (the store directly) and through a real running daemon (control ops
``log`` and ``delete``), each command a child process as a user's shell runs it.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from clirun import cli_env, run_cli

from meshchat.causal import HOLD_MS
from meshchat.home import Home
from meshchat.store import Store
from meshchat.store.records import Message
from meshchat.sync.records import ReadRecord

PASS = "history faces passphrase"
STRANGER = bytes.fromhex("5e" * 16)
CONV = "dm:" + STRANGER.hex()


def cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(home, PASS, *args)


def ok(home: Path, *args: str) -> str:
    done = cli(home, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def cli_json(home: Path, *args: str) -> Any:
    return json.loads(ok(home, *args, "--json"))


@pytest.fixture(scope="module")
def initialised(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One initialised home (the key derivation is the slow part), copied per test."""
    path = tmp_path_factory.mktemp("homes") / "template"
    ok(path, "init", "--name", "me", "--kdf", "interactive")
    return path


@pytest.fixture
def home(initialised: Path, tmp_path: Path) -> Home:
    target = tmp_path / "home"
    subprocess.run(["cp", "-a", str(initialised), str(target)], check=True)
    return Home(target)


def open_store(home: Home) -> Store:
    return Store.open(home.database, key=home.unlock_all(PASS).store_key)


def incoming(
    store: Store, msg_id: bytes, text: str, sent: int, received: int, parents: tuple[bytes, ...]
) -> Message:
    message = store.add_incoming(
        CONV, msg_id, STRANGER, "~stranger", text, sent, received, parents=parents
    )
    assert message is not None
    return message


def ids(n: int, prefix: str = "") -> list[bytes]:
    return [bytes.fromhex(prefix) + os.urandom(16 - len(prefix) // 2) for _ in range(n)]


def fill(home: Home) -> dict[str, bytes]:
    """A history with one of each marker: in order a, b (child of a), gap (released with a
    parent missing), late (claims an old time), then held (waits for a parent)."""
    a, b, gap, late, held, missing1, missing2 = ids(7)
    t0 = int(time.time() * 1000) - 2 * HOLD_MS
    with open_store(home) as store:
        incoming(store, a, "first words", t0, t0, ())
        incoming(store, b, "second, after first", t0 + 10, t0 + 10, (a,))
        incoming(store, gap, "after a lost one", t0 + 20, t0 + 20, (b, missing1))
        released = store.release_held(t0 + 20 + HOLD_MS + 1)
        assert [m.msg_id for m in released] == [gap]
        now = t0 + HOLD_MS + 100
        incoming(store, late, "back-dated claim", t0 - 3_600_000, now, ())
        incoming(store, held, "secret answer: yes", now + 1, now + 1, (missing2,))
    return {"a": a, "b": b, "gap": gap, "late": late, "held": held}


def test_log_shows_the_causal_order_and_its_markers_without_a_node(home: Home) -> None:
    made = fill(home)
    lines = ok(home.path, "log", CONV).splitlines()
    assert len(lines) == 6, lines  # five messages and one gap line
    short = {k: v.hex()[:8] for k, v in made.items()}
    assert f"{short['a']} <~stranger> first words" in lines[0]
    assert f"{short['b']} <~stranger> second, after first" in lines[1]
    assert lines[2].strip() == "-- 1 earlier message missing --"
    assert f"{short['gap']} <~stranger> after a lost one" in lines[3]
    assert lines[4].endswith(f"{short['late']} <~stranger> back-dated claim (arrived late)")
    assert lines[5].endswith(f"{short['held']} <~stranger> (waiting for 1 earlier message)")
    assert "secret answer" not in "\n".join(lines)

    data = cli_json(home.path, "log", CONV)
    assert data["conversation"] == CONV
    got = {m["msg_id"]: m for m in data["messages"]}
    assert [m["msg_id"] for m in data["messages"]] == [
        made[k].hex() for k in ("a", "b", "gap", "late", "held")
    ]
    assert [m["position"] for m in data["messages"]] == [0, 1, 2, 3, None]
    b, gap, late, held = (got[made[k].hex()] for k in ("b", "gap", "late", "held"))
    assert b["parents"] == [made["a"].hex()] and b["markers"] == [] and b["loose"] == []
    assert (gap["markers"], gap["missing"], gap["history"]) == (["gap"], 1, "shown")
    assert late["markers"] == ["late"] and late["late"] is True
    assert (held["history"], held["markers"], held["missing"]) == ("held", ["waiting"], 1)
    assert held["order_ms"] is None and held["text"] == "secret answer: yes"
    assert all(m["state"] == "received" for m in data["messages"])


def test_log_read_marks_the_conversation_read_for_my_devices_too(home: Home) -> None:
    fill(home)

    def unread_and_reads(store: Store) -> tuple[int, list[ReadRecord]]:
        counts = {c.name: c.unread for c in store.conversations()}
        records = store.sync_records(sid for _, sid in store.sync_listing(2**50))
        return counts[CONV], [r for r in records if isinstance(r, ReadRecord)]

    ok(home.path, "log", CONV)  # showing it is not reading it
    with open_store(home) as store:
        assert unread_and_reads(store) == (5, [])
    ok(home.path, "log", CONV, "--read")
    with open_store(home) as store:
        count, reads = unread_and_reads(store)
    assert count == 0 and len(reads) == 1 and reads[0].conversation == CONV


def test_delete_asks_picks_by_prefix_and_the_message_stays_deleted(home: Home) -> None:
    twins = ids(2, prefix="abab")
    now = int(time.time() * 1000)
    with open_store(home) as store:
        for i, msg_id in enumerate(twins):
            incoming(store, msg_id, f"twin {i}", now + i, now + i, ())
    first = twins[0].hex()

    refused = cli(home.path, "delete", CONV, first[:12])  # no terminal, no --yes
    assert refused.returncode == 1 and "--yes" in refused.stderr
    ambiguous = cli(home.path, "delete", CONV, "abab", "--yes")
    assert ambiguous.returncode == 1
    assert "abab matches 2 messages" in ambiguous.stderr
    assert twins[0].hex()[:8] in ambiguous.stderr and twins[1].hex()[:8] in ambiguous.stderr
    unknown = cli(home.path, "delete", CONV, "ffff0000", "--yes")
    assert unknown.returncode == 1 and "no message ffff0000" in unknown.stderr
    assert len(cli_json(home.path, "log", CONV)["messages"]) == 2

    done = ok(home.path, "delete", CONV, first[:12], "--yes")
    assert done.strip() == f"deleted 1 message from {CONV}: {first[:8]}"
    left = cli_json(home.path, "log", CONV)["messages"]
    assert [m["text"] for m in left] == ["twin 1"]
    with open_store(home) as store:  # offered again (a retry, a relay): not stored again
        again = store.add_incoming(CONV, twins[0], STRANGER, "~s", "twin 0", now, now + 9)
        assert again is None

    whole = cli_json(home.path, "delete", CONV, "--yes")
    assert whole == {"conversation": CONV, "deleted": 1, "msg_ids": []}
    assert cli_json(home.path, "log", CONV)["messages"] == []
    assert "nothing deleted" in ok(home.path, "delete", CONV, "--yes")


def on_terminal(home: Path, answer: str, *args: str) -> tuple[int, str]:
    """Run ``meshchat`` on a pseudo-terminal, answer its question, return status and output."""
    master, slave = os.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "meshchat.cli.main", "--home", str(home), *args],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=cli_env(PASS),
    )
    os.close(slave)
    out = b""
    answered = False
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                out += chunk
            if not answered and b"[y/N] " in out:
                os.write(master, answer.encode() + b"\n")
                answered = True
            if proc.poll() is not None and not ready:
                break
        assert answered, out.decode(errors="replace")
        return proc.wait(timeout=30), out.decode(errors="replace")
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_delete_on_a_terminal_shows_what_goes_and_asks_y_or_n(home: Home) -> None:
    (one,) = ids(1)
    now = int(time.time() * 1000)
    with open_store(home) as store:
        incoming(store, one, "think twice\x1b[2J\nalice: y", now, now, ())
    code, out = on_terminal(home.path, "n", "delete", CONV, one.hex()[:6])
    assert code == 1 and "nothing deleted" in out
    # the text quoted in the question is the sender's: escaped, on one line
    assert f"{one.hex()[:8]}" in out and "<~stranger> think twice\\x1b[2J\\x0aalice: y" in out
    assert "\x1b[2J" not in out
    assert "Delete this message on this device? It cannot be undone. [y/N]" in out
    assert len(cli_json(home.path, "log", CONV)["messages"]) == 1
    code, out = on_terminal(home.path, "y", "delete", CONV, one.hex()[:6])
    assert code == 0 and f"deleted 1 message from {CONV}: {one.hex()[:8]}" in out
    assert cli_json(home.path, "log", CONV)["messages"] == []


@pytest.fixture
def daemon(home: Home, tmp_path: Path) -> Iterator[Home]:
    log = (tmp_path / "daemon.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "meshchat.cli.main", "--home", str(home.path), "daemon",
         "--no-lan"],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=cli_env(PASS),
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not home.control_socket.exists():
            assert proc.poll() is None, (tmp_path / "daemon.log").read_text()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        yield home
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def test_log_and_delete_go_through_a_running_node(daemon: Home) -> None:
    home = daemon
    sent = [cli_json(home.path, "send", "#mesh", f"note {i}") for i in range(3)]
    data = cli_json(home.path, "log", "#mesh")
    assert [m["text"] for m in data["messages"]] == ["note 0", "note 1", "note 2"]
    assert [m["position"] for m in data["messages"]] == [0, 1, 2]
    assert data["messages"][1]["parents"] == [sent[0]["msg_id"]]  # it names the one before
    assert all(m["history"] == "shown" and m["markers"] == [] for m in data["messages"])

    refused = cli(home.path, "delete", "#mesh", sent[1]["msg_id"][:10])
    assert refused.returncode == 1 and "--yes" in refused.stderr
    out = cli_json(home.path, "delete", "#mesh", sent[1]["msg_id"][:10], "--yes")
    assert out == {"conversation": "#mesh", "deleted": 1, "msg_ids": [sent[1]["msg_id"]]}
    shown = ok(home.path, "log", "#mesh").splitlines()
    assert len(shown) == 2 and "note 1" not in "\n".join(shown)
    assert sent[0]["msg_id"][:8] in shown[0] and "<me> note 0" in shown[0]

    done = ok(home.path, "delete", "#mesh", "--yes")
    assert done.strip() == "deleted #mesh: 2 messages"
    assert cli_json(home.path, "log", "#mesh")["messages"] == []
