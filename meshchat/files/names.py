"""File names a sender chose, made safe to save under on any operating system.

:func:`safe_name` turns the announced name into one plain file name:

* only the last path component is kept, whichever separator (``../../.bashrc`` gives
  ``bashrc``, ``/dev/zero`` gives ``zero``, ``C:\\x\\y.txt`` gives ``y.txt``);
* controls, format and invisible characters (bidi overrides that show ``exe.jpg`` for
  ``gpj.exe``, zero-width spaces) are dropped, and so are the characters Windows refuses in
  names (``<>:"|?*``); runs of spaces become one;
* leading dots, dashes and spaces go (no hidden files, no names read as options), and so do
  trailing dots and spaces (Windows drops them, which would change the name);
* a Windows device name (``CON``, ``nul.txt``, ``COM1``, ``LPT9.tar.gz``) gets a ``_`` in
  front; an empty result becomes ``file``;
* an extension that runs code when opened (``.exe``, ``.sh``, ``.desktop``, ...) gets
  ``.download`` added, so opening the file shows it rather than runs it (and files are saved
  without any execute permission anyway);
* the result is at most :data:`MAX_SAVED_NAME_BYTES` bytes of UTF-8 (the stem is shortened,
  the extension kept), NFC-normalised.

:func:`numbered` gives the n-th alternative (``photo (2).jpg``) for when a name is taken.
"""

from __future__ import annotations

import re
import unicodedata

from meshchat.display import is_hidden

__all__ = ["MAX_SAVED_NAME_BYTES", "RISKY_EXTENSIONS", "numbered", "safe_name"]

#: Longest saved name in UTF-8 bytes (file systems allow 255; room is left for a number and
#: ``.download``).
MAX_SAVED_NAME_BYTES = 120
_MAX_EXT_CHARS = 16
_FALLBACK = "file"
_REFUSED = frozenset('<>:"|?*\x00')
_SEPARATORS = re.compile(r"[/\\]")
_SPACES = re.compile(r"\s+")
_DEVICES = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$", "CLOCK$"}
    | {f"{p}{n}" for p in ("COM", "LPT") for n in [*"0123456789", "¹", "²", "³"]}
)
#: Extensions of files that run code when opened on some desktop.
RISKY_EXTENSIONS = frozenset(
    {
        "app", "apk", "appimage", "bat", "cmd", "com", "command", "cpl", "deb", "desktop",
        "dll", "dmg", "exe", "hta", "jar", "js", "jse", "lnk", "msi", "msp", "pif", "pkg",
        "ps1", "py", "reg", "rpm", "run", "scr", "sh", "so", "url", "vb", "vbe", "vbs",
        "ws", "wsf",
    }
)  # fmt: skip


def _split(name: str) -> tuple[str, str]:
    """``(stem, extension)``, the extension with its dot, short and alphanumeric, or ''."""
    dot = name.rfind(".")
    ext = name[dot + 1 :] if dot > 0 else ""
    if ext and len(ext) <= _MAX_EXT_CHARS and ext.isalnum():
        return name[:dot], name[dot:]
    return name, ""


def _fit(stem: str, ext: str, limit: int) -> str:
    """``stem + ext`` in at most ``limit`` UTF-8 bytes, shortening the stem."""
    room = limit - len(ext.encode())
    encoded = stem.encode()
    if len(encoded) > room:
        stem = encoded[:room].decode(errors="ignore")
        stem = stem.rstrip(". ")
    return (stem or _FALLBACK) + ext


def safe_name(name: str) -> str:
    """A file name made from ``name`` that is safe to create in a downloads folder."""
    text = unicodedata.normalize("NFC", name)
    text = _SEPARATORS.split(text)[-1]
    text = "".join(ch for ch in text if not (ch in _REFUSED or is_hidden(ch)))
    text = _SPACES.sub(" ", text)
    text = text.lstrip(".- ").rstrip(". ")
    if not text:
        text = _FALLBACK
    if text.split(".", 1)[0].rstrip(" ").upper() in _DEVICES:
        text = "_" + text
    stem, ext = _split(text)
    if ext[1:].lower() in RISKY_EXTENSIONS:
        stem, ext = stem + ext, ".download"
    return unicodedata.normalize("NFC", _fit(stem, ext, MAX_SAVED_NAME_BYTES))


def numbered(name: str, number: int) -> str:
    """The ``number``-th alternative to ``name`` (a safe name): ``stem (number).ext``."""
    if number == 0:
        return name
    stem, ext = _split(name)
    suffix = f" ({number})"
    return _fit(stem, suffix + ext, MAX_SAVED_NAME_BYTES + len(suffix))
