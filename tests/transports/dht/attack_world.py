"""The world of the DHT attack tests: an honest swarm process, hostile processes, two gateways.

The honest swarm (:mod:`dht_swarm`) runs in a process of its own, one node per loopback address
``127.0.1.N``; the two gateways (alice and bob, each with its own DHT transport and no other
link) run in the test's process on ``127.0.2.1`` and ``127.0.2.2``; the attacker
(:mod:`dht_attacker`) runs in a third process from ``127.66.0.x``. ``ksize`` is 8, smaller than
the swarm, so every record lives on a few of its nodes, as in a swarm far larger than ``ksize``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from meshchat.identity import Identity
from meshchat.transports.base import Transport
from meshchat.transports.dht import DhtConfig, DhtTransport

HERE = Path(__file__).parent
KSIZE = 8
SWARM_HOSTS = [f"127.0.1.{i}" for i in range(1, 13)]
ALICE_HOST, BOB_HOST = "127.0.2.1", "127.0.2.2"
ATTACKER_HOSTS = ["127.66.0.1", "127.66.0.2"]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    root = str(HERE.parents[2])
    env["PYTHONPATH"] = os.pathsep.join([root, env.get("PYTHONPATH", "")])
    return env


@dataclass
class Swarm:
    """The honest swarm process: its addresses and the last stats line it printed."""

    proc: subprocess.Popen[str]
    addresses: list[tuple[str, int]]
    last: dict[str, object] = field(default_factory=dict)

    @property
    def targets(self) -> list[str]:
        return [f"{h}:{p}" for h, p in self.addresses]

    def __post_init__(self) -> None:
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        stdout = self.proc.stdout
        assert stdout is not None
        with contextlib.suppress(ValueError, OSError):
            for line in stdout:
                if line.strip():
                    self.last = json.loads(line)

    async def fresh_stats(self) -> dict[str, object]:
        """The next stats line the swarm prints."""
        seen = self.last
        while self.last is seen:
            await asyncio.sleep(0.05)
        return self.last

    def poll_stats(self) -> dict[str, object]:
        """The newest stats line the swarm printed."""
        return self.last

    def usage(self) -> tuple[float, int]:
        """CPU seconds used so far and resident memory in bytes."""
        p = psutil.Process(self.proc.pid)
        times = p.cpu_times()
        return times.user + times.system, int(p.memory_info().rss)

    def stored(self) -> tuple[int, int]:
        """Records and bytes stored over all nodes, from the newest stats line."""
        nodes = self.poll_stats().get("nodes", [])
        assert isinstance(nodes, list)
        return sum(n["records"] for n in nodes), sum(n["bytes"] for n in nodes)


def start_swarm(max_stored: int) -> Swarm:
    args = [sys.executable, str(HERE / "dht_swarm.py"), "--hosts", *SWARM_HOSTS]
    args += ["--ksize", str(KSIZE), "--max-stored", str(max_stored)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, env=_env())
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.kill()
        raise RuntimeError("the swarm process did not start")
    ports = json.loads(line)["ports"]
    return Swarm(proc, list(zip(SWARM_HOSTS, ports, strict=True)))


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


def attacker(mode: str, *args: str) -> subprocess.Popen[str]:
    cmd = [sys.executable, str(HERE / "dht_attacker.py"), mode, "--hosts", *ATTACKER_HOSTS]
    return subprocess.Popen([*cmd, *args], stdout=subprocess.PIPE, text=True, env=_env())


async def read_line(proc: subprocess.Popen[str], timeout: float = 60) -> dict[str, object]:
    """The next JSON line the process prints (read off the event loop)."""
    assert proc.stdout is not None
    line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), timeout)
    if not line:
        raise RuntimeError(f"process exited with {proc.wait()}")
    result: dict[str, object] = json.loads(line)
    return result


def gateway(host: str, swarm: Swarm) -> Callable[[Identity], list[Transport]]:
    config = DhtConfig(host=host, bootstrap=(swarm.addresses[0],), poll_s=0.2, ksize=KSIZE)
    return lambda identity: [DhtTransport(identity, config)]


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Measure:
    """CPU and memory of the swarm and of the gateways' process over an interval."""

    swarm: Swarm
    began: float = field(default_factory=time.monotonic)
    swarm_cpu: float = 0.0
    own: float = field(default_factory=own_cpu)

    def __post_init__(self) -> None:
        self.swarm_cpu = self.swarm.usage()[0]

    def report(self, name: str, **extra: object) -> dict[str, object]:
        cpu, rss = self.swarm.usage()
        records, stored = self.swarm.stored()
        result: dict[str, object] = {
            "attack": name,
            "seconds": round(time.monotonic() - self.began, 2),
            "swarm_cpu_s": round(cpu - self.swarm_cpu, 2),
            "swarm_rss_mb": round(rss / 2**20, 1),
            "swarm_records": records,
            "swarm_bytes": stored,
            "gateways_cpu_s": round(own_cpu() - self.own, 2),
            "per_node_records": [n["records"] for n in self.swarm.last.get("nodes", [])],  # type: ignore[attr-defined]
            **extra,
        }
        print(json.dumps(result))
        return result
