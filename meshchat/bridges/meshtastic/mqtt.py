"""The Meshtastic bridge on a real MQTT broker: a thin asyncio adapter (aiomqtt) around
:class:`~meshchat.bridges.meshtastic.bridge.MeshtasticBridge`.

``mqtt://[USER:PASS@]HOST[:PORT]/CHANNEL[?region=EU_868&root=msh]`` names the broker and the
channel (region ``US`` and root ``msh`` by default). The adapter subscribes to
``<root>/<region>/2/e/<CHANNEL>/#``, hands every message to the bridge, calls ``on_text`` for
each text heard and counts what the bridge refused by reason; :meth:`MeshtasticMqtt.send_text`
queues our publications. It reconnects with a growing delay (1 s to 60 s) when the broker goes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

from meshchat.bridges.meshtastic.bridge import Heard, MeshtasticBridge, Publish
from meshchat.bridges.meshtastic.codec import NETWORK, Channel
from meshchat.errors import BridgeError, BridgeReason, UsageError

__all__ = ["MeshtasticMqtt", "MqttTarget", "parse_url"]

log = logging.getLogger(__name__)
QUEUE_LIMIT = 64


@dataclass(frozen=True, slots=True)
class MqttTarget:
    host: str
    port: int
    channel: str
    region: str = "US"
    root: str = "msh"
    username: str | None = None
    password: str | None = None


def parse_url(url: str) -> MqttTarget:
    """Read ``mqtt://[USER:PASS@]HOST[:PORT]/CHANNEL[?region=R&root=T]``; UsageError if not."""
    parts = urlsplit(url)
    channel = unquote(parts.path.strip("/"))
    if parts.scheme != "mqtt" or not parts.hostname or not channel or "/" in channel:
        raise UsageError(f"--meshtastic wants mqtt://HOST:PORT/CHANNEL, not {url!r}")
    query = parse_qs(parts.query)
    try:
        port = parts.port or 1883
    except ValueError as exc:
        raise UsageError(f"bad port in {url!r}") from exc
    return MqttTarget(
        host=parts.hostname,
        port=port,
        channel=channel,
        region=query.get("region", ["US"])[0],
        root=query.get("root", ["msh"])[0],
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


class MeshtasticMqtt:
    """Runs one bridge against one broker until :meth:`close`."""

    def __init__(
        self,
        target: MqttTarget,
        bridge: MeshtasticBridge,
        on_text: Callable[[Heard], None],
    ) -> None:
        self.target = target
        self.bridge = bridge
        self.on_text = on_text
        self.refused: Counter[BridgeReason] = Counter()
        self.connected = asyncio.Event()
        self._queue: asyncio.Queue[Publish] = asyncio.Queue(QUEUE_LIMIT)
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def create(
        cls,
        target: MqttTarget,
        key_b64: str,
        node_num: int,
        long_name: str,
        on_text: Callable[[Heard], None],
    ) -> MeshtasticMqtt:
        channel = Channel.from_psk(target.channel, key_b64)
        bridge = MeshtasticBridge(
            channel,
            region=target.region,
            root=target.root,
            node_num=node_num,
            long_name=long_name,
        )
        return cls(target, bridge, on_text)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def send_text(self, message_id: bytes, text: str) -> None:
        """Queue ``text`` for the channel; BridgeError (DUPLICATE, RATE_LIMITED) if refused."""
        now = asyncio.get_running_loop().time()
        for publication in self.bridge.send_text(message_id, text, now):
            if self._queue.full():
                raise BridgeError(NETWORK, BridgeReason.RATE_LIMITED, "the publish queue is full")
            self._queue.put_nowait(publication)

    async def _run(self) -> None:
        delay = 1.0
        while True:
            try:
                await self._session()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # aiomqtt.MqttError, OSError: the broker went away
                log.warning("meshtastic bridge: %s; retrying in %.0f s", exc, delay)
            self.connected.clear()
            await asyncio.sleep(delay)
            delay = min(60.0, delay * 2)

    async def _session(self) -> None:
        import aiomqtt

        target = self.target
        async with aiomqtt.Client(
            target.host, target.port, username=target.username, password=target.password
        ) as client:
            await client.subscribe(self.bridge.subscribe_topic)
            self.connected.set()
            for publication in self.bridge.nodeinfo(asyncio.get_running_loop().time()):
                self._queue.put_nowait(publication)
            publisher = asyncio.get_running_loop().create_task(self._publish(client))
            try:
                async for message in client.messages:
                    self._take(str(message.topic), message.payload)
            finally:
                publisher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await publisher

    async def _publish(self, client: object) -> None:
        while True:
            publication = await self._queue.get()
            await client.publish(publication.topic, publication.payload)  # type: ignore[attr-defined]

    def _take(self, topic: str, payload: object) -> None:
        if not isinstance(payload, bytes | bytearray):
            self.refused[BridgeReason.BAD_FIELD] += 1
            return
        try:
            heard = self.bridge.receive(topic, bytes(payload), asyncio.get_running_loop().time())
        except BridgeError as exc:
            self.refused[exc.reason] += 1
            return
        if heard is not None:
            self.on_text(heard)
