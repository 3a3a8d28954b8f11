"""The MQTT session of the relay transport: connect, subscribe, publish, read, reconnect.

One task keeps a connection: connect (MQTT 5 first with ``protocol="auto"``, 3.1.1 if the
broker refuses 5), subscribe, then run reader, publisher and subscription refresh until one
fails; on failure the in-flight publishes go back to the outbox and the task waits a jittered,
doubling delay (capped) before reconnecting. Sessions are persistent (clean session off / clean
start off with a session expiry) under a client id derived from a device secret, so the broker
queues QoS 1 messages for this gateway while it is away. What to subscribe to, what to publish
and what to do with a message are the transport's (:mod:`._transport`): this module only speaks
MQTT, through aiomqtt, imported when a session starts.

==============  ===========================  ==============================================
state           event                        next
==============  ===========================  ==============================================
down            backoff delay over           connecting
connecting      CONNACK accepted             up (subscribe, flush outbox)
connecting      refused MQTT 5 (auto)        connecting with 3.1.1, no delay
connecting      error                        down (delay doubles)
up              any I/O error                down (in-flight publishes requeued)
any             stop()                       stopped (link reported down once)
==============  ===========================  ==============================================
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Any

from meshchat.gateway import MAX_BATCH_FRAMES, seal_batch
from meshchat.transports.backoff import Backoff
from meshchat.transports.relay._config import RelayConfig
from meshchat.transports.relay._outbox import Outbox, Publish

__all__ = ["MqttSession"]

log = logging.getLogger(__name__)

_MAX_INCOMING_QUEUE = 10_000
_REFUSED_PROTOCOL = (1, 132)  # 3.1.1 "unacceptable protocol version"; 5 "unsupported"
_V5_REFUSED_US = (134, 135)  # MQTT 5 "bad user name or password", "not authorized"
#: most distinct message-expiry values whose PUBLISH properties are kept for reuse
_EXPIRY_CACHE = 64
#: most frame bytes sealed into one envelope (a burst for one topic shares an envelope)
_BATCH_BYTES = 12 * 1024


class MqttSession:
    """A gateway's connection to one broker, kept up until :meth:`stop`."""

    def __init__(
        self,
        config: RelayConfig,
        client_id: str,
        outbox: Outbox,
        *,
        topics: Callable[[], dict[str, bytes]],
        on_message: Callable[[str, object], None],
        on_refresh: Callable[[], Awaitable[None]],
        count: Callable[[str, int], None],
        clock: Callable[[], float],
    ) -> None:
        self.config = config
        self.client_id = client_id
        self.outbox = outbox
        self._topics = topics
        self._on_message = on_message
        self._on_refresh = on_refresh
        self._count = count
        self.clock = clock
        self.subscribed: set[str] = set()
        self.wake = asyncio.Event()
        self.protocol = "5" if config.protocol in ("auto", "5") else "3.1.1"
        self._probed = config.protocol != "auto"
        self.up = False
        self.reason = "not started"
        self.retry_at: float | None = None
        self._task: asyncio.Task[None] | None = None
        #: message expiry interval (s) -> MQTT 5 PUBLISH properties carrying it
        self._expiry_properties: dict[int, Any] = {}

    def start(self, name: str) -> None:
        self.reason = "connecting"
        self._task = asyncio.create_task(self._run(), name=name)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.up = False
        self.reason = "stopped"

    def _counted(self, name: str, n: int = 1) -> None:
        self._count(name, n)

    def describe(self) -> str:
        if self.up:
            return f"up (MQTT {self.protocol})"
        state = f"down: {self.reason}"
        if self.retry_at is not None:
            state += f"; retry in {max(0.0, self.retry_at - time.monotonic()):.1f} s"
        return state

    async def _run(self) -> None:
        cfg = self.config
        backoff = Backoff(cfg.reconnect_initial_s, cfg.reconnect_max_s)
        while True:
            self.retry_at = None
            try:
                await self._session(backoff)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.reason = _describe(exc)
                log.info("relay %s down: %s", cfg.display, self.reason)
            finally:
                if self.up:
                    self._counted("disconnects")
                self.up = False
                self.subscribed.clear()
                requeued = self.outbox.requeue_inflight()
                if requeued:
                    self._counted("tx.requeued", requeued)
            delay = backoff.next()
            self.retry_at = time.monotonic() + delay
            await asyncio.sleep(delay)

    def _client(self) -> Any:
        import aiomqtt
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        cfg = self.config
        host, port, tls = cfg.endpoint
        user, password = cfg.credentials
        tls_context = ssl.create_default_context(cafile=cfg.ca_file) if tls else None
        common: dict[str, Any] = {
            "identifier": self.client_id,
            "username": user,
            "password": password,
            "tls_context": tls_context,
            "keepalive": cfg.keepalive_s,
            "timeout": cfg.connect_timeout_s,
            "max_queued_incoming_messages": _MAX_INCOMING_QUEUE,
            "max_inflight_messages": cfg.max_inflight,
        }
        if self.protocol == "5":
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = int(cfg.retention_s)
            return aiomqtt.Client(
                host,
                port,
                protocol=aiomqtt.ProtocolVersion.V5,
                clean_start=False,
                properties=props,
                **common,
            )
        return aiomqtt.Client(
            host, port, protocol=aiomqtt.ProtocolVersion.V311, clean_session=False, **common
        )

    async def _probe(self) -> None:
        """Find out once whether the broker speaks MQTT 5 (``protocol="auto"``).

        The probe is a bare MQTT 5 CONNECT (no properties, no credentials, clean start, a
        throwaway client id): a 3.1.1-only broker such as amqtt parses it far enough to refuse
        the version, whereas an MQTT 5 CONNECT with properties or a user name can leave it
        waiting for bytes. A broker that refuses it as unauthorized answered in MQTT 5.
        """
        import aiomqtt
        from aiomqtt.exceptions import MqttConnectError

        host, port, tls = self.config.endpoint
        probe = aiomqtt.Client(
            host,
            port,
            identifier=f"{self.client_id}-p",
            protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=True,
            timeout=self.config.connect_timeout_s,
            tls_context=ssl.create_default_context(cafile=self.config.ca_file) if tls else None,
        )
        try:
            async with probe:
                self.protocol = "5"
        except MqttConnectError as exc:
            code = getattr(exc.rc, "value", exc.rc)
            if code in _V5_REFUSED_US:
                self.protocol = "5"  # it answered in MQTT 5, refusing a client with no token
            elif code not in _REFUSED_PROTOCOL:
                raise
            else:
                self.protocol = "3.1.1"
                log.info("%s does not speak MQTT 5; using 3.1.1", self.config.display)
        self._probed = True

    async def _session(self, backoff: Backoff) -> None:
        if not self._probed:
            await self._probe()
        client = self._client()
        # aiomqtt warns past 10 calls awaiting their acknowledgement; we allow max_inflight.
        client.pending_calls_threshold = self.config.max_inflight + 16
        await client.__aenter__()
        try:
            self.up = True
            self.reason = ""
            self._counted("connects")
            backoff.reset()
            log.info("relay %s up (MQTT %s)", self.config.display, self.protocol)
            await self._sync_subscriptions(client)
            tasks = [
                asyncio.create_task(self._reader(client)),
                asyncio.create_task(self._publisher(client)),
                asyncio.create_task(self._refresher(client)),
            ]
            try:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
            for task in done:
                failure = task.exception()
                if failure is not None:
                    raise failure
        finally:
            self.up = False
            with contextlib.suppress(Exception):
                await client.__aexit__(None, None, None)

    async def _sync_subscriptions(self, client: Any) -> None:
        from paho.mqtt.subscribeoptions import SubscribeOptions

        wanted = set(self._topics())
        add = sorted(wanted - self.subscribed)
        remove = sorted(self.subscribed - wanted)
        if add:
            if self.protocol == "5":
                # no_local: the broker does not echo our own publishes back to us
                opts = SubscribeOptions(qos=1, noLocal=True)
                await client.subscribe([(t, opts) for t in add])
            else:
                await client.subscribe([(t, 1) for t in add])
            self.subscribed.update(add)
        if remove:
            await client.unsubscribe(remove)
            self.subscribed.difference_update(remove)

    async def _refresher(self, client: Any) -> None:
        while True:
            await asyncio.sleep(self.config.refresh_s)
            await self._on_refresh()
            await self._sync_subscriptions(client)

    async def _publisher(self, client: Any) -> None:
        slots = asyncio.Semaphore(self.config.max_inflight)
        broken: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        running: set[asyncio.Task[None]] = set()
        try:
            while True:
                if broken.done():
                    broken.result()
                run = self.outbox.take_run(self.clock(), MAX_BATCH_FRAMES, _BATCH_BYTES)
                if not run:
                    self.wake.clear()
                    waiter: asyncio.Future[Any] = asyncio.ensure_future(self.wake.wait())
                    try:
                        await asyncio.wait([waiter, broken], return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        waiter.cancel()
                    continue
                await slots.acquire()
                task = asyncio.create_task(self._publish_one(client, run, slots, broken))
                running.add(task)
                task.add_done_callback(running.discard)
        finally:
            for task in running:
                task.cancel()

    async def _publish_one(
        self,
        client: Any,
        run: list[Publish],
        slots: asyncio.Semaphore,
        broken: asyncio.Future[Any],
    ) -> None:
        """Publish one envelope: the frames of ``run`` (one topic) sealed together, so a
        burst for one mailbox or channel costs one MQTT message and one PUBACK."""
        first = run[0]
        expires_s = min(item.expires_s for item in run)
        try:
            payload = first.payload
            if first.frame:
                payload = seal_batch(first.key, [item.frame for item in run], expires_s)
            properties = None
            if self.protocol == "5":
                properties = self._publish_properties(expires_s)
            await client.publish(first.topic, payload, qos=1, properties=properties)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            for item in reversed(run):
                self.outbox.retry(item)
            if not broken.done():
                broken.set_exception(exc)
        else:
            for item in run:
                self.outbox.done(item)
            self._counted("tx.published")
            self._counted("tx.frames", len(run))
        finally:
            slots.release()

    def _publish_properties(self, expires_s: int) -> Any:
        """MQTT 5 PUBLISH properties with the message expiry left until ``expires_s``.

        The broker drops the message when its expiry passes, so a gateway that comes back late
        is not sent stale envelopes. Building a paho ``Properties`` object costs about as much
        as the rest of a publish, and paho only reads it, so one object per interval value is
        kept and shared (most publishes of a second have the same one).
        """
        interval = max(1, int(expires_s - self.clock()))
        cache = self._expiry_properties
        properties = cache.get(interval)
        if properties is None:
            from paho.mqtt.packettypes import PacketTypes
            from paho.mqtt.properties import Properties

            if len(cache) >= _EXPIRY_CACHE:
                cache.clear()
            properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            properties.MessageExpiryInterval = interval
            cache[interval] = properties
        return properties

    async def _reader(self, client: Any) -> None:
        async for message in client.messages:
            self._on_message(str(message.topic), message.payload)


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text[:200]
