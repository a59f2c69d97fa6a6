"""KafkaSource: records of the user's Kafka topics, delivered to a sink with Trigger-like delivery.

The Kafka client stays in channels/kafka.py (`RecordBackend.open_record_reader` wraps records that
are not CloudEvents the way Knative's KafkaSource does); here one reader per topic, all in the
source's consumer group, feeds core.delivery. The topics are the user's: Nerve never creates,
alters or deletes them, nor the consumer group. Ordering (`spec.ordering`, default ordered) is per
partition, as in Knative.

Contract config: {"bootstrapServers": "h1:9092,h2:9092", "topics": [...], "initialOffset":
"latest"|"earliest", "source": "/apis/v1/namespaces/<ns>/kafkasources/<name>", "ceOverrides": {...}}.
"""

from __future__ import annotations

import logging
from typing import Any

from channels.base import Reader, RecordBackend
from channels.registry import BackendPool
from core.contract import Source
from core.delivery import Consumer, Deliverer, Inbound, Target
from core.errors import BackendError
from sources.base import Adapter, SourceContext, part_name
from sources.settings import SourcesSettings

log = logging.getLogger("nerve.sources.kafka")


def _reads(source: Source) -> tuple[Any, ...]:
    """What the readers depend on: a change here needs new readers, anything else updates in place."""
    config = source.config
    return (
        source.egress.consumer_group,
        config.get("bootstrapServers", ""),
        tuple(config.get("topics") or ()),
        source.security,
        config.get("initialOffset", "latest"),
        config.get("source", ""),
        tuple(sorted((config.get("ceOverrides") or {}).items())),
    )


class KafkaSourceAdapter:
    def __init__(self, source: Source, pool: BackendPool, deliverer: Deliverer, settings: SourcesSettings) -> None:
        self._source = source
        self._pool = pool
        self._deliverer = deliverer
        self._settings = settings
        self._target = self._compile(source)
        self._readers: list[Reader] = []
        self._consumers: list[Consumer] = []

    @property
    def source(self) -> Source:
        return self._source

    def _compile(self, source: Source) -> Target:
        ref = source.reference
        # Labelled like a Trigger whose Broker and name are the source's, as before the move.
        return Target.compile(source.egress, (ref.namespace, ref.name, ref.name),
                              default_timeout_s=self._settings.default_timeout_s)

    def must_restart(self, source: Source) -> bool:
        return _reads(source) != _reads(self._source)

    def update(self, source: Source) -> None:
        self._source = source
        self._target = self._compile(source)

    async def start(self) -> None:
        config = self._source.config
        # spec.net's TLS and SASL, resolved by control: the pool gives this source a client of its own.
        backend = await self._pool.get("kafka", str(config.get("bootstrapServers", "")), self._source.security)
        if not isinstance(backend, RecordBackend):
            raise BackendError(f"the {backend.name} backend cannot read raw records for a KafkaSource")
        overrides = {str(k): str(v) for k, v in (config.get("ceOverrides") or {}).items()}
        try:
            for topic in config.get("topics") or ():
                reader = backend.open_record_reader(
                    topic,
                    self._source.egress.consumer_group,
                    from_start=config.get("initialOffset") == "earliest",
                    source=str(config.get("source", "")),
                    overrides=overrides,
                )
                await reader.start()
                self._readers.append(reader)
        except BaseException:
            await self._stop_readers()
            raise
        for topic, reader in zip(config.get("topics") or (), self._readers, strict=True):
            consumer = Consumer(
                f"{part_name(self._source)}#{topic}",
                reader.receive,
                self._handle,
                window=self._settings.max_inflight,
                ordered=lambda: self._target.egress.delivery_order == "ordered",
            )
            consumer.start()
            self._consumers.append(consumer)

    async def _handle(self, message: Inbound) -> None:
        target = self._target
        target.metrics.inflight.inc()
        try:
            await self._deliverer.deliver(message.event, target)
            await message.ack()
        finally:
            target.metrics.inflight.dec()

    async def stop(self) -> None:
        consumers, self._consumers = self._consumers, []
        for consumer in consumers:
            await consumer.stop(self._settings.drain_timeout_s)
        await self._stop_readers()

    async def _stop_readers(self) -> None:
        readers, self._readers = self._readers, []
        for reader in readers:
            await reader.stop()


def kafka_source(source: Source, context: SourceContext) -> Adapter:
    return KafkaSourceAdapter(source, context.pool, context.deliverer, context.settings)
