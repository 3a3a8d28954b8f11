#!/usr/bin/env python3
"""Multi-host scenarios on network-namespace hosts running real ``meshchat daemon`` processes.

Run as root from the repository, e.g.::

    sudo .venv/bin/python field-tests/scenarios.py chain --size 10
    sudo .venv/bin/python field-tests/scenarios.py grid --size 5
    sudo .venv/bin/python field-tests/scenarios.py islands
    sudo .venv/bin/python field-tests/scenarios.py churn --size 3

Each prints a report: how long the mesh took to form, delivery, duplicate receptions,
transmissions, hops and latency percentiles. Broadcasts go to ``#mesh``; direct messages are
acknowledged end to end. All hosts share one clock, so latency is the receiver's receive time
minus the sender's creation time.
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import itertools

from meshlab import Host, Lab


@dataclass
class Report:
    name: str
    hosts: int
    links: int
    formed_s: float = 0.0
    sent: int = 0
    expected: int = 0
    delivered: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    hops: list[int] = field(default_factory=list)
    broadcasts: int = 0
    duplicates: int = 0
    transmissions: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def delivery(self) -> float:
        return self.delivered / self.expected if self.expected else 0.0

    def percentile(self, values: list[float], q: float) -> float:
        if not values:
            return float("nan")
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def print(self) -> None:
        print(f"scenario {self.name}: {self.hosts} hosts, {self.links} links")
        print(f"  mesh formed in          {self.formed_s:7.2f} s")
        print(f"  messages sent           {self.sent:7d}")
        print(
            f"  delivered               {self.delivered:7d} / {self.expected} ({self.delivery:.1%})"
        )
        per = max(1, self.broadcasts)
        print(
            f"  duplicate receptions    {self.duplicates:7d} ({self.duplicates / per:.1f} per broadcast)"
        )
        print(
            f"  transmissions           {self.transmissions:7d} ({self.transmissions / per:.1f} per broadcast)"
        )
        if self.hops:
            print(
                f"  hops max / mean         {max(self.hops):7d} / {statistics.mean(self.hops):.1f}"
            )
        print(
            f"  latency p50 / p95       {self.percentile(self.latencies_ms, 0.5):7.0f} / "
            f"{self.percentile(self.latencies_ms, 0.95):.0f} ms"
        )
        for note in self.notes:
            print(f"  note: {note}")


def build(lab: Lab, names: list[str], edges: list[tuple[str, str]]) -> dict[str, Host]:
    hosts = {n: lab.host(n) for n in names}
    for a, b in edges:
        lab.link(hosts[a], hosts[b])
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lab.init, hosts.values()))
    return hosts


def form(lab: Lab, hosts: dict[str, Host], edges: list[tuple[str, str]], report: Report) -> None:
    degree = {n: 0 for n in hosts}
    for a, b in edges:
        degree[a] += 1
        degree[b] += 1
    start = time.monotonic()
    lab.start_all(list(hosts.values()))
    for name, host in hosts.items():
        lab.wait_neighbours(host, degree[name], timeout=90)
    report.formed_s = time.monotonic() - start


def counters_total(lab: Lab, hosts: list[Host], key: str) -> int:
    return sum(lab.counters(h).get(key, 0) for h in hosts)


def broadcast(
    lab: Lab, hosts: dict[str, Host], sender: str, count: int, report: Report, settle_s: float = 3.0
) -> None:
    """``count`` messages on #mesh from ``sender``; every other host should get each once."""
    everyone = list(hosts.values())
    dup0 = counters_total(lab, everyone, "drop.duplicate")
    tx0 = counters_total(lab, everyone, "tx")
    msg_ids = []
    for i in range(count):
        msg_ids.append(hosts[sender].cli_json("send", "#mesh", f"broadcast {i}")["msg_id"])
        time.sleep(0.05)
    report.sent += count
    report.broadcasts += count
    report.expected += count * (len(hosts) - 1)
    deadline = time.monotonic() + settle_s + 0.5 * len(hosts)
    while True:
        got = {
            name: {
                m["msg_id"]: m for m in h.cli_json("log", "#mesh")["messages"] if not m["outgoing"]
            }
            for name, h in hosts.items()
            if name != sender
        }
        done = sum(1 for msgs in got.values() for mid in msg_ids if mid in msgs)
        if done == count * (len(hosts) - 1) or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    report.delivered += done
    for msgs in got.values():
        for mid in msg_ids:
            if mid in msgs:
                report.latencies_ms.append(msgs[mid]["updated_ms"] - msgs[mid]["created_ms"])
    for name, host in hosts.items():
        if name == sender or host.log_path is None:
            continue
        text = host.log_path.read_text()
        for mid in msg_ids:
            report.hops += [
                int(h)
                for h in re.findall(rf"received {mid[:12]} in #mesh, relays claim (\d+) hops", text)
            ]
    time.sleep(0.5)
    report.duplicates += counters_total(lab, everyone, "drop.duplicate") - dup0
    report.transmissions += counters_total(lab, everyone, "tx") - tx0


