"""Writing ``config.toml``: the commented default that ``meshchat init`` leaves, and
``meshchat config set``.

The default file lists every key under its table, commented out at its default value with a
line saying what it does, so a person sees every choice and the defaults can change in later
versions without a file pinning the old ones. ``set`` edits the file with ``tomlkit``, which
keeps comments and layout; a key still commented out at its default is replaced in place. The
result is read back with the strict loader before it replaces the file (a temporary file, then
an atomic rename), so ``set`` never leaves a file that the next start would refuse.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import textwrap
import tomllib
from pathlib import Path

import tomlkit
import tomlkit.exceptions
from tomlkit.items import Table

from meshchat.config._file import find_key, line_of, parse
from meshchat.config._keys import KEYS, SECTIONS, Key, Kind, Value, check_value
from meshchat.errors import ConfigError

__all__ = ["convert", "default_text", "render", "set_value", "write_default"]

_HEADER = """\
# meshchat configuration (TOML). A line starting with # is a comment: each key below is shown
# commented out at its default value. Remove the # to change one, or run
#     meshchat config set KEY VALUE
# Command-line flags of `meshchat run` and `meshchat daemon` override this file.
# Every key is described in docs/configuration.md.
"""


def render(value: Value) -> str:
    """``value`` written as TOML."""
    return tomlkit.item(value).as_string()


def _key_lines(key: Key) -> list[str]:
    flag = f" (flag: {key.flag})" if key.flag else ""
    about = textwrap.wrap(key.help[:1].upper() + key.help[1:] + flag, width=96)
    return [*(f"# {line}" for line in about), f"# {key.leaf} = {render(key.default)}"]


def default_text() -> str:
    """The commented default file: every key at its default, commented out."""
    lines = [_HEADER]
    for key in KEYS:
        if not key.section:
            lines += [*_key_lines(key), ""]
    for section in SECTIONS:
        lines.append(f"[{section}]")
        for key in KEYS:
            if key.section == section:
                lines += _key_lines(key)
        lines.append("")
    return "\n".join(lines)


def write_default(path: Path) -> bool:
    """Write the commented default to ``path`` unless a file is there; True if written."""
    if path.exists():
        return False
    _write(path, default_text())
    return True


def convert(key: Key, text: str) -> Value:
    """The value a person typed for ``key`` on the command line, checked.

    true/false (also yes/no, on/off, 1/0) for switches; a list is comma-separated or a TOML
    array. Raises :class:`ConfigError` naming the key.
    """
    raw: object = text
    if key.kind is Kind.BOOL:
        word = text.strip().lower()
        if word in {"true", "yes", "on", "1"}:
            raw = True
        elif word in {"false", "no", "off", "0"}:
            raw = False
    elif key.kind is Kind.INT:
        with contextlib.suppress(ValueError):
            raw = int(text.strip(), 10)
    elif key.kind is Kind.FLOAT:
        with contextlib.suppress(ValueError):
            number = float(text.strip())
            if math.isfinite(number):
                raw = number
    elif key.kind is Kind.LIST:
        raw = _list(key, text)
    value, problem = check_value(key, raw)
    if problem is not None or value is None:
        raise ConfigError(problem or "refused", key=key.name)
    return value


def _list(key: Key, text: str) -> object:
    stripped = text.strip()
    if stripped.startswith("["):
        try:
            return tomllib.loads(f"v = {stripped}")["v"]
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"not a TOML list: {stripped}", key=key.name) from exc
    return [part.strip() for part in stripped.split(",") if part.strip()]


def set_value(path: Path, name: str, text: str) -> Value:
    """Set key ``name`` in the file at ``path`` (made from the default if missing) to the value
    ``text`` stands for; returns that value. Raises :class:`ConfigError` and leaves the file
    as it was."""
    key = find_key(name)
    value = convert(key, text)
    try:
        old = path.read_text(encoding="utf-8") if path.exists() else default_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read it: {exc}", path=str(path)) from exc
    parse(old, path)  # a broken file is reported as it is, before any edit
    new = _uncommented(old, key, value)
    if new is None:
        new = _with_tomlkit(old, key, value, path)
    parse(new, path)
    _write(path, new)
    return value


def _uncommented(text: str, key: Key, value: Value) -> str | None:
    """``text`` with the commented-out default line of ``key`` made its assignment, if the key
    is not set already and such a line is in the key's table; else None."""
    if line_of(text, key.name) is not None:
        return None
    lines = text.split("\n")
    table = ""
    pattern = re.compile(rf"^\s*#\s*{re.escape(key.leaf)}\s*=")
    for i, line in enumerate(lines):
        header = re.match(r"^\s*\[\s*([A-Za-z0-9_.-]+)\s*\]\s*(#.*)?$", line)
        if header is not None:
            table = header.group(1)
        elif table == key.section and pattern.match(line):
            lines[i] = f"{key.leaf} = {render(value)}"
            return "\n".join(lines)
    return None


def _with_tomlkit(text: str, key: Key, value: Value, path: Path) -> str:
    try:
        document = tomlkit.parse(text)
    except tomlkit.exceptions.ParseError as exc:
        raise ConfigError(f"not valid TOML: {exc}", path=str(path), line=exc.line) from exc
    if not key.section:
        document[key.leaf] = value
        return document.as_string()
    table = document.get(key.section)
    if not isinstance(table, Table):
        table = tomlkit.table()
        document[key.section] = table
    table[key.leaf] = value
    return document.as_string()


def _write(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` (mode 0600) through a synced temporary file."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(text.encode("utf-8"))
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise ConfigError(f"cannot write it: {exc.strerror or exc}", path=str(path)) from exc
