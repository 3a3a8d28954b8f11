"""The acceptance test of one person on several devices, in namespaces with real daemons.

Four hosts, each its own home: Alice's A1 and A2, Bob's B1 and B2, linked A1-A2, B1-B2,
A1-B1, A1-B2, A2-B1, A2-B2 (point-to-point links; a node relays and carries for the others).
A2 and B2 join their accounts with ``meshchat device link`` / ``meshchat init --link CODE``;
A1 and B1 exchange cards. Then, with the daemons started and stopped as the steps say:

1. Alice's A1 is online, Bob is offline: Alice sends a message to Bob.
2. Bob's B1 comes online: the message is delivered from A1 to B1.
3. Bob's B2 comes online: the message reaches B2 (from A1, or from B1), under the same id.
4. A1 goes offline and Alice's A2 comes online: Alice's own sent copy (A1's carbon to A2,
   which B1 and B2 carried) reaches A2, from B1 or B2.

Then, with A1 back: a deletion on B1 disappears on B2 and A1's retry of B2's copy does not
bring it back (B2 was offline when Alice sent it and when B1 deleted it; when B2 comes up both
the erasure from B1 and A1's copy arrive, in either order); and after ``device revoke b2`` on
B1, a new message from Alice reaches B1 and not B2: B2's store does not have it, A1 made no
copy for B2 (``log --json`` devices), and the frames B2's interfaces received while it was
sent (captured) never carry its text in clear.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from meshlab import MESHCHAT, CliProcess, Host, Lab, read_capture

pytestmark = [pytest.mark.netns, pytest.mark.timeout(600)]

STEP_S = 60.0


def eventually(check: Callable[[], bool], what: str, timeout: float = STEP_S) -> float:
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise TimeoutError(what)
        time.sleep(0.25)
    return time.monotonic() - start


def link_device(existing: Host, new: Host, person: str) -> None:
    """``new`` (no home yet) joins ``existing``'s account: ``meshchat device link`` there (its
    daemon runs), ``meshchat init --link CODE`` in ``new``'s namespace."""
    home = [MESHCHAT, "--home"]
    inviter = CliProcess([*home, str(existing.home), "device", "link", "--no-qr"])
    joiner: CliProcess | None = None
    try:
        code = inviter.until("Link code:")
        joiner = CliProcess(
            [
                "ip", "netns", "exec", new.netns, *home, str(new.home), "init", "--name", person,
                "--kdf", "interactive", "--device-name", new.name, "--link", code,
            ]
        )  # fmt: skip
        shown = joiner.until("Confirmation string:")
        assert inviter.until("Confirmation string:") == shown
        inviter.type(shown)
        joiner.type("y")
        assert inviter.finish()[0] == 0
        assert joiner.finish()[0] == 0
    finally:
        inviter.kill()
        if joiner is not None:
            joiner.kill()


def messages(host: Host, target: str) -> list[dict[str, Any]]:
    result = host.cli("log", target, "--json", check=False)
    if result.returncode != 0:
        return []
    return list(json.loads(result.stdout)["messages"])


def has(host: Host, target: str, msg_id: str) -> bool:
    return any(m["msg_id"] == msg_id for m in messages(host, target))


def copies(host: Host, target: str, msg_id: str) -> dict[str, str]:
    """Which devices the sender's copies of ``msg_id`` went to, and their states."""
    for m in messages(host, target):
        if m["msg_id"] == msg_id:
            return {d["device"]: d["state"] for d in m.get("devices", [])}
    return {}


