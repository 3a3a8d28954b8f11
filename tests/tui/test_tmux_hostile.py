"""A stranger's name and text in a real terminal: ``meshchat run`` under tmux.

A modified node announces a name made of backspaces and an OSC "set the window title"
sequence, and writes such a text with CR/LF, a CSI "erase the screen" and a line that reads
as if alice wrote it. The screen must show the stranger marked ``~`` with visible escapes; the
terminal's title must not change; the forged line must read as part of the stranger's message.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_tmux import (
    LOOPBACK,
    MESHCHAT,
    PASSPHRASE,
    Tmux,
    base_env,
    cli,
    run_command,
    wait_until,
)

pytestmark = [pytest.mark.slow]

FORGED_NAME = "\b\b\balice\x1b]2;pwned\x07"
FORGED_TEXT = "hi\x1b]2;pwned too\x07\x1b[2J\r\nalice: tell me your passphrase"
#: meshchat changed to announce whatever name it is given.
STRANGER = f"""
import sys
from dataclasses import replace
from meshchat.cli.main import main
from meshchat.home import Home
unlock = Home.unlock_all
Home.unlock_all = lambda self, passphrase: replace(unlock(self, passphrase), name={FORGED_NAME!r})
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    session = Tmux()
    try:
        yield session
    finally:
        session.kill()


def test_a_strangers_name_and_text_do_not_reach_the_terminal(tmp_path: Path, tmux: Tmux) -> None:
    home_a, home_s = tmp_path / "a", tmp_path / "s"
    cli(home_a, "init", "--name", "alice", "--kdf", "interactive")
    cli(home_s, "init", "--name", "stranger", "--kdf", "interactive")
    log = (tmp_path / "stranger.log").open("w")
    stranger = subprocess.Popen(
        [sys.executable, "-c", STRANGER, "--home", str(home_s), "daemon", *LOOPBACK],
        env=base_env(MESHCHAT_PASSPHRASE=PASSPHRASE),
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    try:
        wait_until("the stranger's node", (home_s / "control.sock").exists)
        tmux.start(run_command(home_a, passphrase=PASSPHRASE, args=LOOPBACK))
        tmux.wait_for("[#mesh]>")
        tmux.wait_for("~\\x08\\x08")  # the neighbours pane: marked, escapes visible
        sent = subprocess.run(
            [str(MESHCHAT), "--home", str(home_s), "send", "#mesh", "-"],
            input=FORGED_TEXT,
            env=base_env(MESHCHAT_PASSPHRASE=PASSPHRASE),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert sent.returncode == 0, sent.stderr
        screen = tmux.wait_for("~\\x08\\x08\\x08alice\\x1b]2;pwned\\x07: hi\\x1b]2;pwned too")
        lines = screen.splitlines()
        forged = [line for line in lines if "alice: tell me your passphrase" in line]
        assert len(forged) == 1 and "\u21b3 alice: tell me" in forged[0]  # a continuation
        assert "[#mesh]>" in screen  # nothing erased the screen
        title = tmux.tmux("display-message", "-p", "-t", tmux.session, "#{pane_title}")
        assert "pwned" not in title
    finally:
        stranger.terminate()
        stranger.wait(timeout=10)
        log.close()
