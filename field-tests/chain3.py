#!/usr/bin/env python3
"""Scenario: three hosts in a chain A - B - C; A cannot reach C except through meshchat on B.

Run as root from the repository: ``sudo .venv/bin/python field-tests/chain3.py``.
Prints a short report: discovery time, delivery, latency of a direct message and its ack.
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from meshlab import Lab, wait_state


def main() -> int:
    with Lab() as lab:
        a, b, c = lab.host("a"), lab.host("b"), lab.host("c")
        lab.link(a, b)
        lab.link(b, c)
        for h in (a, b, c):
            lab.init(h)
        lab.introduce(a, c)
        t0 = time.monotonic()
        for h in (a, b, c):
            lab.start(h)
        discovery_a = lab.wait_neighbours(a, 1)
        discovery_c = lab.wait_neighbours(c, 1)
        lab.wait_neighbours(b, 2)
        discovered = time.monotonic() - t0
        sent_at = time.monotonic()
        msg = a.cli_json("send", "c", "hello from a")
        delivered_after = wait_state(a, "c", msg["msg_id"], "delivered")
        received = [m["text"] for m in c.cli_json("log", "a")["messages"]]
        assert c.log_path is not None
        hops = re.findall(
            rf"received {msg['msg_id'][:12]} in \S+, (\d+) hops", c.log_path.read_text()
        )
        print("chain3 report")
        print(
            f"  discovery (all links up)   {discovered:6.2f} s  (a: {discovery_a:.2f}, c: {discovery_c:.2f})"
        )
        print(f"  delivered at c             {'yes' if received == ['hello from a'] else 'NO'}")
        print(f"  hops seen at c             {hops[0] if hops else '?'} (a -> b -> c)")
        print(f"  send -> ack back at a      {delivered_after * 1000:6.0f} ms (incl. CLI polling)")
        print(f"  total                      {time.monotonic() - sent_at:6.2f} s")
        return 0 if received == ["hello from a"] else 1


if __name__ == "__main__":
    sys.exit(main())