def direct(lab: Lab, a: Host, b: Host, count: int, report: Report, timeout: float = 60) -> None:
    """``count`` acknowledged direct messages from ``a`` to ``b``."""
    sent = {}
    for i in range(count):
        m = a.cli_json("send", b.name, f"direct {i}")
        sent[m["msg_id"]] = m
    report.sent += count
    report.expected += count
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = {m["msg_id"]: m["state"] for m in a.cli_json("log", b.name)["messages"]}
        if all(states.get(mid) == "delivered" for mid in sent):
            break
        time.sleep(0.3)
    received = {m["msg_id"]: m for m in b.cli_json("log", a.name)["messages"]}
    acked = [mid for mid in sent if states.get(mid) == "delivered"]
    report.delivered += sum(1 for mid in acked if mid in received)
    report.latencies_ms += [
        received[mid]["updated_ms"] - received[mid]["created_ms"] for mid in sent if mid in received
    ]


# -- scenarios ---------------------------------------------------------------------------------


def square_grid(prefix: str, size: int) -> tuple[list[str], list[tuple[str, str]]]:
    """Host names and links of a size x size grid, each host linked to its 4 neighbours."""
    names = [f"{prefix}{r}{c}" for r in range(size) for c in range(size)]
    edges = []
    for r in range(size):
        for c in range(size):
            if c + 1 < size:
                edges.append((f"{prefix}{r}{c}", f"{prefix}{r}{c + 1}"))
            if r + 1 < size:
                edges.append((f"{prefix}{r}{c}", f"{prefix}{r + 1}{c}"))
    return names, edges


