"""Saved file names: the bad names of the issue, and properties of every name."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshchat.files.names import MAX_SAVED_NAME_BYTES, numbered, safe_name


@pytest.mark.parametrize(
    ("announced", "saved"),
    [
        ("../../.bashrc", "bashrc"),
        ("/dev/zero", "zero"),
        ("/etc/passwd", "passwd"),
        ("..", "file"),
        (".", "file"),
        ("", "file"),
        ("C:\\Windows\\system32\\evil.txt", "evil.txt"),
        ("..\\..\\x.png", "x.png"),
        ("CON", "_CON"),
        ("con.txt", "_con.txt"),
        ("LPT9.tar.gz", "_LPT9.tar.gz"),
        ("nul ", "_nul"),
        ("COM¹", "_COM¹"),
        ("CONSOLE.txt", "CONSOLE.txt"),
        (".hidden", "hidden"),
        ("-rf", "rf"),
        ("photo.jpg.", "photo.jpg"),
        ('a<b>c:d|e?f*g"h.txt', "abcdefgh.txt"),
        ("invoice\u202egpj.exe", "invoicegpj.exe.download"),
        ("zero\u200bwidth.png", "zerowidth.png"),
        ("line\nbreak\x00.txt", "linebreak.txt"),
        ("run.sh", "run.sh.download"),
        ("Setup.EXE", "Setup.EXE.download"),
        ("a.desktop", "a.desktop.download"),
        ("notes.txt", "notes.txt"),
        ("two   spaces.txt", "two spaces.txt"),
        ("Cafe\u0301.txt", "Café.txt"),
    ],
)
def test_bad_names(announced: str, saved: str) -> None:
    assert safe_name(announced) == saved


def test_ten_kilobytes_of_unicode_is_cut_to_the_bound() -> None:
    name = "ж" * 5000 + ".jpg"  # 10 KB of UTF-8
    saved = safe_name(name)
    assert len(saved.encode()) <= MAX_SAVED_NAME_BYTES
    assert saved.endswith(".jpg") and saved.startswith("жжж")
    emoji = "👩‍👩‍👧" * 600  # zero-width joiners are dropped; 4-byte characters kept whole
    assert len(safe_name(emoji).encode()) <= MAX_SAVED_NAME_BYTES
    safe_name(emoji).encode()  # never a broken character


def test_numbered() -> None:
    assert numbered("photo.jpg", 0) == "photo.jpg"
    assert numbered("photo.jpg", 2) == "photo (2).jpg"
    assert numbered("README", 1) == "README (1)"
    long = safe_name("x" * 500 + ".txt")
    assert numbered(long, 999).endswith(" (999).txt")
    assert len(numbered(long, 999).encode()) <= 255


@settings(max_examples=1000)
@given(st.text(max_size=300))
def test_every_saved_name_is_plain(name: str) -> None:
    saved = safe_name(name)
    assert saved and saved not in (".", "..")
    assert len(saved.encode()) <= MAX_SAVED_NAME_BYTES
    assert not any(ch in saved for ch in '/\\\x00<>:"|?*')
    assert not saved.startswith((".", "-", " ")) and not saved.endswith((".", " "))
    assert saved.isprintable()
    assert saved.split(".")[0].upper() not in {"CON", "PRN", "AUX", "NUL", "COM1", "LPT1"}
    assert safe_name(saved) == saved  # stable