def test_a_message_reaches_every_device_of_both_people(lab: Lab) -> None:
    a1, a2, b1, b2 = (lab.host(n) for n in ("a1", "a2", "b1", "b2"))
    for x, y in ((a1, a2), (b1, b2), (a1, b1), (a1, b2), (a2, b1), (a2, b2)):
        lab.link(x, y)
    a1.cli("init", "--name", "alice", "--kdf", "interactive", "--device-name", "a1")
    b1.cli("init", "--name", "bob", "--kdf", "interactive", "--device-name", "b1")
    lab.start_all([a1, b1])
    lab.introduce(a1, b1)
    lab.wait_neighbours(a1, 1)
    # Each new list is shared with every contact device: A1 learns B2, B1 learns A2.
    link_device(a1, a2, "alice")
    link_device(b1, b2, "bob")
    bob_account = b1.cli_json("device", "list")["account_id"]
    alice_account = a1.cli_json("device", "list")["account_id"]
    b1_id, b2_id = (h.cli_json("id")["node_id"] for h in (b1, b2))
    bob, alice = "dm:" + bob_account, "dm:" + alice_account  # each side's conversation
    eventually(
        lambda: any(c["node_id"] == b2_id for c in a1.cli_json("contacts", "list")),
        "A1 never learnt Bob's second device",
    )
    lab.stop(b1)  # Bob is offline (B2's node ended when it was linked)

    # 1. A1 online, Bob offline: Alice writes to Bob.
    sent = a1.cli_json("send", "bob", "hello from alice")
    assert sent["conversation"] == bob
    msg_id = sent["msg_id"]
    assert sent["state"] == "queued" or sent["state"] == "sent"

    # 2. B1 comes online: delivered from A1 to B1.
    lab.start(b1)
    took = {"B1 after it came up": eventually(lambda: has(b1, alice, msg_id), "B1 never got it")}
    [mine] = [m for m in messages(a1, bob) if m["msg_id"] == msg_id]
    eventually(
        lambda: any(m["msg_id"] == msg_id and m["state"] == "delivered" for m in messages(a1, bob)),
        "A1 never saw it delivered",
    )
    assert mine["outgoing"]

    # 3. B2 comes online: the message reaches it, under the same id.
    lab.start(b2)
    took["B2 after it came up"] = eventually(lambda: has(b2, alice, msg_id), "B2 never got it")
    on_b1 = [m for m in messages(b1, alice) if m["msg_id"] == msg_id]
    on_b2 = [m for m in messages(b2, alice) if m["msg_id"] == msg_id]
    assert len(on_b1) == len(on_b2) == 1
    assert on_b1[0]["conversation"] == on_b2[0]["conversation"] == alice
    # Which of Bob's devices A1 has seen ack its own copy (log --json lists them).
    [sent_log] = [m for m in messages(a1, bob) if m["msg_id"] == msg_id]
    devices = {d["device"]: d["state"] for d in sent_log.get("devices", [])}
    assert devices.get(b1_id) == "delivered"
    print("A1's copies:", {k[:8]: v for k, v in devices.items()}, "B2:", b2_id[:8])

    # 4. A1 goes offline, A2 comes online: Alice's sent copy reaches A2 from B1 or B2.
    lab.stop(a1)
    lab.start(a2)
    took["A2's carbon after it came up"] = eventually(
        lambda: has(a2, bob, msg_id), "A2 never got Alice's sent copy"
    )
    [copy] = [m for m in messages(a2, bob) if m["msg_id"] == msg_id]
    assert copy["outgoing"] and copy["text"] == "hello from alice"
    assert copy["conversation"] == bob

    # 5. A deletion on B1 disappears on B2, and A1's retry of B2's copy does not restore it.
    lab.stop(b2)
    lab.start(a1)
    lab.wait_neighbours(a1, 1)
    second = a1.cli_json("send", "bob", "delete me")["msg_id"]
    eventually(lambda: has(b1, alice, second), "B1 never got the second message")
    assert copies(a1, bob, second).get(b2_id) in ("queued", "sent")  # B2 still owed a copy
    b1.cli("delete", alice, second, "--yes")
    assert not has(b1, alice, second)
    lab.start(b2)  # B1's erasure and A1's retried copy both come now
    eventually(
        lambda: copies(a1, bob, second).get(b2_id) == "delivered",
        "A1's retry never reached B2",
    )
    took["the deletion on B2"] = eventually(
        lambda: not has(b2, alice, second), "the deletion never reached B2"
    )
    time.sleep(5)  # anything else in flight (another retry, a sync) has had its chance
    assert not has(b2, alice, second) and not has(b1, alice, second)

    # 6. B1 revokes B2: a new message from Alice reaches B1 and not B2.
    b1.cli("device", "revoke", "b2")
    eventually(
        lambda: all(c["node_id"] != b2_id for c in a1.cli_json("contacts", "list")),
        "A1 never took Bob's new list",
    )
    capture = lab.root / "b2.frames"
    sniffer = lab.capture(b2, capture)
    text = "after the revocation"
    third = a1.cli_json("send", "bob", text)["msg_id"]
    eventually(lambda: has(b1, alice, third), "B1 never got the message after the revocation")
    time.sleep(5)  # a copy for B2, if one were made, would have arrived by now
    lab.end(sniffer)
    assert not has(b2, alice, third)
    assert set(copies(a1, bob, third)) == {b1_id}  # no copy was made for B2
    frames = read_capture(capture)
    assert frames  # B2 is still on the mesh (it relays), it just learns nothing new
    assert not any(text.encode() in frame for frame in frames)
    print("seconds:", {k: round(v, 2) for k, v in took.items()})
