"""``meshchat config get|set|path``: the home's ``config.toml``."""

from __future__ import annotations

import argparse

from meshchat.cli.common import emit_json, say
from meshchat.config import KEYS, Value, find_key, load, render, set_value
from meshchat.home import Home

__all__ = ["add_config_parser"]


def add_config_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    config = sub.add_parser(
        "config",
        help="read or change config.toml (flags of run and daemon override it)",
        description="Read or change the settings file config.toml in the home. The keys are "
        "listed in docs/configuration.md and by 'meshchat config get'.",
    )
    csub = config.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    p = csub.add_parser("get", help="a key's value (every key when none is named)")
    p.set_defaults(fn=cmd_config_get)
    p.add_argument("key", nargs="?", help="a dotted key, e.g. lan.port")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = csub.add_parser("set", help="set a key in the file (its comments are kept)")
    p.set_defaults(fn=cmd_config_set)
    p.add_argument("key", help="a dotted key, e.g. lan.port")
    p.add_argument("value", help="the value: true/false, a number, text, or a comma-separated list")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = csub.add_parser("path", help="where the file is (it may not exist yet)")
    p.set_defaults(fn=cmd_config_path)


def _plain(value: Value) -> str:
    """A value as a script reads it: text as is, anything else as TOML."""
    return value if isinstance(value, str) else render(value)


def cmd_config_get(args: argparse.Namespace, home: Home) -> int:
    config = load(home.config)
    if args.key is not None:
        key = find_key(args.key)
        value = config[key.name]
        if args.json:
            emit_json(
                {
                    "key": key.name,
                    "value": value,
                    "default": key.default,
                    "in_file": key.name in config.given,
                    "flag": key.flag,
                }
            )
        else:
            say(_plain(value))
        return 0
    if args.json:
        emit_json({k.name: config[k.name] for k in KEYS})
        return 0
    for key in KEYS:
        mark = "" if key.name in config.given else "  # default"
        say(f"{key.name} = {render(config[key.name])}{mark}")
    return 0


def cmd_config_set(args: argparse.Namespace, home: Home) -> int:
    home.ensure()
    value = set_value(home.config, args.key, args.value)
    key = find_key(args.key)
    if args.json:
        emit_json({"key": key.name, "value": value, "path": str(home.config)})
    else:
        say(f"{key.name} = {render(value)}  (read when 'meshchat run' or 'daemon' starts)")
    return 0


def cmd_config_path(args: argparse.Namespace, home: Home) -> int:
    say(str(home.config))
    return 0
