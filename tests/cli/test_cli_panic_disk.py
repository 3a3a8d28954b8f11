"""After ``meshchat panic``, the raw disk holds neither our name nor our public keys.

The home lives on a small ext4 file system in a file, mounted through a loop device, so the
test can read every block the file system ever wrote, not only the files that are left:
blocks of files that were replaced (write to a temporary file, rename) are free but not
erased, and a plain-text copy of our card there survives any overwrite of the current file.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from clirun import cli_env, run_cli

from meshchat.identity import ContactCard

PASS = "panic disk passphrase"
NAME = "Quillon Zebedee"


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A fresh 24 MiB ext4 file system mounted at ``tmp_path/mnt``: (image, mount point)."""
    image, mount = tmp_path / "disk.img", tmp_path / "mnt"
    mount.mkdir()
    with image.open("wb") as out:
        out.truncate(24 << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True)
    mounted = subprocess.run(["mount", "-o", "loop", str(image), str(mount)], check=False)
    if mounted.returncode != 0:
        pytest.skip("this machine cannot mount a loop device (needs root)")
    try:
        yield image, mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def _daemon_once(home: Path, log: Path) -> None:
    """Start a daemon (it writes what it keeps at start), wait until it is up, stop it."""
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "meshchat.cli.main", "--home", str(home), "daemon", "--no-lan"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=cli_env(PASS),
            stdin=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 30
            while not (home / "control.sock").exists():
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline
                time.sleep(0.05)
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def test_panic_leaves_no_name_or_public_key_on_the_raw_disk(
    disk: tuple[Path, Path], tmp_path: Path
) -> None:
    image, mount = disk
    home = mount / "home"
    made = run_cli(home, PASS, "init", "--name", NAME, "--kdf", "interactive")
    assert made.returncode == 0, made.stderr
    card = ContactCard.from_text(json.loads(run_cli(home, PASS, "id", "--json").stdout)["card"])
    for _ in range(2):
        _daemon_once(home, tmp_path / "daemon.log")
    erased = run_cli(home, PASS, "panic", "--yes")
    assert erased.returncode == 0, erased.stderr
    subprocess.run(["umount", str(mount)], check=True)
    raw = image.read_bytes()
    subprocess.run(["mount", "-o", "loop", str(image), str(mount)], check=True)

    public = card.identity
    secrets = {
        "name": NAME.encode(),
        "signing key": public.sign_public,
        "box key": public.box_public,
        "node id": public.node_id,
        "node id (hex)": public.node_id.hex().encode(),
        "card text": card.to_text()[4:40].encode(),
        "any card": b"mc1:",
        "signing key (base64)": base64.b64encode(public.sign_public)[:24],
        "signing key (urlsafe)": base64.urlsafe_b64encode(public.sign_public)[:24],
    }
    found = {what: raw.count(value) for what, value in secrets.items() if value in raw}
    assert found == {}
