"""Panic erases downloads: partial files and the transfers file, and the files received that
the transfers file names (the default downloads folder entirely); files elsewhere stay."""

from __future__ import annotations

import json
import os
from pathlib import Path

from meshchat.home import Home
from meshchat.panic import erase_home

SECRET = b"a received flyer " * 500


def _transfers(home: Home, downloads: Path, received: Path) -> None:
    entries = [
        {"direction": "in", "state": "done", "path": str(received)},
        {"direction": "out", "state": "active", "path": str(home.path.parent / "mine.txt")},
    ]
    home.transfers.write_text(json.dumps({"downloads": str(downloads), "transfers": entries}))


def test_panic_erases_partial_and_received_files_in_a_chosen_folder(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    home.ensure()
    folder = tmp_path / "Downloads"
    partial = folder / ".meshchat-partial"
    partial.mkdir(parents=True)
    (partial / "ab.part").write_bytes(SECRET)
    (partial / "ab.hashes").write_bytes(SECRET)
    received = folder / "flyer.pdf"
    received.write_bytes(SECRET)
    own = folder / "tax-return.pdf"  # the person's own file, not received by meshchat
    own.write_bytes(SECRET)
    mine = tmp_path / "mine.txt"  # a file this node sent: the person's original
    mine.write_bytes(SECRET)
    _transfers(home, folder, received)
    report = erase_home(home)
    assert report.ok
    assert not home.transfers.exists()
    assert not partial.exists()
    assert not received.exists()
    assert own.read_bytes() == SECRET and mine.read_bytes() == SECRET
    erased = [p.name for p in report.erased]
    assert erased.index("transfers.json") < erased.index("ab.part")  # the keys first
    assert {"ab.part", "ab.hashes", "flyer.pdf"} <= set(erased)


def test_panic_empties_the_default_downloads_folder(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    home.ensure()
    partial = home.downloads / ".meshchat-partial"
    partial.mkdir(parents=True)
    (partial / "cd.part").write_bytes(SECRET)
    old = home.downloads / "older-than-the-list.jpg"  # received, no longer listed
    old.write_bytes(SECRET)
    report = erase_home(home)  # no transfers file at all
    assert report.ok
    assert not home.downloads.exists()
    assert not home.path.exists()


def test_a_link_in_the_downloads_folder_is_unlinked_not_followed(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    home.ensure()
    home.downloads.mkdir()
    target = tmp_path / "precious"
    target.write_bytes(SECRET)
    os.symlink(target, home.downloads / "link")
    received = tmp_path / "elsewhere" / "x.bin"
    received.parent.mkdir()
    received.symlink_to(target)
    _transfers(home, home.downloads, received)
    assert erase_home(home).ok
    assert target.read_bytes() == SECRET
    assert not received.is_symlink()
