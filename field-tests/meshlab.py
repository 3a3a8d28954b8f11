"""A small lab of meshchat hosts in Linux network namespaces, for field-test scenarios.

Each host is a network namespace with its own interfaces, joined to others by veth pairs, and
runs a real ``meshchat daemon`` process with its own home. The control socket of each node is a
Unix socket in its home folder, so the lab (in the root namespace) talks to every node through
the ordinary CLI. Needs root. Every namespace name starts with a prefix unique to this lab,
and :meth:`Lab.close` deletes them all (also on error, when used as a context manager).

Addresses are taken from 10.201.0.0/16, used only inside these namespaces.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MESHCHAT = str(Path(sys.executable).parent / "meshchat")
PASSPHRASE = "field-test passphrase"

# Records every Ethernet frame a namespace's interfaces receive (AF_PACKET), as
# 4-byte-length-prefixed frames, until terminated. Run inside the namespace by Lab.capture.
_SNIFFER = """
import signal, socket, struct, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
out = open(sys.argv[1], "wb", buffering=0)
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
sys.stdout.write("ready\\n"); sys.stdout.flush()
while True:
    frame, addr = s.recvfrom(65535)
    if addr[2] != socket.PACKET_OUTGOING:
        out.write(struct.pack(">I", len(frame)) + frame)
