"""Reading ``config.toml``: strict TOML (``tomllib``), checked key by key against the table.

A file that is not TOML, a key the table does not know, or a value of the wrong type or out of
range gives one :class:`~meshchat.errors.ConfigError` naming the file, the key and its line. A
missing file is no error: every key then has its default.

``tomllib`` reports where a syntax error is but not where a key is, so the line of a key is
found by reading the text again (:func:`line_of`): table headers and ``key =`` lines, outside
comments.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from meshchat.config._keys import BY_NAME, KEYS, SECTIONS, Key, Value, check_value
from meshchat.errors import ConfigError
from meshchat.home import CONFIG_FILE

__all__ = ["CONFIG_FILE", "Config", "find_key", "line_of", "load", "parse"]
#: larger files are refused before parsing (the real one is a few kilobytes)
MAX_CONFIG_BYTES = 256 * 1024

_TOML_POSITION = re.compile(r"\(at line (\d+), column (\d+)\)")
_HEADER = re.compile(r"^\[\s*([^\[\]]+?)\s*\]$")
_PART = r"""(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')"""
_ASSIGN = re.compile(rf"^({_PART}(?:\s*\.\s*{_PART})*)\s*=")


@dataclass(frozen=True, slots=True)
class Config:
    """Every key's value: from the file where it sets one, else the default."""

    values: Mapping[str, Value] = field(default_factory=lambda: {k.name: k.default for k in KEYS})
    #: the keys the file sets
    given: frozenset[str] = frozenset()
    path: Path | None = None

    def __getitem__(self, key: str) -> Value:
        return self.values[find_key(key).name]

    def text(self, key: str) -> str:
        value = self[key]
        if not isinstance(value, str):
            raise TypeError(f"{key} is not a string")
        return value

    def integer(self, key: str) -> int:
        value = self[key]
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"{key} is not an integer")
        return value

    def number(self, key: str) -> float:
        value = self[key]
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise TypeError(f"{key} is not a number")
        return float(value)

    def flag(self, key: str) -> bool:
        value = self[key]
        if not isinstance(value, bool):
            raise TypeError(f"{key} is not true or false")
        return value

    def texts(self, key: str) -> list[str]:
        value = self[key]
        if not isinstance(value, list):
            raise TypeError(f"{key} is not a list")
        return list(value)


def find_key(name: str, *, path: str | None = None, line: int | None = None) -> Key:
    """The key called ``name``; :class:`ConfigError` naming it (and the nearest known key)."""
    key = BY_NAME.get(name)
    if key is not None:
        return key
    known = [k.name for k in KEYS] + list(SECTIONS)
    near = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean {near[0]}?)" if near else ""
    raise ConfigError(f"unknown key{hint}", path=path, key=name, line=line)


def load(path: Path) -> Config:
    """The configuration in ``path``; every default when the file does not exist."""
    try:
        with path.open("rb") as f:
            data = f.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        return Config(path=path)
    except OSError as exc:
        raise ConfigError(f"cannot read it: {exc.strerror or exc}", path=str(path)) from exc
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"larger than {MAX_CONFIG_BYTES} bytes", path=str(path))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError("not UTF-8 text", path=str(path), line=line) from exc
    return parse(text, path)


def parse(text: str, path: Path | None = None) -> Config:
    """Check ``text`` against the key table. Raises :class:`ConfigError`."""
    where = str(path) if path is not None else None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        position = _TOML_POSITION.search(message)
        line = int(position.group(1)) if position else None
        problem = _TOML_POSITION.sub("", message).strip()
        raise ConfigError(f"not valid TOML: {problem}", path=where, line=line) from exc
    values: dict[str, Value] = {k.name: k.default for k in KEYS}
    given: set[str] = set()
    for name, raw in _flatten(document, text, where):
        key = find_key(name, path=where, line=line_of(text, name))
        value, refused = check_value(key, raw)
        if refused is not None or value is None:
            raise ConfigError(refused or "refused", path=where, key=name, line=line_of(text, name))
        if (secret := _secret_in(key, value)) is not None:
            raise ConfigError(secret, path=where, key=name, line=line_of(text, name))
        values[name] = value
        given.add(name)
    return Config(values, frozenset(given), path)


def _secret_in(key: Key, value: Value) -> str | None:
    """What is wrong with keeping ``value`` in the file: a relay URL with a password in it
    (the file is plain text; a flag's URL is not kept anywhere)."""
    if key.name != "internet.relays" or not isinstance(value, list):
        return None
    for url in value:
        try:
            has_password = urlsplit(url).password is not None
        except ValueError:
            continue
        if has_password:
            return (
                "a relay URL here must not hold a password or token: put it in "
                "$MESHCHAT_RELAY_PASSWORD (and the user name in internet.relay_user)"
            )
    return None


def _flatten(document: dict[str, object], text: str, where: str | None) -> list[tuple[str, object]]:
    """(dotted key, value) for every value in the document: top-level keys and one level of
    tables. A table where a value belongs, or deeper tables, are unknown keys."""
    out: list[tuple[str, object]] = []
    for name, value in document.items():
        if name in SECTIONS:
            if not isinstance(value, dict):
                raise ConfigError(
                    "must be a table ([" + name + "])", path=where, key=name,
                    line=line_of(text, name),
                )  # fmt: skip
            out += [(f"{name}.{leaf}", v) for leaf, v in value.items()]
        else:
            out.append((name, value))
    return out


def line_of(text: str, key: str) -> int | None:
    """The line (1-based) where ``key`` (dotted) is set or its table begins, if it can be found."""
    table = ""
    for number, raw in enumerate(text.splitlines(), start=1):
        line = _without_comment(raw).strip()
        if not line:
            continue
        header = _HEADER.match(line)
        if header is not None and not line.startswith("[["):
            table = _dotted(header.group(1))
            if table == key:
                return number
            continue
        assign = _ASSIGN.match(line)
        if assign is None:
            continue
        name = _dotted(assign.group(1))
        full = f"{table}.{name}" if table else name
        if full == key or key.startswith(full + "."):
            return number
    return None


def _dotted(text: str) -> str:
    """A TOML key as written (``a . "b"``) -> ``a.b``."""
    parts = re.findall(r"""[A-Za-z0-9_-]+|"[^"]*"|'[^']*'""", text)
    return ".".join(p.strip("\"'") for p in parts)


def _without_comment(line: str) -> str:
    """The line up to a ``#`` that is not inside a string."""
    quote = ""
    i = 0
    while i < len(line):
        ch = line[i]
        if quote:
            if ch == "\\" and quote == '"':
                i += 1  # an escaped character, perhaps a quote
            elif ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch == "#":
            return line[:i]
        i += 1
    return line
