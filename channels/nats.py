"""The NATS JetStream backend (nats-py): one stream per Broker, one durable pull consumer per Trigger.

Storage: binary mode, as on HTTP: the CloudEvents attributes as `ce-` headers (percent-encoded where
headers need it), the content type as `Content-Type`, data as the payload; an empty payload without a
content type is an event with no data. Pass-through transport headers ride along as `nerve-h-<name>`.

Publishing is pipelined: `publish_async` keeps a bounded window of outstanding acks on one
connection, and each caller awaits only its own JetStream ack (with a timeout, so a dead server is a
503 within seconds, never a hang and never a 202).

Consuming: a durable pull consumer with explicit acks, fetched in batches; the dispatcher delivers a
batch concurrently within its in-flight window. Retries and back-off stay in the dispatcher, the
same code for every backend (same retryable codes, same back-off, same dead-letter extensions), so
a message is acked once: after a 2xx or after dead-lettering. Redelivery by JetStream (ack_wait) is
only the crash path. Because the dispatcher may hold a message through minutes of back-off, every
held message is marked in progress every `ack_wait_s / 3`; a dead dispatcher stops doing that and its
messages come back after `ack_wait_s`. A stopped subscription NAKs what it still holds so another
consumer gets it at once.

nats-py reconnects by itself; while the server is away, publishes fail with BackendError (503) and
fetches are retried, so a server restart never turns events into failures.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import nats
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from channels.base import Channel, Delivery, Subscription, TopicSpec
from core.errors import BackendError, InvalidEvent
from core.events import Event, from_binary, to_binary

log = logging.getLogger("nerve.channels.nats")

HEADER_PREFIX = "nerve-h-"
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


@dataclass(frozen=True, slots=True)
class NatsSettings:
    url: str
    storage: str = "file"
    """file (durable, the default) or memory."""
    max_age_s: float = 0.0
    """Drop events older than this (0: keep until max_bytes)."""
    max_bytes: int = -1
    replicas: int = 1
    publish_window: int = 4096
    """Publishes awaiting their ack at once; more wait for room."""
    publish_timeout_s: float = 5.0
    fetch_batch: int = 256
    ack_wait_s: float = 30.0
    max_ack_pending: int = 20000
    connect_timeout_s: float = 2.0


def stream_name(topic: str) -> str:
    return _UNSAFE.sub("_", topic)


def subject(topic: str) -> str:
    return f"nerve.{stream_name(topic)}"


def encode(event: Event) -> tuple[dict[str, str], bytes]:
    headers, body = to_binary(event)
    headers.update({HEADER_PREFIX + name: value for name, value in event.headers.items()})
    return headers, body


def decode(headers: dict[str, str] | None, payload: bytes) -> Event:
    headers = headers or {}
    event = from_binary(((k, v) for k, v in headers.items() if not k.startswith(HEADER_PREFIX)), payload)
    event.headers = {k[len(HEADER_PREFIX) :]: v for k, v in headers.items() if k.startswith(HEADER_PREFIX)}
    return event


class _NatsDelivery(Delivery):
    __slots__ = ("_done", "_event", "_msg", "_subscription")

    def __init__(self, subscription: _NatsSubscription, msg: Msg, event: Event) -> None:
        self._subscription = subscription
        self._msg = msg
        self._event = event
        self._done = False

    @property
    def event(self) -> Event:
        return self._event

    @property
    def ordering_key(self) -> str:
        return str(self._event.attributes.get("partitionkey", ""))

    async def ack(self) -> None:
        if self._done:
            return
        self._done = True
        self._subscription.held.discard(self)
        try:
            await self._msg.ack()
        except NatsError as exc:
            # Not acked: JetStream redelivers after ack_wait (at least once, never lost).
            log.warning("ack of %s failed, it will be redelivered: %s", self._event.id, exc)

    async def in_progress(self) -> None:
        if not self._done:
            with contextlib.suppress(NatsError):
                await self._msg.in_progress()

    async def nak(self) -> None:
        if not self._done:
            self._done = True
            with contextlib.suppress(NatsError):
                await self._msg.nak()


class _NatsSubscription(Subscription):
    def __init__(self, channel: NatsChannel, topic: str, group: str, from_start: bool) -> None:
        self._channel = channel
        self._topic = topic
        self._durable = _UNSAFE.sub("_", group)
        self._from_start = from_start
        self._sub: JetStreamContext.PullSubscription | None = None
        self.held: set[_NatsDelivery] = set()
        self._keepalive: asyncio.Task[None] | None = None
        self._stopped = False

    async def start(self) -> None:
        s = self._channel.settings
        config = ConsumerConfig(
            durable_name=self._durable,
            deliver_policy=DeliverPolicy.ALL if self._from_start else DeliverPolicy.NEW,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=s.ack_wait_s,
            max_ack_pending=s.max_ack_pending,
            max_deliver=-1,
        )
        try:
            # Creating the durable consumer fixes its start: every later publish reaches it.
            self._sub = await self._channel.js().pull_subscribe(
                subject(self._topic), durable=self._durable, stream=stream_name(self._topic), config=config
            )
        except (NatsError, TimeoutError) as exc:
            raise BackendError(f"NATS consumer {self._durable!r} on {self._topic!r} did not start: {exc!r}") from None
        self._keepalive = asyncio.create_task(self._keep_alive(), name=f"nats-keepalive-{self._durable}")

    async def _keep_alive(self) -> None:
        interval = self._channel.settings.ack_wait_s / 3
        while True:
            await asyncio.sleep(interval)
            await asyncio.gather(*(d.in_progress() for d in list(self.held)))

    async def receive(self, max_records: int) -> Sequence[Delivery]:
        sub = self._sub
        if sub is None:
            raise BackendError("subscription used before start()")
        batch = min(max_records, self._channel.settings.fetch_batch)
        while not self._stopped:
            try:
                msgs = await sub.fetch(batch, timeout=1.0)
            except TimeoutError:
                continue
            except NatsError as exc:
                # The server may be restarting: nats-py reconnects; keep fetching.
                log.debug("fetch on %s failed, retrying: %r", self._durable, exc)
                await asyncio.sleep(0.5)
                continue
            deliveries: list[Delivery] = []
            for msg in msgs:
                try:
                    event = decode(msg.headers, msg.data)
                except InvalidEvent as exc:
                    log.warning("%s: message is not a CloudEvent, dropped: %s", self._durable, exc)
                    with contextlib.suppress(NatsError):
                        await msg.term()
                    continue
                delivery = _NatsDelivery(self, msg, event)
                self.held.add(delivery)
                deliveries.append(delivery)
            if deliveries:
                return deliveries
        return []

    async def stop(self) -> None:
        self._stopped = True
        if self._keepalive is not None:
            self._keepalive.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keepalive
        held, self.held = list(self.held), set()
        await asyncio.gather(*(d.nak() for d in held))
        if self._sub is not None:
            with contextlib.suppress(NatsError):
                await self._sub.unsubscribe()


class NatsChannel(Channel):
    def __init__(self, settings: NatsSettings) -> None:
        self.settings = settings
        self._nc: NatsClient | None = None
        self._js: JetStreamContext | None = None

    @property
    def name(self) -> str:
        return "nats"

    @property
    def durable(self) -> bool:
        return self.settings.storage == "file"

    async def start(self) -> None:
        async def on_error(exc: Exception) -> None:
            log.debug("nats connection: %r", exc)

        try:
            self._nc = await nats.connect(
                self.settings.url,
                connect_timeout=self.settings.connect_timeout_s,
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.5,
                allow_reconnect=True,
                error_cb=on_error,
            )
        except (NatsError, OSError, TimeoutError) as exc:
            raise BackendError(f"NATS at {self.settings.url} is unreachable: {exc!r}") from None
        self._js = self._nc.jetstream(publish_async_max_pending=self.settings.publish_window)

    async def stop(self) -> None:
        if self._nc is not None:
            with contextlib.suppress(NatsError):
                await self._nc.close()
            self._nc = None

    def js(self) -> JetStreamContext:
        if self._js is None:
            raise BackendError("NATS channel used before start()")
        return self._js

    async def ensure_topic(self, spec: TopicSpec) -> None:
        s, config = self.settings, spec.config
        stream = StreamConfig(
            name=stream_name(spec.name),
            subjects=[subject(spec.name)],
            storage=StorageType.MEMORY if config.get("storage", s.storage) == "memory" else StorageType.FILE,
            retention=RetentionPolicy.LIMITS,
            max_age=float(config.get("max.age.seconds", s.max_age_s)) or None,
            max_bytes=int(config.get("max.bytes", s.max_bytes)),
            num_replicas=int(config.get("replicas", spec.replication_factor or s.replicas)),
        )
        js = self.js()
        try:
            try:
                await js.stream_info(stream.name or "")
            except NotFoundError:
                await js.add_stream(stream)
        except (NatsError, TimeoutError) as exc:
            raise BackendError(f"cannot create NATS stream {stream.name!r}: {exc!r}") from None

    async def delete_topic(self, name: str) -> None:
        try:
            await self.js().delete_stream(stream_name(name))
        except NotFoundError:
            return
        except (NatsError, TimeoutError) as exc:
            raise BackendError(f"cannot delete NATS stream {name!r}: {exc!r}") from None

    async def publish(self, topic: str, event: Event) -> None:
        headers, body = encode(event)
        try:
            future: asyncio.Future[Any] = await asyncio.wait_for(
                self.js().publish_async(
                    subject(topic), body, headers=headers, wait_stall=self.settings.publish_timeout_s
                ),
                self.settings.publish_timeout_s,
            )
            await asyncio.wait_for(future, self.settings.publish_timeout_s)
        except (NatsError, TimeoutError, OSError) as exc:
            raise BackendError(f"NATS did not take the event on {topic!r}: {exc!r}") from None

    def subscribe(self, topic: str, group: str, *, from_start: bool = False) -> Subscription:
        return _NatsSubscription(self, topic, group, from_start)

    async def delete_subscription(self, topic: str, group: str) -> None:
        try:
            await self.js().delete_consumer(stream_name(topic), _UNSAFE.sub("_", group))
        except NotFoundError:
            return
        except (NatsError, TimeoutError) as exc:
            raise BackendError(f"cannot delete NATS consumer {group!r}: {exc!r}") from None
