"""One contact holding every push-to-talk slot of a real daemon.

A real daemon V on loopback (no sound card: what it hears goes to WAV files). Its contact M,
linked over LAN, talks four times at once (as a buggy or hostile client can: each talk is a
fresh offer and its frames, all valid); V's other contact B then talks for a second. V hears
at most a few talks at once; they must not all go to one device: B's talk is heard, and B's
direct message sent meanwhile arrives (its latency is printed).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

from meshchat.control import request
from meshchat.home import Home
from meshchat.identity import ContactCard, Identity
from meshchat.node import Node
from meshchat.node._talk import paced
from meshchat.store import Store
from meshchat.store.records import MessageState
from meshchat.talk.params import MAX_TALKS
from meshchat.transports.lan import LanTransport
from meshchat.voice.pcm import Pcm
from tests.node.test_node_inbox import daemon, free_port, meshchat_cli, wait_for


async def _node(tmp: Path, name: str, port: int, stores: list[Store]) -> Node:
    store = Store.open(tmp / f"{name}.db", key=os.urandom(32))
    stores.append(store)
    identity = Identity.generate()
    lan = LanTransport(
        identity, host="127.0.0.1", discovery=False, static_peers=[("127.0.0.1", port)],
        dial_delay=0.0,
    )  # fmt: skip
    node = Node(identity, name, store, [lan])
    await node.start()
    return node


def _silence(seconds: float) -> Pcm:
    return Pcm(bytes(round(seconds * 16000) * 2), 16000)


async def test_one_contact_talking_many_times_at_once_leaves_room_for_another(
    tmp_path: Path,
) -> None:
    os.environ["MESHCHAT_NO_SOUND"] = "1"  # (the daemon inherits it)
    v = Home(tmp_path / "v")
    await asyncio.to_thread(meshchat_cli, v.path, "init", "--name", "V", "--kdf", "interactive")
    shown = json.loads(await asyncio.to_thread(meshchat_cli, v.path, "id", "--json"))
    v_card = ContactCard.from_text(shown["card"])
    port = free_port()
    stores: list[Store] = []
    nodes = [await _node(tmp_path, n, port, stores) for n in ("m", "b")]
    m, b = nodes
    try:
        for node in nodes:
            card = (await node.card()).to_text()
            cli = ("contacts", "add", card, "--name", node.name)
            await asyncio.to_thread(meshchat_cli, v.path, *cli)
            await node.add_card(v_card, "v")

        def talks() -> list[dict[str, object]]:
            return list(request(v.control_socket, {"op": "talks"}, timeout=10)["talks"])

        with daemon(v, port, tmp_path / "v.log"):
            await wait_for(v.control_socket.exists)
            await wait_for(lambda: len(m.links) == 1 and len(b.links) == 1)
            hog = [
                asyncio.create_task(m.talk.talk("v", paced(_silence(6))))
                for _ in range(MAX_TALKS + 2)
            ]
            m_id = m.identity.node_id.hex()
            await wait_for(lambda: any(t["sender"] == m_id for t in talks()), timeout=10)
            await asyncio.sleep(0.5)  # every offer of M's in
            start = time.monotonic()
            message = await b.send_text("v", "hello V, it is B")
            said = await b.talk.talk("v", paced(_silence(1)))

            async def delivered() -> bool:
                got = await b.store.call(b.store.store.get_message, message.msg_id)
                return got is not None and got.state is MessageState.DELIVERED

            await wait_for(delivered, timeout=20)
            latency = time.monotonic() - start
            heard = {t["talk_id"]: t for t in talks()}
            for task in hog:
                task.cancel()
            print(f"B's message under M's {len(hog)} talks delivered in {latency:.2f} s")
            live_m = [t for t in heard.values() if t["sender"] == m_id and not t["ended"]]
            print(f"V heard {len(heard)} talks, {len(live_m)} of M's live")
        assert said.talk_id.hex() in heard, "B's talk was refused: M holds every slot"
        assert len(live_m) <= 1
    finally:
        for node in nodes:
            await node.stop()
        for store in stores:
            store.close()
