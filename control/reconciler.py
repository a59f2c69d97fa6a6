"""Reconcile every resource: statuses for the user, the contract for the data plane.

A pass reads the whole store (a laptop or a small install holds hundreds of resources, not millions),
computes each Broker's and Trigger's status, makes sure each Broker's topic exists on its backend, and
builds the contract. The contract is published only when its content changed, with the next generation.
Topics and consumer groups whose Broker or Trigger disappeared are removed after the data plane has
applied the contract that no longer names them, so no consumer is still attached when its group goes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from channels.base import TopicSpec
from channels.registry import BackendPool
from control.api.broker import BROKER_CLASSES, CLASS_ANNOTATION
from control.api.trigger import ORDER_ANNOTATION
from control.conditions import cond, is_ready, with_ready
from control.resolver import Resolver, Unresolvable
from control.settings import ControlSettings
from control.store.base import ResourceStore
from core.contract import Contract, Egress, EgressConfig, Reference, Resource, Source
from core.durations import parse_ms
from core.errors import BackendError

log = logging.getLogger("nerve.control")

ContractSink = Callable[[Contract], Awaitable[None]]
# spec.config ConfigMap keys of a NatsJetStreamBroker that shape its stream (see channels/nats.py).
NATS_STREAM_KEYS = frozenset({"storage", "max.age.seconds", "max.bytes", "replicas"})
OIDC_REASON = "authentication-oidc feature disabled"


def egress_config(delivery: dict[str, Any] | None, dead_letter: str | None) -> EgressConfig:
    delivery = delivery or {}

    def ms(key: str) -> int | None:
        value = delivery.get(key)
        return None if value is None else parse_ms(value)

    return EgressConfig(
        retry=int(delivery.get("retry") or 0),
        backoff_policy="linear" if delivery.get("backoffPolicy") == "linear" else "exponential",
        backoff_delay_ms=ms("backoffDelay") or 0,
        timeout_ms=ms("timeout"),
        dead_letter=dead_letter,
        retry_after_max_ms=ms("retryAfterMax"),
    )


class Reconciler:
    def __init__(
        self,
        store: ResourceStore,
        pool: BackendPool,
        settings: ControlSettings,
        sink: ContractSink,
        *,
        contract: Contract | None = None,
    ) -> None:
        self._store = store
        self._pool = pool
        self._settings = settings
        self._sink = sink
        self._resolver = Resolver(store, settings.service_url_template)
        self._lock = asyncio.Lock()
        self.contract = contract or Contract()

    async def reconcile(self) -> Contract:
        async with self._lock:
            resources = await self._reconcile_brokers()
            sources = self._reconcile_kafka_sources()
            contract = Contract(self.contract.generation, tuple(resources), tuple(sources))
            if not contract.same_content(self.contract) or self.contract.generation == 0:
                previous = self.contract
                contract = Contract(previous.generation + 1, contract.resources, contract.sources)
                await self._sink(contract)
                self.contract = contract
                await self._collect_garbage(previous, contract)
            return self.contract

    # ---------------------------------------------------------------------------------- brokers

    async def _reconcile_brokers(self) -> list[Resource]:
        resources: list[Resource] = []
        triggers_by_broker: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for trigger in self._store.find("Trigger"):
            key = (trigger["metadata"]["namespace"], trigger["spec"]["broker"])
            triggers_by_broker.setdefault(key, []).append(trigger)
        for broker in self._store.find("Broker"):
            meta = broker["metadata"]
            resource = await self._reconcile_broker(broker)
            egresses = [
                egress
                for trigger in triggers_by_broker.pop((meta["namespace"], meta["name"]), [])
                if (egress := self._reconcile_trigger(trigger, broker, resource)) is not None
            ]
            if resource is not None:
                resources.append(dataclasses.replace(resource, egresses=tuple(egresses)))
        for orphans in triggers_by_broker.values():
            for trigger in orphans:
                self._reconcile_trigger(trigger, None, None)
        return resources

    def _backend_config(self, broker: dict[str, Any], backend: str) -> tuple[str, dict[str, str]]:
        """The connection (bootstrap servers or NATS URL) and topic knobs from the Broker's spec.config."""
        config_ref = broker["spec"].get("config") or {}
        data: dict[str, str] = {}
        if config_ref.get("kind") == "ConfigMap":
            cm = self._store.get("ConfigMap", config_ref.get("namespace", ""), config_ref.get("name", ""))
            data = dict((cm or {}).get("data") or {})
        # The contract names the cluster even when the Broker does not, so every reader agrees on it.
        if backend == "kafka":
            connection = data.get("bootstrap.servers") or self._pool.settings.kafka_bootstrap_servers
        elif backend == "nats":
            connection = data.get("url") or self._pool.settings.nats_url
            data["url"] = connection
        else:
            connection = ""
        return connection, data

    async def _reconcile_broker(self, broker: dict[str, Any]) -> Resource | None:
        meta, spec = broker["metadata"], broker["spec"]
        ns, name = meta["namespace"], meta["name"]
        broker_class = meta.get("annotations", {}).get(CLASS_ANNOTATION, "")
        backend = BROKER_CLASSES.get(broker_class)
        status: dict[str, Any] = {"observedGeneration": meta["generation"]}
        conditions = [cond("FilterReady", True), cond("IngressReady", True)]
        resource: Resource | None = None
        if backend is None:
            conditions.append(
                cond(
                    "TriggerChannelReady",
                    False,
                    "BrokerClassNotSupported",
                    f"broker class {broker_class!r} is not one of {', '.join(BROKER_CLASSES)}",
                )
            )
        else:
            connection, data = self._backend_config(broker, backend)
            topic = self._settings.topic_template.format(namespace=ns, name=name)
            address = f"{self._settings.ingress_base_url.rstrip('/')}/{ns}/{name}"
            status["address"] = {"url": address}
            status["annotations"] = {"nerve.dev/backend": backend, "nerve.dev/topic": topic}
            conditions.append(cond("Addressable", True))
            try:
                channel = await self._pool.get(backend, connection)
                await channel.ensure_topic(
                    TopicSpec(
                        topic,
                        partitions=int(data.get("default.topic.partitions", "1")),
                        replication_factor=int(data.get("default.topic.replication.factor", "1")),
                        # NATS streams take their tuning from the ConfigMap; Kafka's holds no topic configs.
                        config={k: v for k, v in data.items() if k in NATS_STREAM_KEYS} if backend == "nats" else {},
                    )
                )
                conditions.append(cond("TriggerChannelReady", True))
            except (BackendError, ValueError) as exc:
                conditions.append(cond("TriggerChannelReady", False, "TopicNotReady", str(exc)))
            except Exception as exc:  # one broken backend must not fail the reconcile of everything else
                log.exception("broker %s/%s: backend %s failed", ns, name, backend)
                conditions.append(cond("TriggerChannelReady", False, "BackendFailure", f"{type(exc).__name__}: {exc}"))
            resource = Resource(
                uid=meta["uid"],
                reference=Reference(meta["uid"], ns, name, "Broker"),
                backend=backend,  # type: ignore[arg-type]
                topic=topic,
                ingress_path=f"/{ns}/{name}",
                bootstrap_servers=connection if backend == "kafka" else "",
                backend_config=data,
            )
        dls = (spec.get("delivery") or {}).get("deadLetterSink")
        conditions.append(self._dead_letter_condition(dls, ns, status))
        status["conditions"] = with_ready(conditions, broker.get("status", {}).get("conditions"))
        self._save_status(broker, status)
        broker["status"] = status
        return resource

    def _dead_letter_condition(self, dls: dict[str, Any] | None, ns: str, status: dict[str, Any]) -> dict[str, Any]:
        if dls is None:
            return cond(
                "DeadLetterSinkResolved", True, "DeadLetterSinkNotConfigured", "No dead letter sink is configured."
            )
        try:
            status["deadLetterSinkUri"] = self._resolver.resolve(dls, ns)
        except Unresolvable as exc:
            return cond("DeadLetterSinkResolved", False, "Unable to get the dead letter sink's URI", exc.message)
        return cond("DeadLetterSinkResolved", True)

    # ---------------------------------------------------------------------------------- triggers

    def _reconcile_trigger(
        self, trigger: dict[str, Any], broker: dict[str, Any] | None, resource: Resource | None
    ) -> Egress | None:
        meta, spec = trigger["metadata"], trigger["spec"]
        ns, name = meta["namespace"], meta["name"]
        status: dict[str, Any] = {"observedGeneration": meta["generation"]}
        conditions = [cond("DependencyReady", True), cond("OIDCIdentityCreated", True, OIDC_REASON)]
        if broker is None:
            conditions.append(
                cond("BrokerReady", False, "BrokerDoesNotExist", f"Broker {spec['broker']!r} does not exist")
            )
        elif not is_ready(broker):
            ready = next(c for c in broker["status"]["conditions"] if c["type"] == "Ready")
            conditions.append(
                cond("BrokerReady", False, ready.get("reason", "BrokerNotReady"), ready.get("message", ""))
            )
        else:
            conditions.append(cond("BrokerReady", True))
        subscriber_uri = ""
        try:
            subscriber_uri = self._resolver.resolve(spec["subscriber"], ns)
            conditions.append(cond("SubscriberResolved", True))
        except Unresolvable as exc:
            conditions.append(cond("SubscriberResolved", False, "Unable to get the Subscriber's URI", exc.message))
        status["subscriberUri"] = subscriber_uri
        # A Trigger's delivery replaces its Broker's whole, as Knative's MT broker does.
        delivery = spec.get("delivery")
        if delivery is None and broker is not None:
            delivery = broker["spec"].get("delivery")
        conditions.append(self._dead_letter_condition((delivery or {}).get("deadLetterSink"), ns, status))
        egress: Egress | None = None
        if (
            resource is not None
            and subscriber_uri
            and all(c["status"] == "True" for c in conditions if c["type"] != "BrokerReady")
        ):
            order = meta.get("annotations", {}).get(ORDER_ANNOTATION, "unordered")
            egress = Egress(
                uid=meta["uid"],
                reference=Reference(meta["uid"], ns, name, "Trigger"),
                consumer_group=self._settings.consumer_group_template.format(namespace=ns, name=name),
                destination=subscriber_uri,
                generation=meta["generation"],
                reply_to_original_topic=True,
                filter_attributes=dict((spec.get("filter") or {}).get("attributes") or {}),
                filters=list(spec.get("filters") or []),
                egress_config=egress_config(delivery, status.get("deadLetterSinkUri")),
                delivery_order="ordered" if order == "ordered" else "unordered",
                format=(delivery or {}).get("format"),
            )
            conditions.append(cond("SubscriptionReady", True))
        else:
            conditions.append(
                cond(
                    "SubscriptionReady",
                    False,
                    "NotSubscribed",
                    "the Trigger is not subscribed until its Broker and subscriber resolve",
                )
            )
        status["conditions"] = with_ready(conditions, trigger.get("status", {}).get("conditions"))
        self._save_status(trigger, status)
        return egress

    # ---------------------------------------------------------------------------------- sources

    def _reconcile_kafka_sources(self) -> list[Source]:
        """A KafkaSource is one contract source: the user's topics on the user's Kafka, run by `sources`."""
        sources: list[Source] = []
        for source in self._store.find("KafkaSource"):
            meta, spec = source["metadata"], source["spec"]
            ns, name, uid = meta["namespace"], meta["name"], meta["uid"]
            status: dict[str, Any] = {"observedGeneration": meta["generation"]}
            try:
                sink_uri = self._resolver.resolve(spec["sink"], ns)
                conditions = [cond("SinkProvided", True)]
                status["sinkUri"] = sink_uri
            except Unresolvable as exc:
                sink_uri = ""
                conditions = [cond("SinkProvided", False, "NotFound", exc.message)]
            conditions.append(
                self._dead_letter_condition((spec.get("delivery") or {}).get("deadLetterSink"), ns, status)
            )
            status["consumers"] = spec.get("consumers", 1)
            status["conditions"] = with_ready(conditions, source.get("status", {}).get("conditions"))
            self._save_status(source, status)
            if not sink_uri:
                continue
            reference = Reference(uid, ns, name, "KafkaSource")
            egress = Egress(
                uid=uid,
                reference=reference,
                consumer_group=spec["consumerGroup"],
                destination=sink_uri,
                generation=meta["generation"],
                egress_config=egress_config(spec.get("delivery"), status.get("deadLetterSinkUri")),
                delivery_order="ordered" if spec.get("ordering", "ordered") == "ordered" else "unordered",
            )
            config = {
                "bootstrapServers": ",".join(spec["bootstrapServers"]),
                "topics": list(spec["topics"]),
                "initialOffset": spec.get("initialOffset", "latest"),
                "source": f"/apis/v1/namespaces/{ns}/kafkasources/{name}",
                "ceOverrides": dict((spec.get("ceOverrides") or {}).get("extensions") or {}),
            }
            sources.append(Source(uid=uid, reference=reference, egress=egress, config=config))
        return sources

    # ---------------------------------------------------------------------------------- helpers

    def _save_status(self, obj: dict[str, Any], status: dict[str, Any]) -> None:
        if obj.get("status") != status:
            meta = obj["metadata"]
            self._store.set_status(obj["kind"], meta.get("namespace", ""), meta["name"], status)

    async def _collect_garbage(self, previous: Contract, current: Contract) -> None:
        now = {r.uid: r for r in current.resources}
        for old in previous.resources:
            new = now.get(old.uid)
            kept = {e.consumer_group for e in new.egresses} if new is not None else set()
            try:
                channel = await self._pool.get(old.backend, old.connection)
                for egress in old.egresses:
                    if egress.consumer_group not in kept:
                        await channel.delete_group(old.topic, egress.consumer_group)
                if new is None and self._settings.delete_topics:
                    await channel.delete_topic(old.topic)
            except BackendError as exc:
                log.warning("could not clean up %s on %s: %s", old.topic, old.backend, exc)
