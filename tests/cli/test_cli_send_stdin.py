"""``meshchat send CONTACT`` reads the text from standard input: ``ps`` never shows it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from clirun import cli_env, run_cli

from meshchat.identity import Identity

PASS = "send stdin passphrase"
SECRET = "meet at the north gate at six"


def test_send_reads_the_text_from_stdin_and_no_argument_shows_it(tmp_path: Path) -> None:
    home = tmp_path / "alice"
    assert run_cli(home, PASS, "init", "--name", "alice", "--kdf", "interactive").returncode == 0
    bob = Identity.generate().card("bob").to_text()
    assert run_cli(home, PASS, "contacts", "add", bob).returncode == 0

    for extra in ([], ["-"]):  # the text omitted, or '-'
        proc = subprocess.Popen(
            [sys.executable, "-m", "meshchat.cli.main", "--home", str(home), "send", "bob", *extra],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=cli_env(PASS),
            text=True,
        )
        # What every local user can read about the process, as ps does (once it has started).
        cmdline = ""
        deadline = time.monotonic() + 10
        while "meshchat" not in cmdline and time.monotonic() < deadline:
            cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        out, err = proc.communicate(SECRET + "\n", timeout=60)
        assert proc.returncode == 0, err
        assert "bob" in cmdline and SECRET not in cmdline
        assert out.startswith("queued ")

    log = run_cli(home, PASS, "log", "bob", "--json")
    assert [m["text"] for m in json.loads(log.stdout)["messages"]] == [SECRET, SECRET]
    # The argument still works, for what is not secret.
    assert run_cli(home, PASS, "send", "bob", "hello", "there").returncode == 0
