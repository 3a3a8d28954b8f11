"""A group message a killed relay lost is resent, and shown before the one that overtook it.

Real daemons in namespaces: a chain A - B - C, and D, a dead end hanging off A. Only A and C
are in the group; B and D only relay. B is frozen (SIGSTOP) while A sends message 1, so the
frame sits unread in B's socket, then killed (SIGKILL): message 1 is gone with it. While B is
down A sends message 2, which names 1 as its parent (it leaves through D). When B comes back,
A hands it what it carries, newest first, so 2 reaches C before 1: C must hold 2, take 1 (as
resent by A's store-and-forward, or by answering C's request, whichever comes first) and show
1 then 2, with no gap marker.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import pytest
from meshlab import Host, Lab

pytestmark = pytest.mark.netns


def eventually(check: Any, timeout: float = 45.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        time.sleep(0.2)


def log(host: Host) -> list[dict[str, Any]]:
    return list(host.cli_json("log", "+crew")["messages"])


def texts(host: Host) -> list[str]:
    return [m["text"] for m in log(host)]


def test_the_message_a_killed_relay_lost_is_resent_and_shown_first(lab: Lab) -> None:
    a, b, c, d = lab.host("a"), lab.host("b"), lab.host("c"), lab.host("d")
    lab.link(a, b)
    lab.link(b, c)
    lab.link(a, d)
    for host in (a, b, c, d):
        lab.init(host)
    lab.introduce(a, c)
    lab.start_all([a, b, c, d])
    lab.wait_neighbours(a, 2)
    lab.wait_neighbours(c, 1)

    a.cli_json("group", "create", "crew", "c")
    eventually(lambda: any(g["name"] == "crew" for g in c.cli_json("group", "list")["groups"]))
    a.cli("send", "+crew", "warm up")
    eventually(lambda: texts(c) == ["warm up"])
    c.cli("send", "+crew", "ready")  # A now holds C's sender key: it can read C's requests
    eventually(lambda: texts(a) == ["warm up", "ready"])

    assert b.process is not None
    os.kill(b.process.pid, signal.SIGSTOP)
    a.cli("send", "+crew", "one: sent while the relay froze")
    time.sleep(1.0)  # the frame sits unread in the frozen relay's socket
    lab.stop(b, signal.SIGKILL)
    a.cli("send", "+crew", "two: while the relay was down")
    time.sleep(0.5)
    assert texts(c) == ["warm up", "ready"]
    assert lab.counters(c).get("history.held", 0) == 0
    (b.home / "control.sock").unlink(missing_ok=True)
    lab.start(b)

    want = ["warm up", "ready", "one: sent while the relay froze", "two: while the relay was down"]
    eventually(lambda: texts(c) == want)
    assert texts(a) == want
    assert lab.counters(c).get("history.held", 0) >= 1  # "two" came first and waited
    shown = log(c)
    one, two = shown[2], shown[3]
    assert one["msg_id"] in two["parents"]
    assert all(not m.get("markers") for m in shown)