"""


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@dataclass
class Host:
    name: str
    netns: str
    home: Path
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    addresses: list[str] = field(default_factory=list)

    def cli(
        self, *args: str, check: bool = True, timeout: float = 30
    ) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "MESHCHAT_PASSPHRASE": PASSPHRASE}
        return subprocess.run(
            [MESHCHAT, "--home", str(self.home), *args],
            capture_output=True,
            text=True,
            env=env,
            check=check,
            timeout=timeout,
        )

    def cli_json(self, *args: str) -> Any:
        return json.loads(self.cli(*args, "--json").stdout)


class CliProcess:
    """A ``meshchat`` command whose output lines are read as they come, and whose standard
    input the caller types into (``device link``, ``device join``: they ask the person)."""

    def __init__(self, argv: list[str]) -> None:
        env = {**os.environ, "MESHCHAT_PASSPHRASE": PASSPHRASE}
        self.process = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        self.lines: list[str] = []

    def until(self, prefix: str, timeout: float = 90) -> str:
        """The rest of the first line (from here on) that starts with ``prefix``."""
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            self.lines.append(line)
            if line.startswith(prefix):
                return line[len(prefix) :].strip()
        raise AssertionError(f"no {prefix!r} in:\n{''.join(self.lines)}")

    def type(self, text: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(text + "\n")
        self.process.stdin.flush()

    def finish(self, timeout: float = 60) -> tuple[int, str]:
        """Its exit status and everything it printed."""
        out, _ = self.process.communicate(timeout=timeout)
        return self.process.returncode, "".join(self.lines) + out

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


class Lab:
    """Namespaces, links between them, and meshchat daemons inside."""

    def __init__(self, prefix: str | None = None) -> None:
        self.prefix = prefix or f"mc{os.getpid() % 100000}"
        self.root = Path(tempfile.mkdtemp(prefix="meshlab-"))
        self.hosts: dict[str, Host] = {}
        self._subnet = 0
        self._extra: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- topology ---------------------------------------------------------------------------

    def host(self, name: str) -> Host:
        netns = f"{self.prefix}{name}"
        subprocess.run(["ip", "netns", "del", netns], capture_output=True)
        _ip("netns", "add", netns)
        _ip("-n", netns, "link", "set", "lo", "up")
        subprocess.run(
            ["ip", "netns", "exec", netns, "sysctl", "-qw", "net.ipv4.ip_forward=0"],
            capture_output=True,
        )
        host = Host(name, netns, self.root / name)
        self.hosts[name] = host
        return host

    def link(self, a: Host, b: Host) -> None:
        """A point-to-point Ethernet link (its own /24) between two hosts."""
        self._subnet += 1
        net = f"10.201.{self._subnet}"
        ifa, ifb = f"v{self._subnet}{a.name}"[:15], f"v{self._subnet}{b.name}"[:15]
        _ip(
            "link",
            "add",
            ifa,
            "netns",
            a.netns,
            "type",
            "veth",
            "peer",
            "name",
            ifb,
            "netns",
            b.netns,
        )
        for host, ifname, addr in ((a, ifa, f"{net}.1"), (b, ifb, f"{net}.2")):
            _ip("-n", host.netns, "addr", "add", f"{addr}/24", "dev", ifname)
            _ip("-n", host.netns, "link", "set", ifname, "up")
            host.addresses.append(addr)

    # -- nodes ------------------------------------------------------------------------------

    def status(self, host: Host) -> Any:
        result = host.cli("peers", "--json", check=False)
        return json.loads(result.stdout) if result.returncode == 0 else None

    def counters(self, host: Host) -> dict[str, int]:
        from meshchat.control import request

        reply = request(host.home / "control.sock", {"op": "status"})
        return dict(reply.get("counters", {}))

    def init(self, host: Host) -> str:
        """Create the host's identity; returns its contact card."""
        host.cli("init", "--name", host.name, "--kdf", "interactive")
        return str(host.cli_json("id")["card"])

    def introduce(self, a: Host, b: Host) -> None:
        """Make two hosts contacts of each other (as if they had scanned each other's QR)."""
        card_a, card_b = a.cli_json("id")["card"], b.cli_json("id")["card"]
        a.cli("contacts", "add", card_b)
        b.cli("contacts", "add", card_a)

    def link_devices(self, existing: Host, new: Host, device_name: str = "") -> str:
        """Link ``new`` to the account of ``existing`` through the real protocol, as a person
        would with ``meshchat device link`` and ``meshchat device join CODE`` (both daemons
        running): both show the same confirmation string, which is typed on ``existing`` and
        confirmed with ``y`` on ``new``. Returns the string."""
        shown = CliProcess([MESHCHAT, "--home", str(existing.home), "device", "link", "--no-qr"])
        joining: CliProcess | None = None
        try:
            code = shown.until("Link code:")
            name = ["--device-name", device_name] if device_name else []
            joining = CliProcess([MESHCHAT, "--home", str(new.home), "device", "join", code, *name])
            string = joining.until("Confirmation string:")
            if shown.until("Confirmation string:") != string:
                raise AssertionError("the two devices show different strings")
            shown.type(string)
            joining.type("y")
            for process in (shown, joining):
                status, out = process.finish()
                if status != 0:
                    raise AssertionError(f"linking failed:\n{out}")
            return string
        finally:
            shown.kill()
            if joining is not None:
                joining.kill()

    def start(self, host: Host, *extra: str) -> None:
        self.spawn(host, *extra)
        self.wait_started(host)

    def start_all(self, hosts: list[Host], *extra: str) -> None:
        """Start several daemons at once, then wait for all of them."""
        for host in hosts:
            self.spawn(host, *extra)
        for host in hosts:
            self.wait_started(host)

    def spawn(self, host: Host, *extra: str) -> None:
        host.log_path = self.root / f"{host.name}.log"
        env = {**os.environ, "MESHCHAT_PASSPHRASE": PASSPHRASE}
        command = ["ip", "netns", "exec", host.netns, MESHCHAT, "--home", str(host.home)]
        with open(host.log_path, "ab") as log:
            host.process = subprocess.Popen(
                [*command, "daemon", *extra], stdout=log, stderr=subprocess.STDOUT, env=env
            )

    def wait_started(self, host: Host, timeout: float = 60) -> None:
        assert host.process is not None and host.log_path is not None
        deadline = time.monotonic() + timeout
        while not (host.home / "control.sock").exists():
            if host.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{host.name} did not start:\n{host.log_path.read_text()}")
            time.sleep(0.05)

    def stop(self, host: Host, sig: int = signal.SIGTERM) -> None:
        if host.process is not None and host.process.poll() is None:
            host.process.send_signal(sig)
            try:
                host.process.wait(10)
            except subprocess.TimeoutExpired:
                host.process.kill()
                host.process.wait()
        host.process = None

    def neighbours(self, host: Host) -> list[str]:
        result = host.cli("peers", "--json", check=False)
        if result.returncode != 0:
            return []
        return [p["node_id"] for p in json.loads(result.stdout)["peers"]]

    def wait_neighbours(self, host: Host, count: int, timeout: float = 30) -> float:
        start = time.monotonic()
        while len(self.neighbours(host)) < count:
            if time.monotonic() - start > timeout:
                raise TimeoutError(f"{host.name} has {self.neighbours(host)} neighbours")
            time.sleep(0.1)
        return time.monotonic() - start

    # -- other processes in a namespace (brokers, captures) ---------------------------------

    def run_process(
        self, host: Host, *argv: str, log_name: str | None = None
    ) -> subprocess.Popen[bytes]:
        """Run a process inside ``host``'s namespace; the lab ends it on close."""
        log_path = self.root / (log_name or f"{host.name}-{Path(argv[0]).name}.log")
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                ["ip", "netns", "exec", host.netns, *argv],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "MESHCHAT_PASSPHRASE": PASSPHRASE},
            )
        self._extra.append(process)
        return process

    def wait_port(self, host: Host, address: str, port: int, timeout: float = 20) -> None:
        """Wait until something in ``host`` accepts TCP connections on ``address:port``."""
        probe = f"import socket; socket.create_connection(({address!r}, {port}), 1).close()"
        deadline = time.monotonic() + timeout
        while True:
            done = subprocess.run(
                ["ip", "netns", "exec", host.netns, sys.executable, "-c", probe],
                capture_output=True,
            )
            if done.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {address}:{port} in {host.name}")
            time.sleep(0.1)

    def capture(self, host: Host, path: Path) -> subprocess.Popen[bytes]:
        """Record every frame ``host`` receives into ``path`` until :meth:`end` is called."""
        process = subprocess.Popen(
            ["ip", "netns", "exec", host.netns, sys.executable, "-c", _SNIFFER, str(path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self._extra.append(process)
        assert process.stdout is not None
        if process.stdout.readline().strip() != b"ready":
            raise RuntimeError("packet capture did not start")
        return process

    def end(self, process: subprocess.Popen[bytes]) -> None:
        """Stop a process started by :meth:`run_process` or :meth:`capture`."""
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdout is not None:
            process.stdout.close()

    def close(self) -> None:
        for process in self._extra:
            self.end(process)
        for host in self.hosts.values():
            self.stop(host, signal.SIGKILL if host.process else signal.SIGTERM)
        for host in self.hosts.values():
            subprocess.run(["ip", "netns", "del", host.netns], capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)


def read_capture(path: Path) -> list[bytes]:
    """The frames :meth:`Lab.capture` recorded."""
    data = path.read_bytes()
    frames, i = [], 0
    while i + 4 <= len(data):
        n = int.from_bytes(data[i : i + 4], "big")
        frames.append(data[i + 4 : i + 4 + n])
        i += 4 + n
    return frames


def wait_state(host: Host, target: str, msg_id: str, state: str, timeout: float = 30) -> float:
    """Seconds until the outgoing message reaches ``state`` in ``host``'s log."""
    start = time.monotonic()
    while True:
        log = host.cli_json("log", target)
        for m in log["messages"]:
            if m["msg_id"] == msg_id and m["state"] == state:
                return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"{msg_id[:12]} never became {state}")
        time.sleep(0.05)
