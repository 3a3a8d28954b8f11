"""``meshchat panic`` against a real running daemon: files erased, the daemon stops at once."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from clirun import cli_env, run_cli

from meshchat.home import Home

PASS = "panic daemon passphrase"


def _env() -> dict[str, str]:
    return cli_env(PASS)


def meshchat_cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(home, PASS, *args)


def test_panic_erases_a_running_node_and_stops_it(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    assert (
        meshchat_cli(home.path, "init", "--name", "runner", "--kdf", "interactive").returncode == 0
    )
    log = (tmp_path / "daemon.log").open("wb")
    daemon = subprocess.Popen(
        [sys.executable, "-m", "meshchat.cli.main", "--home", str(home.path), "daemon",
         "--no-lan"],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=_env(),
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not home.control_socket.exists():
            assert daemon.poll() is None, (tmp_path / "daemon.log").read_text()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        sent = meshchat_cli(home.path, "send", "#mesh", "erase me soon")
        assert sent.returncode == 0, sent.stderr
        assert home.database.exists() and home.keystore.exists()

        refused = meshchat_cli(home.path, "panic")  # no terminal, no --yes
        assert refused.returncode == 1 and "--yes" in refused.stderr
        assert daemon.poll() is None and home.keystore.exists()

        start = time.monotonic()
        result = meshchat_cli(home.path, "panic", "--yes")
        assert result.returncode == 0, result.stderr
        assert "running node erased its files" in result.stdout
        daemon.wait(timeout=10)
        elapsed = time.monotonic() - start
        assert daemon.returncode == 0
        assert elapsed < 10
        assert [p for p in home.secret_files() if p.exists()] == []
        assert not home.path.exists()
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
        log.close()
