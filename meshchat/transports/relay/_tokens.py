"""Relay access tokens: what a ``meshchat relay`` operator hands out to the gateways it serves.

A token file holds one ``name:hash`` line per token (``#`` starts a comment), where ``hash`` is
``BLAKE2b-32(token, person "mc-relay-token")`` in hex: the file does not hold the tokens
themselves, so reading it does not let anyone connect. A gateway connects with the name as its
MQTT user name and the token as its password (``mqtt://name:token@host``). Pure file parsing and
comparison; no MQTT.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from meshchat.errors import UsageError

__all__ = ["TokenBook", "add_token", "token_hash"]

_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
_HASH = re.compile(r"[0-9a-f]{64}")
#: a token file larger than this is not a token file
_MAX_FILE = 1 << 20


def token_hash(token: str) -> str:
    return hashlib.blake2b(token.encode(), digest_size=32, person=b"mc-relay-token").hexdigest()


@dataclass(frozen=True, slots=True)
class TokenBook:
    """The tokens a relay accepts, by name."""

    hashes: dict[str, str]

    @classmethod
    def parse(cls, text: str) -> TokenBook:
        """Raises :class:`UsageError` naming the first bad line."""
        hashes: dict[str, str] = {}
        for number, raw in enumerate(text.splitlines(), 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            name, sep, digest = line.partition(":")
            if not sep or not _NAME.fullmatch(name) or not _HASH.fullmatch(digest):
                raise UsageError(f"token file line {number}: expected name:hash")
            hashes[name] = digest
        return cls(hashes)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> TokenBook:
        try:
            with open(path, "rb") as f:
                raw = f.read(_MAX_FILE + 1)
        except FileNotFoundError:
            return cls({})
        except OSError as exc:
            raise UsageError(f"cannot read token file {path}: {exc}") from exc
        if len(raw) > _MAX_FILE:
            raise UsageError(f"token file {path} is too large")
        try:
            return cls.parse(raw.decode())
        except UnicodeDecodeError as exc:
            raise UsageError(f"token file {path} is not text") from exc

    def check(self, name: str | None, token: str | bytes | None) -> bool:
        """True if ``token`` is the token of ``name`` (compared in constant time)."""
        if name is None or token is None:
            return False
        expected = self.hashes.get(name)
        if expected is None:
            return False
        if isinstance(token, bytes):
            try:
                token = token.decode()
            except UnicodeDecodeError:
                return False
        return hmac.compare_digest(expected, token_hash(token))


def add_token(path: Path, name: str) -> str:
    """Append a new token for ``name`` to the token file (created 0600); returns the token.

    A name that already has a token gets a new one (the old line is kept out)."""
    if not _NAME.fullmatch(name):
        raise UsageError("a token name is 1-64 letters, digits, '.', '_' or '-'")
    book = TokenBook.load(path)
    token = secrets.token_urlsafe(24)
    hashes = {**book.hashes, name: token_hash(token)}
    text = "# meshchat relay tokens (name:hash); a gateway connects as mqtt://name:token@host\n"
    text += "".join(f"{n}:{h}\n" for n, h in hashes.items())
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)
    return token
