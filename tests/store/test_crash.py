"""Durability: a writer killed with SIGKILL mid-loop loses nothing it had been told was stored.

The child process prints each msg_id only after ``add_outgoing`` returned. Whatever it printed
before the kill must be in the database afterwards, with its outbox row, and the database must
hold whole transactions only: every message has its outbox row and the stored ids run without
gaps from the first.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

import meshchat
from meshchat.store import MessageState, Store

from .helpers import KEY

WRITES = 200

CHILD = """
import sys
from pathlib import Path
from meshchat.store import Store

store = Store.open(Path(sys.argv[1]), key=bytes.fromhex(sys.argv[3]))
for n in range(int(sys.argv[2])):
    msg_id = n.to_bytes(16, "big")
    store.add_outgoing(
        "crash", msg_id, b"d" * 16, b"s" * 16, "me", f"message {n}", 1000 + n, 10**12
    )
    sys.stdout.write(msg_id.hex() + "\\n")
    sys.stdout.flush()
"""


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    package_root = str(Path(meshchat.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    return env


@pytest.mark.parametrize("kill_after", [10, 50])
def test_sigkill_mid_loop_loses_nothing_committed(tmp_path: Path, kill_after: int) -> None:
    path = tmp_path / "crash.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), str(WRITES), KEY.hex()],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_child_env(),
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    printed: list[str] = []
    for line in proc.stdout:
        printed.append(line.strip())
        if len(printed) >= kill_after:
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=30)
    # Lines already in the pipe were printed after their call returned: they count too.
    printed += [line.strip() for line in proc.stdout.read().splitlines()]
    stderr = proc.stderr.read()
    proc.stdout.close()
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL, f"child was not killed mid-loop: {stderr}"
    assert kill_after <= len(printed) < WRITES

    with Store.open(path, key=KEY) as store:
        pending = {e.msg_id for e in store.pending_outbox(0)}
        for hex_id in printed:
            msg_id = bytes.fromhex(hex_id)
            message = store.get_message(msg_id)
            assert message is not None, f"committed message {hex_id} was lost"
            assert message.state is MessageState.QUEUED
            assert msg_id in pending, f"committed outbox row {hex_id} was lost"
        stored = store.messages("crash", limit=WRITES)

    # Whole transactions only: ids 0..k-1 with k >= what was printed, each with its outbox row.
    numbers = [int.from_bytes(m.msg_id, "big") for m in stored]
    assert numbers == list(range(len(numbers)))
    assert len(printed) <= len(numbers) <= len(printed) + 1
    assert pending == {m.msg_id for m in stored}
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()
