"""Linking a second device across two hosts (network namespaces), real processes, own homes.

The existing device runs a daemon and ``meshchat device link``; the new device has no home yet
and runs ``meshchat init --link CODE``, which creates its identity and runs a node until it is
linked. Both print the same confirmation string; the person (this test) types the string the
new device shows on the existing one and ``y`` on the new one. Afterwards ``device list --json``
on both shows the same account with both devices. And a wrong ``--confirm`` string on the new
device links nothing: both sides say so.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from meshlab import MESHCHAT, PASSPHRASE, Host, Lab

pytestmark = [pytest.mark.netns]


class Proc:
    """A CLI process whose output lines are read as they come (stdin is ours to type)."""

    def __init__(self, argv: list[str]) -> None:
        env = {**os.environ, "MESHCHAT_PASSPHRASE": PASSPHRASE}
        self.p = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        self.lines: list[str] = []

    def until(self, prefix: str, timeout: float = 90) -> str:
        """The rest of the first line starting with ``prefix``."""
        assert self.p.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.p.stdout.readline()
            if not line:
                break
            self.lines.append(line)
            if line.startswith(prefix):
                return line[len(prefix) :].strip()
        raise AssertionError(f"no {prefix!r} in:\n{''.join(self.lines)}")

    def type(self, text: str) -> None:
        assert self.p.stdin is not None
        self.p.stdin.write(text + "\n")
        self.p.stdin.flush()

    def finish(self, timeout: float = 60) -> tuple[int, str]:
        out, _ = self.p.communicate(timeout=timeout)
        return self.p.returncode, "".join(self.lines) + out

    def kill(self) -> None:
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()


def cli(host: Host, *args: str) -> list[str]:
    return [MESHCHAT, "--home", str(host.home), *args]


def in_netns(host: Host, *args: str) -> list[str]:
    return ["ip", "netns", "exec", host.netns, *cli(host, *args)]


def test_a_second_device_links_in_three_commands(lab: Lab) -> None:
    desk, laptop = lab.host("desk"), lab.host("laptop")
    lab.link(desk, laptop)
    lab.init(desk)
    lab.start(desk)
    existing = Proc(cli(desk, "device", "link"))
    new: Proc | None = None
    try:
        code = existing.until("Link code:")
        assert not Path(laptop.home).exists()
        new = Proc(
            in_netns(
                laptop,
                "init",
                "--name",
                "desk",
                "--kdf",
                "interactive",
                "--device-name",
                "laptop",
                "--link",
                code,
            )
        )
        shown_new = new.until("Confirmation string:")
        shown_existing = existing.until("Confirmation string:")
        assert shown_new == shown_existing and len(shown_new.replace(" ", "")) == 6
        existing.type(shown_new)  # the person types what the new device shows
        new.type("y")
        status_e, out_e = existing.finish()
        status_n, out_n = new.finish()
        assert (status_e, status_n) == (0, 0), out_e + out_n
        assert "laptop" in out_e and "Linked" in out_n
    finally:
        existing.kill()
        if new is not None:
            new.kill()
    on_desk = desk.cli_json("device", "list")
    on_laptop = laptop.cli_json("device", "list")  # no node runs there: read from its store
    assert on_desk["account_id"] == on_laptop["account_id"]
    assert on_desk["account_id"] == desk.cli_json("id")["node_id"]
    assert len(on_desk["devices"]) == len(on_laptop["devices"]) == 2
    assert {d["name"] for d in on_laptop["devices"]} == {"desk", "laptop"}
    [own] = desk.cli_json("contacts", "list")
    assert own["trust"] == "own" and own["name"] == "laptop"


def test_a_wrong_confirmation_string_links_nothing(lab: Lab) -> None:
    desk, laptop = lab.host("desk"), lab.host("laptop")
    lab.link(desk, laptop)
    lab.init(desk)
    lab.init(laptop)
    lab.start_all([desk, laptop])
    existing = Proc(cli(desk, "device", "link", "--no-qr"))
    new: Proc | None = None
    try:
        code = existing.until("Link code:")
        new = Proc(cli(laptop, "device", "join", code, "--confirm", "000 000"))
        shown_new = new.until("Confirmation string:")
        shown_existing = existing.until("Confirmation string:")
        assert shown_new == shown_existing != "000 000"
        status_n, out_n = new.finish()
        status_e, out_e = existing.finish()  # told while it asks, without an answer
        assert status_n == 1 and "strings differ" in out_n
        assert status_e == 1 and "not linked" in out_e
    finally:
        existing.kill()
        if new is not None:
            new.kill()
    for host in (desk, laptop):
        listed = host.cli_json("device", "list")
        assert len(listed["devices"]) == 1
        assert listed["account_id"] == host.cli_json("id")["node_id"]