def chain(size: int, messages: int) -> Report:
    names = [f"n{i}" for i in range(size)]
    edges = list(itertools.pairwise(names))
    report = Report(f"chain-{size}", size, len(edges))
    with Lab() as lab:
        hosts = build(lab, names, edges)
        lab.introduce(hosts[names[0]], hosts[names[-1]])
        form(lab, hosts, edges, report)
        broadcast(lab, hosts, names[0], messages, report)
        direct(lab, hosts[names[0]], hosts[names[-1]], max(1, messages // 2), report)
    return report


def grid(size: int, messages: int) -> Report:
    names, edges = square_grid("g", size)
    report = Report(f"grid-{size}x{size}", len(names), len(edges))
    with Lab() as lab:
        hosts = build(lab, names, edges)
        corner, far = names[0], names[-1]
        lab.introduce(hosts[corner], hosts[far])
        form(lab, hosts, edges, report)
        broadcast(lab, hosts, corner, messages, report)
        direct(lab, hosts[corner], hosts[far], max(1, messages // 2), report)
    return report


def islands(messages: int) -> Report:
    names = ["a1", "a2", "a3", "bridge", "b1", "b2", "b3"]
    edges = [
        ("a1", "a2"),
        ("a2", "a3"),
        ("a1", "a3"),
        ("a3", "bridge"),
        ("bridge", "b1"),
        ("b1", "b2"),
        ("b2", "b3"),
        ("b1", "b3"),
    ]
    report = Report("islands", len(names), len(edges))
    with Lab() as lab:
        hosts = build(lab, names, edges)
        lab.introduce(hosts["a1"], hosts["b3"])
        form(lab, hosts, edges, report)
        broadcast(lab, hosts, "a1", messages, report)
        direct(lab, hosts["a1"], hosts["b3"], max(1, messages // 2), report)
        # Take the bridge down: island b is cut off; messages wait in the outbox and arrive
        # once it is back.
        lab.stop(hosts["bridge"])
        pending = [
            hosts["a1"].cli_json("send", "b3", f"while cut off {i}")["msg_id"] for i in range(3)
        ]
        time.sleep(1.0)
        lab.start(hosts["bridge"])
        t0 = time.monotonic()
        deadline = t0 + 90
        while time.monotonic() < deadline:
            states = {
                m["msg_id"]: m["state"] for m in hosts["a1"].cli_json("log", "b3")["messages"]
            }
            if all(states.get(mid) == "delivered" for mid in pending):
                break
            time.sleep(0.3)
        ok = sum(1 for mid in pending if states.get(mid) == "delivered")
        report.sent += len(pending)
        report.expected += len(pending)
        report.delivered += ok
        report.notes.append(
            f"bridge down then up: {ok}/{len(pending)} queued messages "
            f"delivered {time.monotonic() - t0:.1f} s after it came back"
        )
    return report


def churn(size: int, messages: int, seed: int = 1) -> Report:
    names, edges = square_grid("c", size)
    report = Report(f"churn-{size}x{size}", len(names), len(edges))
    rng = random.Random(seed)
    with Lab() as lab:
        hosts = build(lab, names, edges)
        src, dst = hosts[names[0]], hosts[names[-1]]
        lab.introduce(src, dst)
        form(lab, hosts, edges, report)
        middle = [h for n, h in hosts.items() if h not in (src, dst)]
        sent = []
        down: Host | None = None
        for i in range(messages):
            if i % 2 == 0:
                if down is not None:
                    lab.spawn(down)
                    lab.wait_started(down)
                down = rng.choice(middle)
                lab.stop(down)
            sent.append(src.cli_json("send", dst.name, f"churn {i}")["msg_id"])
            time.sleep(0.3)
        if down is not None:
            lab.spawn(down)
            lab.wait_started(down)
        report.sent += len(sent)
        report.expected += len(sent)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            states = {m["msg_id"]: m["state"] for m in src.cli_json("log", dst.name)["messages"]}
            if all(states.get(mid) == "delivered" for mid in sent):
                break
            time.sleep(0.5)
        received = {m["msg_id"]: m for m in dst.cli_json("log", src.name)["messages"]}
        report.delivered += sum(1 for mid in sent if mid in received)
        report.latencies_ms += [
            received[m]["updated_ms"] - received[m]["created_ms"] for m in sent if m in received
        ]
        report.notes.append(
            f"one relay stopped and another restarted every 2 messages; "
            f"{sum(1 for m in sent if states.get(m) == 'delivered')} acked"
        )
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", choices=["chain", "grid", "islands", "churn"])
    parser.add_argument("--size", type=int, default=0)
    parser.add_argument("--messages", type=int, default=10)
    args = parser.parse_args(argv)
    if args.scenario == "chain":
        report = chain(args.size or 10, args.messages)
    elif args.scenario == "grid":
        report = grid(args.size or 5, args.messages)
    elif args.scenario == "islands":
        report = islands(args.messages)
    else:
        report = churn(args.size or 3, args.messages)
    report.print()
    return 0 if report.delivery >= 0.99 else 1


if __name__ == "__main__":
    sys.exit(main())
