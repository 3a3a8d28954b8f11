"""Three real daemons on three hosts in a chain A - B - C (namespaces; B does not forward IP)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from meshlab import Lab, wait_state

pytestmark = pytest.mark.netns


def test_direct_message_crosses_the_chain_and_the_ack_returns(lab: Lab) -> None:
    a, b, c = lab.host("a"), lab.host("b"), lab.host("c")
    lab.link(a, b)
    lab.link(b, c)
    # IP really cannot cross B: A cannot even open a TCP connection towards C.
    probe = subprocess.run(
        [
            "ip",
            "netns",
            "exec",
            a.netns,
            sys.executable,
            "-c",
            f"import socket; socket.create_connection(({c.addresses[0]!r}, 9), timeout=1)",
        ],
        capture_output=True,
        check=False,
    )
    assert probe.returncode != 0
    assert b"unreachable" in probe.stderr.lower() or b"timed out" in probe.stderr.lower()
    for host in (a, b, c):
        lab.init(host)
    lab.introduce(a, c)
    for host in (a, b, c):
        lab.start(host)
    lab.wait_neighbours(a, 1)
    lab.wait_neighbours(c, 1)
    assert len(lab.neighbours(b)) == 2

    sent = a.cli_json("send", "c", "hello across the chain")
    wait_state(a, "c", sent["msg_id"], "delivered")
    assert [m["text"] for m in c.cli_json("log", "a")["messages"]] == ["hello across the chain"]

    reply = c.cli_json("send", "a", "and back")
    wait_state(c, "a", reply["msg_id"], "delivered")
    texts = [m["text"] for m in a.cli_json("log", "c")["messages"]]
    assert texts == ["hello across the chain", "and back"]
    # A and C never linked directly: each only ever saw B.
    assert lab.neighbours(a) == lab.neighbours(c)
