"""The neighbour flow across two hosts (network namespaces), fresh homes, no cards: alice runs
a daemon; bob types ``/msg alice hi`` in ``meshchat run`` (driven by tmux), then ``/add alice``,
which shows "unverified" until ``/verify alice confirm``."""

from __future__ import annotations

import shlex
import shutil
import sys
from pathlib import Path

import pytest
from meshlab import MESHCHAT, PASSPHRASE, Lab

# The tmux driver lives with the terminal UI's tests; they import it as a sibling module.
sys.path.insert(0, str(Path(__file__).parents[1] / "tui"))
from test_tmux import Tmux, wait_until

pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux"),
]


def test_msg_and_add_a_neighbour_on_another_host(lab: Lab) -> None:
    alice, bob = lab.host("alice"), lab.host("bob")
    lab.link(alice, bob)
    lab.init(alice)
    lab.init(bob)
    alice_id = str(alice.cli_json("id")["node_id"])
    bob_id = str(bob.cli_json("id")["node_id"])
    lab.start(alice)
    env = f"env LANG=C.UTF-8 LC_ALL=C.UTF-8 MESHCHAT_PASSPHRASE={shlex.quote(PASSPHRASE)}"
    run = ["ip", "netns", "exec", bob.netns, MESHCHAT, "--home", str(bob.home), "run"]
    tmux = Tmux()
    try:
        tmux.start(f"{env} {shlex.join(run)}")
        tmux.wait_for(f"lan {alice_id[:8]} ~alice", timeout=60)

        def sent() -> bool:  # once alice's announce has reached bob's node
            tmux.type("/msg alice hi from the next host")
            log = alice.cli_json("log", "dm:" + bob_id)
            return [m["text"] for m in log["messages"]][:1] == ["hi from the next host"]

        wait_until("alice to receive the message", sent, timeout=60, show=tmux.screen)
        screen = tmux.wait_for("not a contact: /add")
        assert f"~alice ({alice_id[:4]})" in screen
        tmux.type("/add alice")
        tmux.wait_for("added alice")
        tmux.wait_for("unverified: /verify alice")
        tmux.type("/verify alice confirm")
        tmux.wait_for("alice is verified")
        [contact] = bob.cli_json("contacts", "list")
        assert contact["node_id"] == alice_id and contact["trust"] == "verified"
        tmux.key("C-q")
        wait_until("meshchat run to quit", tmux.ended, show=tmux.screen)
    finally:
        tmux.kill()
