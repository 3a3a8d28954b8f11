"""The interpreter's floor under one message and its ack: a minimal asyncio echo of the same bytes.

What is measured. Two processes on 127.0.0.1, one TCP connection (``TCP_NODELAY``, as
asyncio sets it), asyncio streams on both ends and nothing else: the sender writes one frame
of a sealed direct message's size (a 2-byte length and 410 bytes, what a meshchat message and
its ack each take on a LAN link), the echo process reads it whole and writes back a frame of
the ack's size, the sender reads that whole; then the next. No parsing, no cryptography, no
store, no queue between tasks. It is what any asyncio program on this interpreter and kernel
pays per round trip of these bytes: the floor under ``vs_lxmf.py``'s latency and one-at-a-time
rows for meshchat (and, for the same reason, for LXMF, which also runs Python on both ends).

Printed: p50 and p95 of the round trip (wall), and the CPU of each process per round trip.
``vs_lxmf.py`` prints the p50 in its own run (``python_echo_floor_p50_ms``).

Run ``python bench/echo_floor.py`` (``--rounds``). The last line is machine-readable::

    echo_floor_p50_ms: 0.09 (no target)
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

FRAME = 410  # a sealed direct message, and a sealed ack, as they go on a LAN link
HEADER = 2


@dataclass(frozen=True, slots=True)
class Echo:
    p50_ms: float
    p95_ms: float
    sender_cpu_us: float
    echo_cpu_us: float


async def _echo_server() -> None:
    done = asyncio.Event()
    cpu: list[float] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        reply = (FRAME).to_bytes(HEADER, "big") + bytes(FRAME)
        start = time.process_time()
        count = 0
        try:
            while True:
                size = int.from_bytes(await reader.readexactly(HEADER), "big")
                await reader.readexactly(size)
                writer.write(reply)
                count += 1
        except asyncio.IncompleteReadError:
            pass
        cpu.append((time.process_time() - start) / max(1, count - 1))
        writer.write(f"{cpu[0] * 1e6:.1f}\n".encode())  # never read as a frame: after EOF
        writer.close()
        done.set()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    print(port, flush=True)
    await done.wait()
    server.close()


async def _sender(port: int, rounds: int, warmup: int) -> tuple[list[float], float, float]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    frame = FRAME.to_bytes(HEADER, "big") + bytes(FRAME)
    times: list[float] = []
    cpu_start = 0.0
    for i in range(warmup + rounds):
        if i == warmup:
            cpu_start = time.process_time()
        t0 = time.perf_counter_ns()
        writer.write(frame)
        size = int.from_bytes(await reader.readexactly(HEADER), "big")
        await reader.readexactly(size)
        if i >= warmup:
            times.append((time.perf_counter_ns() - t0) / 1e6)
    cpu = (time.process_time() - cpu_start) / rounds
    writer.write_eof()
    await writer.drain()
    echo_cpu_us = float((await reader.readline()).decode().strip() or "nan")
    writer.close()
    return times, cpu * 1e6, echo_cpu_us


def measure(rounds: int = 2000, warmup: int = 200) -> Echo:
    """Run the echo pair (a child process serves) and return its figures."""
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve"], stdout=subprocess.PIPE, text=True
    )
    try:
        if child.stdout is None:
            raise RuntimeError("no pipe to the echo process")
        port = int(child.stdout.readline())
        times, cpu_us, echo_cpu_us = asyncio.run(_sender(port, rounds, warmup))
        child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    times.sort()
    return Echo(
        p50_ms=statistics.median(times),
        p95_ms=times[int(0.95 * (len(times) - 1))],
        sender_cpu_us=cpu_us,
        echo_cpu_us=echo_cpu_us,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(_echo_server())
        return
    echo = measure(args.rounds)
    print(f"minimal asyncio echo, {FRAME}-byte frames each way, {args.rounds} round trips")
    print(f"round trip p50 {echo.p50_ms:.3f} ms, p95 {echo.p95_ms:.3f} ms")
    print(f"CPU per round trip: sender {echo.sender_cpu_us:.0f} us, echo {echo.echo_cpu_us:.0f} us")
    print(f"echo_floor_p50_ms: {echo.p50_ms:.3f} (no target)")


if __name__ == "__main__":
    main()
