"""Files between real daemons in namespaces: a 5 MB file over the chain A - B - C while B is
killed (``kill -9``) and started again mid-transfer; it completes byte-identical."""

from __future__ import annotations

import hashlib
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from meshlab import Host, Lab

from meshchat.control import request

pytestmark = pytest.mark.netns


def _transfers(host: Host) -> list[dict[str, Any]]:
    # the control socket the CLI uses, asked from here: polled without starting a process
    return list(request(host.home / "control.sock", {"op": "transfers"})["transfers"])


def _peak_rss_mb(host: Host) -> float:
    """The daemon's peak resident set (VmHWM), in MB."""
    assert host.process is not None
    for line in Path(f"/proc/{host.process.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return -1.0


def _until(check: Any, timeout: float, what: str) -> float:
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)
    return time.monotonic() - start


def test_a_file_crosses_the_chain_while_the_relay_is_killed_and_restarted(lab: Lab) -> None:
    a, b, c = lab.host("a"), lab.host("b"), lab.host("c")
    lab.link(a, b)
    lab.link(b, c)
    for host in (a, b, c):
        lab.init(host)
    lab.introduce(a, c)
    for host in (a, b, c):
        lab.start(host)
    lab.wait_neighbours(a, 1)
    lab.wait_neighbours(c, 1)

    data = os.urandom(5_000_000)
    source = lab.root / "field-report.bin"
    source.write_bytes(data)
    began = time.monotonic()
    sent = a.cli_json("send-file", "c", str(source))
    _until(lambda: bool(_transfers(c)), 30, "the announcement at C")
    c.cli_json("accept", sent["root"][:12])  # C has not verified A: it asks first

    def held() -> int:
        listed = _transfers(c)
        return int(listed[0].get("held") or 0) if listed[0]["state"] == "active" else -1

    first = _until(lambda: held() > 1_000_000 or held() < 0, 120, "a fifth of the file at C")
    before = held()
    assert 0 < before < len(data), before  # the cut comes mid-transfer

    lab.stop(b, signal.SIGKILL)  # the relay dies without a word
    (b.home / "control.sock").unlink(missing_ok=True)
    time.sleep(2)
    assert 0 < held() < len(data)  # nothing can arrive while B is down
    restarted = time.monotonic()
    lab.start(b)
    relinked = lab.wait_neighbours(c, 1, timeout=120) + time.monotonic() - restarted
    lab.wait_neighbours(a, 1, timeout=120)
    a_relinked = time.monotonic() - restarted

    def done() -> bool:
        return _transfers(c)[0]["state"] == "done"

    _until(done, 180, "the file at C")
    took = time.monotonic() - began
    after = time.monotonic() - restarted
    (finished,) = _transfers(c)
    saved = Path(finished["path"])
    assert hashlib.sha256(saved.read_bytes()).digest() == hashlib.sha256(data).digest()
    assert saved.name == "field-report.bin"
    peaks = {h.name: _peak_rss_mb(h) for h in (a, b, c)}
    print(f"peak resident memory of the daemons (MB): {peaks}")
    print(
        f"5 MB over A-B-C: {before} bytes at C {first:.1f} s after accepting; B killed, "
        f"restarted 2 s later; C linked to it again {relinked:.1f} s, A {a_relinked:.1f} s, "
        f"and the file done {after:.1f} s after the restart, {took:.1f} s in all"
    )
