"""Panic erasure: files overwritten with random bytes, synced and unlinked, keystore first."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from meshchat.home import Home
from meshchat.identity import KdfProfile
from meshchat.panic import erase_file, erase_home

SECRET = b"the secret contents " * 1000


def test_erase_file_overwrites_before_unlinking(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_bytes(SECRET)
    witness = tmp_path / "witness"
    os.link(path, witness)  # a second name for the same inode shows what happened to the data
    assert erase_file(path) is True
    assert not path.exists()
    after = witness.read_bytes()
    assert len(after) == len(SECRET)
    assert b"secret" not in after
    assert after != bytes(len(SECRET))  # random, not zeros
    assert erase_file(path) is False


def test_erase_file_unlinks_a_socket_and_does_not_follow_links(tmp_path: Path) -> None:
    sock_path = tmp_path / "control.sock"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(sock_path))
        assert erase_file(sock_path) is True
    assert not sock_path.exists()
    target = tmp_path / "elsewhere"
    target.write_bytes(SECRET)
    link = tmp_path / "link"
    link.symlink_to(target)
    assert erase_file(link) is True
    assert not link.exists()
    assert target.read_bytes() == SECRET  # the link went, not what it pointed at


def test_erase_home_removes_every_secret_file(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    home.create_identity("Alice", "pw", KdfProfile.INTERACTIVE)
    for path in (home.database, home.card, home.path / "meshchat.db-wal", home.path / "tui.log"):
        path.write_bytes(SECRET)
    report = erase_home(home)
    assert report.ok
    assert report.erased[0] == home.keystore
    assert {p.name for p in report.erased} == {
        "keystore",
        "meshchat.db",
        "meshchat.db-wal",
        "card.txt",
        "tui.log",
    }
    assert not home.path.exists()  # emptied, so removed
    assert report.seconds < 5


def test_erase_home_keeps_what_is_not_meshchats(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    home.ensure()
    home.keystore.write_bytes(SECRET)
    mine = home.path / "notes.txt"
    mine.write_text("keep me")
    report = erase_home(home)
    assert [p.name for p in report.erased] == ["keystore"]
    assert mine.read_text() == "keep me"


def test_erase_home_removes_the_voice_notes_made_here(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    home.create_identity("Alice", "pw", KdfProfile.INTERACTIVE)
    home.voice_notes.mkdir()
    (home.voice_notes / "voice-20261204-050000.ogg").write_bytes(SECRET)
    report = erase_home(home)
    assert report.ok
    assert "voice-20261204-050000.ogg" in {p.name for p in report.erased}
    assert not home.path.exists()
