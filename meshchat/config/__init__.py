"""``config.toml``: the settings a person keeps in the home, under the command-line flags.

:data:`KEYS` lists every key (type, default, the flag that overrides it); :func:`load` reads and
checks a file; :func:`set_value` edits one key and keeps the file's comments;
:func:`write_default` leaves the commented default that ``meshchat init`` writes. Every problem
is a :class:`~meshchat.errors.ConfigError` naming the file, the key and the line.
"""

from meshchat.config._edit import convert, default_text, render, set_value, write_default
from meshchat.config._file import CONFIG_FILE, Config, find_key, line_of, load, parse
from meshchat.config._keys import KEYS, SECTIONS, Key, Kind, Value, check_value, host_port

__all__ = [
    "CONFIG_FILE",
    "KEYS",
    "SECTIONS",
    "Config",
    "Key",
    "Kind",
    "Value",
    "check_value",
    "convert",
    "default_text",
    "find_key",
    "host_port",
    "line_of",
    "load",
    "parse",
    "render",
    "set_value",
    "write_default",
]
