"""Running the ``meshchat`` command line as a child process, as a user's shell would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import meshchat

__all__ = ["cli_env", "run_cli"]


def cli_env(passphrase: str) -> dict[str, str]:
    """The environment of a child ``meshchat``: this checkout first, the passphrase given."""
    env = dict(os.environ)
    root = str(Path(meshchat.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    env["MESHCHAT_PASSPHRASE"] = passphrase
    return env


def run_cli(home: Path, passphrase: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``meshchat --home HOME ARGS...`` to its end (no terminal on stdin)."""
    return subprocess.run(
        [sys.executable, "-m", "meshchat.cli.main", "--home", str(home), *args],
        capture_output=True,
        text=True,
        env=cli_env(passphrase),
        stdin=subprocess.DEVNULL,
        timeout=60,
        check=False,
    )
