"""Linking a second device across two hosts (network namespaces), real processes, own homes.

The existing device runs ``meshchat device link`` (no daemon: the command runs the node); the
new device has no home yet and runs ``meshchat init --link CODE``, which creates its identity
and runs a node until it is linked. Both print the same confirmation string; the person (this
test) types the string the new device shows on the existing one and ``y`` on the new one.
Afterwards ``device list --json`` on both shows the same account with both devices. A wrong
``--confirm`` string on the new device links nothing: both sides say so. And the lab's helper
links two running daemons.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from meshlab import MESHCHAT, CliProcess, Host, Lab

pytestmark = [pytest.mark.netns]


def cli(host: Host, *args: str) -> list[str]:
    return [MESHCHAT, "--home", str(host.home), *args]


def in_netns(host: Host, *args: str) -> list[str]:
    return ["ip", "netns", "exec", host.netns, *cli(host, *args)]


def test_a_second_device_links_in_three_commands(lab: Lab) -> None:
    desk, laptop = lab.host("desk"), lab.host("laptop")
    lab.link(desk, laptop)
    lab.init(desk)
    # the three commands of the README: no daemon runs; each command runs its node
    existing = CliProcess(in_netns(desk, "device", "link"))
    new: CliProcess | None = None
    try:
        code = existing.until("Link code:")
        assert not Path(laptop.home).exists()
        new = CliProcess(
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
    on_desk = desk.cli_json("device", "list")  # no node runs: read from the stores
    on_laptop = laptop.cli_json("device", "list")
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
    existing = CliProcess(cli(desk, "device", "link", "--no-qr"))
    new: CliProcess | None = None
    try:
        code = existing.until("Link code:")
        new = CliProcess(cli(laptop, "device", "join", code, "--confirm", "000 000"))
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


def test_the_lab_links_two_running_devices(lab: Lab) -> None:
    """What other field tests use to make two homes one account."""
    desk, laptop = lab.host("desk"), lab.host("laptop")
    lab.link(desk, laptop)
    lab.init(desk)
    lab.init(laptop)
    lab.start_all([desk, laptop])
    string = lab.link_devices(desk, laptop, "laptop")
    assert len(string) == 7
    on_desk, on_laptop = desk.cli_json("device", "list"), laptop.cli_json("device", "list")
    assert on_desk["account_id"] == on_laptop["account_id"] == desk.cli_json("id")["node_id"]
    assert {d["name"] for d in on_desk["devices"]} == {"desk", "laptop"}
