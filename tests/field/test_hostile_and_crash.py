"""A live daemon under hostile input, and a sender killed with SIGKILL mid-burst (loopback)."""

from __future__ import annotations

import asyncio
import os
import random
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import cbor2
from meshlab import Host, Lab, wait_state

from meshchat.identity import Identity
from meshchat.transports.stream import MAX_WIRE_FRAME
from meshchat.wire import BROADCAST, PacketKind, Suite, build, encode
from meshchat.wire.framing import FrameDecoder, frame
from meshchat.wire.handshake import LinkHandshake
from meshchat.wire.packet import MAX_PACKET_SIZE


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def loopback_host(lab: Lab, name: str) -> Host:
    host = Host(name, "", lab.root / name)
    lab.hosts[name] = host
    return host


def start_loopback(lab: Lab, host: Host, port: int, *peers: int) -> None:
    args = ["--no-mdns", "--lan-host", "127.0.0.1", "--lan-port", str(port)]
    for p in peers:
        args += ["--peer", f"127.0.0.1:{p}"]
    # Run in the root namespace on loopback only.
    host.netns = ""
    _start_plain(lab, host, args)


def _start_plain(lab: Lab, host: Host, args: list[str]) -> None:
    import subprocess

    from meshlab import MESHCHAT, PASSPHRASE

    host.log_path = lab.root / f"{host.name}.log"
    env = {**os.environ, "MESHCHAT_PASSPHRASE": PASSPHRASE}
    with open(host.log_path, "wb") as log:
        host.process = subprocess.Popen(
            [MESHCHAT, "--home", str(host.home), "daemon", "--link-rate", "100000", *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    deadline = time.monotonic() + 20
    while not (host.home / "control.sock").exists():
        assert host.process.poll() is None, host.log_path.read_text()
        assert time.monotonic() < deadline
        time.sleep(0.05)


def mutations(valid: bytes, rng: random.Random, count: int) -> list[bytes]:
    frames = []
    for i in range(count):
        choice = i % 5
        if choice == 0:
            frames.append(rng.randbytes(rng.randint(1, MAX_PACKET_SIZE)))
        elif choice == 1:
            data = bytearray(valid)
            for _ in range(rng.randint(1, 8)):
                data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
            frames.append(bytes(data))
        elif choice == 2:
            frames.append(valid[: rng.randrange(1, len(valid))])
        elif choice == 3:
            frames.append(valid + rng.randbytes(rng.randint(1, 64)))
        else:
            fields = cbor2.loads(valid)
            fields[rng.randrange(len(fields))] = rng.choice(
                [b"", 2**64, -1, "x" * 300, [1, 2], None, True, rng.randbytes(40)]
            )
            frames.append(cbor2.dumps(fields))
    return frames


async def attack(port: int, count: int) -> int:
    """Handshake with a fresh identity, then send ``count`` hostile frames; returns frames sent."""
    # First, connections that never handshake properly.
    for _ in range(20):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(os.urandom(random.randint(1, 600)))
        await writer.drain()
        writer.close()
    attacker = Identity.generate()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    handshake = LinkHandshake(attacker, initiator=True)
    for first in handshake.start():
        writer.write(frame(first, MAX_PACKET_SIZE))
    decoder = FrameDecoder(MAX_WIRE_FRAME)
    while not handshake.done:
        data = await asyncio.wait_for(reader.read(4096), 10)
        assert data, "node closed the link during the handshake"
        for f in decoder.feed(data):
            if handshake.done:
                break  # the node's first packets (its announce) may follow in the same read
            for out in handshake.receive(f):
                writer.write(frame(out, MAX_PACKET_SIZE))
    cipher = handshake.cipher()
    rng = random.Random(7)
    valid = encode(
        build(
            attacker,
            PacketKind.MESSAGE,
            BROADCAST,
            Suite.SIGNED,
            b"x" * 40,
            int(time.time() * 1000),
            4,
        )
    )
    sent = 0
    for hostile in mutations(valid, rng, count):
        # sealed for the link, as a real neighbour's frames are: the junk is inside
        writer.write(frame(cipher.encrypt(hostile), MAX_WIRE_FRAME))
        sent += 1
        if sent % 200 == 0:
            await writer.drain()
    await writer.drain()
    writer.close()
    return sent


def test_live_node_survives_hostile_frames_and_still_delivers(lab: Lab) -> None:
    target, friend = loopback_host(lab, "target"), loopback_host(lab, "friend")
    for host in (target, friend):
        lab.init(host)
    lab.introduce(target, friend)
    port = free_port()
    start_loopback(lab, target, port)
    sent = asyncio.run(attack(port, 10_000))
    assert sent == 10_000
    assert target.process is not None and target.process.poll() is None
    status = target.cli_json("peers")  # the control socket still answers
    assert isinstance(status["peers"], list)
    start_loopback(lab, friend, free_port(), port)
    lab.wait_neighbours(target, 1)
    msg = friend.cli_json("send", "target", "still there?")
    wait_state(friend, "target", msg["msg_id"], "delivered")
    assert [m["text"] for m in target.cli_json("log", "friend")["messages"]] == ["still there?"]
    assert target.process.poll() is None


def test_sigkill_mid_burst_loses_no_accepted_message(lab: Lab) -> None:
    sender, receiver = loopback_host(lab, "sender"), loopback_host(lab, "receiver")
    for host in (sender, receiver):
        lab.init(host)
    lab.introduce(sender, receiver)
    receiver_port, sender_port = free_port(), free_port()
    start_loopback(lab, receiver, receiver_port)
    start_loopback(lab, sender, sender_port, receiver_port)
    lab.wait_neighbours(sender, 1)

    accepted: list[str] = []

    def send(i: int) -> None:
        result = sender.cli("send", "receiver", f"burst {i}", "--json", check=False)
        if result.returncode == 0 and '"msg_id"' in result.stdout:
            import json

            accepted.append(json.loads(result.stdout)["msg_id"])

    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(send, i) for i in range(60)]
        while len(accepted) < 15:
            time.sleep(0.01)
        assert sender.process is not None
        sender.process.kill()  # SIGKILL, mid-burst
        sender.process.wait()
        sender.process = None
        for f in futures:
            f.result()
    # A send either reached the node or, once it was dead, was queued on disk: none failed.
    assert len(accepted) == 60
    # Restart the sender: every message whose send was acknowledged must still be there,
    # and must reach the receiver exactly once.
    (sender.home / "control.sock").unlink(missing_ok=True)
    start_loopback(lab, sender, sender_port, receiver_port)
    deadline = time.monotonic() + 60
    while True:
        states = {m["msg_id"]: m["state"] for m in sender.cli_json("log", "receiver")["messages"]}
        if all(states.get(m) == "delivered" for m in accepted):
            break
        assert time.monotonic() < deadline, states
        time.sleep(0.2)
    got = [m["msg_id"] for m in receiver.cli_json("log", "sender")["messages"]]
    assert set(accepted) <= set(got)
    assert len(got) == len(set(got))
