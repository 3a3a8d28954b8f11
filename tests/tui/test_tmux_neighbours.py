"""The neighbour flow in a real terminal: fresh homes, no cards exchanged. The second user
types ``/msg NAME hi`` to a neighbour listed by its announced name, then ``/add NAME``, sees
"unverified" until ``/verify NAME confirm``."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

from test_tmux import (
    LOOPBACK,
    MESHCHAT,
    PASSPHRASE,
    Tmux,
    base_env,
    cli,
    init_home,
    pytestmark,  # noqa: F401 (slow, needs tmux)
    run_command,
    tmux,  # noqa: F401 (a fixture)
    wait_until,
)


def test_msg_then_add_a_neighbour_without_a_card(tmp_path: Path, tmux: Tmux) -> None:  # noqa: F811
    # unique names: other tests' nodes on this host's loopback may announce themselves too
    name = f"alice{uuid.uuid4().hex[:4]}"
    home_a, home_b = tmp_path / "a", tmp_path / "b"
    alice = init_home(home_a, name)
    bob = init_home(home_b, f"bob{uuid.uuid4().hex[:4]}")
    daemon_log = (tmp_path / "daemon.log").open("w")
    daemon = subprocess.Popen(
        [str(MESHCHAT), "--home", str(home_a), "daemon", *LOOPBACK],
        env=base_env(MESHCHAT_PASSPHRASE=PASSPHRASE),
        stdout=subprocess.DEVNULL,
        stderr=daemon_log,
    )
    try:
        wait_until("alice's node", (home_a / "control.sock").exists)
        tmux.start(run_command(home_b, passphrase=PASSPHRASE, args=LOOPBACK))
        tmux.wait_for(f"lan {alice['node_id'][:8]} ~{name}")
        tmux.type("/who")
        tmux.wait_for(f"~{name}")

        def typed_and_sent() -> bool:  # once alice's announce (not only her link) is in
            tmux.type(f"/msg {name} hi neighbour")
            log = json.loads(cli(home_a, "log", "dm:" + bob["node_id"], "--json"))
            return [m["text"] for m in log["messages"]][:1] == ["hi neighbour"]

        wait_until("alice to receive the message", typed_and_sent, timeout=60, show=tmux.screen)
        screen = tmux.wait_for("not a contact: /add")
        assert f"~{name} ({alice['node_id'][:4]})" in screen

        tmux.type(f"/add {name}")
        screen = tmux.wait_for(f"added {name}")
        assert "unverified" in screen
        tmux.wait_for(f"unverified: /verify {name}")
        tmux.type(f"/verify {name} confirm")
        tmux.wait_for(f"{name} is verified")
        contacts = json.loads(cli(home_b, "contacts", "list", "--json"))
        [contact] = [c for c in contacts if c["name"] == name]
        assert contact["node_id"] == alice["node_id"] and contact["trust"] == "verified"
        tmux.key("C-q")
        wait_until("meshchat run to quit", tmux.ended, show=tmux.screen)
    finally:
        daemon.terminate()
        daemon.wait(timeout=10)
        daemon_log.close()
