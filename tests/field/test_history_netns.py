"""A group message the relay lost is asked for and resent, and shown before the one that
overtook it: three real daemons in a chain A - B - C (namespaces), B only relays.

B is frozen (SIGSTOP) while A sends message 1, so the frame sits unread in B's socket, then
killed (SIGKILL): message 1 is gone with it. B comes back, A sends message 2, which names 1 as
its parent. C must hold 2, ask the group for 1, get it from A, and show 1 then 2.
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
    a, b, c = lab.host("a"), lab.host("b"), lab.host("c")
    lab.link(a, b)
    lab.link(b, c)
    for host in (a, b, c):
        lab.init(host)
    lab.introduce(a, c)
    lab.start_all([a, b, c])
    lab.wait_neighbours(a, 1)
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
    assert "one: sent while the relay froze" not in texts(c)
    (b.home / "control.sock").unlink(missing_ok=True)
    lab.start(b)
    lab.wait_neighbours(a, 1)
    lab.wait_neighbours(c, 1)

    a.cli("send", "+crew", "two: after the relay came back")
    want = ["warm up", "ready", "one: sent while the relay froze", "two: after the relay came back"]
    eventually(lambda: texts(c) == want)
    assert texts(a) == want
    assert lab.counters(c).get("history.asked", 0) >= 1
    assert lab.counters(a).get("history.resent", 0) >= 1
    shown = log(c)
    assert shown[3]["parents"] and all(not m.get("markers") for m in shown)
