"""Brokers for relay tests (mosquitto processes on 127.0.0.1) and a recording TCP proxy."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def end_process(process: subprocess.Popen[bytes] | None, wait_s: float) -> None:
    """Terminate ``process`` if it still runs, and kill it if it does not end in ``wait_s``."""
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(wait_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class BrokerInfo:
    kind: str
    port: int
    #: "name:token" the gateways connect with ("" for none)
    credentials: str = ""

    @property
    def url(self) -> str:
        who = f"{self.credentials}@" if self.credentials else ""
        return f"mqtt://{who}127.0.0.1:{self.port}"


class Mosquitto:
    """A mosquitto process on 127.0.0.1 (no persistence file; killed at the end)."""

    def __init__(self, workdir: Path, port: int) -> None:
        self.port = port
        self.conf = workdir / f"mosquitto-{port}.conf"
        self.conf.write_text(
            f"listener {port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence false\n"
            "max_queued_messages 1000\n"
            "log_dest stderr\n"
        )
        self.log = workdir / f"mosquitto-{port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not os.path.exists(binary):
            if os.environ.get("CI"):
                pytest.fail("mosquitto is not installed (.ci/run installs it)")
            pytest.skip("mosquitto is not installed")
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen([binary, "-c", str(self.conf)], stderr=log, stdout=log)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"mosquitto did not start: {self.log.read_text()}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        end_process(self.process, 5)
        self.process = None


class RecordingProxy:
    """A TCP proxy on 127.0.0.1 that records every byte clients send to the broker behind it."""

    def __init__(self, upstream_port: int, port: int = 0) -> None:
        self.upstream_port = upstream_port
        self.port = port
        self.received = bytearray()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.close()
            return

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, record: bool) -> None:
            try:
                while data := await src.read(65536):
                    if record:
                        self.received += data
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        for coro in (pipe(reader, up_writer, True), pipe(up_reader, writer, False)):
            task = asyncio.create_task(coro)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
