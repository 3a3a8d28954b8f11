"""Real processes for the relay attack tests: a relay broker (``meshchat relay`` or mosquitto
run with docs/mosquitto.conf), gateway daemons (``meshchat daemon --relay``), and the CPU time
a process has spent."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from brokers import end_process, free_port

ROOT = Path(__file__).resolve().parents[3]
MOSQUITTO_CONF = ROOT / "docs" / "mosquitto.conf"
PASS = "relay attack passphrase"


def env() -> dict[str, str]:
    environ = dict(os.environ)
    environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), environ.get("PYTHONPATH")) if p)
    environ["MESHCHAT_PASSPHRASE"] = PASS
    return environ


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds process ``pid`` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def eventually(check: Callable[[], bool], timeout: float = 30.0, step: float = 0.1) -> float:
    """Seconds until ``check()`` holds; AssertionError after ``timeout``."""
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < timeout, "timed out"
        time.sleep(step)
    return time.monotonic() - start


def _wait_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 15
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"broker did not start: {log.read_text()}") from None
            time.sleep(0.05)


class Relay:
    """A broker process on 127.0.0.1 that admits the gateway credentials ``gw``/``token`` and
    the attacker's own ``mallory``/``mallory_token`` (both token holders)."""

    def __init__(self, kind: str, workdir: Path, *, anonymous: bool = False) -> None:
        self.kind = kind
        self.workdir = workdir
        self.port = free_port()
        self.anonymous = anonymous
        self.process: subprocess.Popen[bytes] | None = None
        self.log = workdir / f"{kind}.log"
        self.token = "gateway-token-handed-out"
        self.mallory_token = "mallory-has-a-token-too"

    def url(self, user: str = "gw") -> str:
        token = self.token if user == "gw" else self.mallory_token
        return f"mqtt://{user}:{token}@127.0.0.1:{self.port}"

    def start(self) -> None:
        if self.kind == "amqtt":
            tokens = self.workdir / "relay-tokens"
            argv = [sys.executable, "-m", "meshchat.cli.main", "--home", str(self.workdir / "r")]
            argv += ["relay", "--port", str(self.port), "--token-file", str(tokens)]
            argv += ["--log-level", "warning"]
            if self.anonymous:
                argv.append("--allow-anonymous")
            self._tokens_file(tokens)
        else:
            argv = [shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c", self._mosquitto()]
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(argv, stdout=log, stderr=log, env=env())
        _wait_port(self.port, self.process, self.log)

    def _tokens_file(self, path: Path) -> None:
        from meshchat.transports.relay import token_hash

        path.write_text(f"gw:{token_hash(self.token)}\nmallory:{token_hash(self.mallory_token)}\n")

    def _mosquitto(self) -> str:
        """docs/mosquitto.conf with this test's port, files and (if asked) anonymous access."""
        passwd = self.workdir / "meshchat.passwd"
        for i, (user, token) in enumerate((("gw", self.token), ("mallory", self.mallory_token))):
            flags = ["-c"] if i == 0 else []
            subprocess.run(
                ["mosquitto_passwd", *flags, "-b", str(passwd), user, token],
                check=True,
                capture_output=True,
            )
        acl = self.workdir / "meshchat.acl"
        shipped_acl = MOSQUITTO_CONF.with_name("mosquitto.acl")
        acl.write_text(shipped_acl.read_text())
        replaced = {
            "listener": f"listener {self.port} 127.0.0.1",
            "password_file": f"password_file {passwd}",
            "acl_file": f"acl_file {acl}",
            "persistence_location": f"persistence_location {self.workdir}/",
        }
        if self.anonymous:
            replaced["allow_anonymous"] = "allow_anonymous true"
        lines = []
        for line in MOSQUITTO_CONF.read_text().splitlines():
            key = line.split(" ", 1)[0]
            if key != "log_dest":
                lines.append(replaced.get(key, line))
        conf = self.workdir / "mosquitto.conf"
        # root's test directories are closed to the "mosquitto" user it would switch to
        conf.write_text("\n".join([*lines, "log_dest stderr", "user root", ""]))
        return str(conf)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def stop(self) -> None:
        end_process(self.process, 5)
        self.process = None


class Daemon:
    """A meshchat home and, while started, its daemon: a gateway on the relay, no LAN."""

    def __init__(self, workdir: Path, name: str) -> None:
        self.name = name
        self.home = workdir / name
        self.process: subprocess.Popen[bytes] | None = None
        self.log = workdir / f"{name}.log"

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "meshchat.cli.main", "--home", str(self.home), *args],
            capture_output=True,
            text=True,
            env=env(),
            stdin=subprocess.DEVNULL,
            timeout=60,
            check=False,
        )

    def cli_json(self, *args: str) -> Any:
        result = self.cli(*args, "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def init(self) -> str:
        assert self.cli("init", "--name", self.name, "--kdf", "interactive").returncode == 0
        return str(self.cli_json("id")["card"])

    def start(self, relay_url: str) -> None:
        argv = [sys.executable, "-m", "meshchat.cli.main", "--home", str(self.home), "daemon"]
        argv += ["--no-lan", "--no-mdns", "--relay", relay_url]
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, env=env(), stdin=subprocess.DEVNULL
            )
        eventually((self.home / "control.sock").exists)
        eventually(self.relay_up, 30)

    def relay_status(self) -> dict[str, Any] | None:
        result = self.cli("peers", "--json")
        if result.returncode != 0:
            return None
        for transport in json.loads(result.stdout)["transports"]:
            if transport["name"] == "relay":
                return dict(transport)
        return None

    def relay_up(self) -> bool:
        status = self.relay_status()
        return bool(status and status["up"])

    def outbox_empty(self) -> bool:
        status = self.relay_status()
        return bool(status and status["up"] and str(status["detail"]).endswith("outbox 0"))

    def texts(self, peer: str) -> list[str]:
        return [m["text"] for m in self.cli_json("log", peer)["messages"]]

    def stop(self) -> None:
        end_process(self.process, 10)
        self.process = None
