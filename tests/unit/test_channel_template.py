"""An MTChannelBasedBroker's `channel-template-spec`: which backend and topic shape it asks for."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from channels.registry import BackendSettings
from control.reconcilers.resources import broker as broker_build
from control.reconcilers.resources.broker import TopicOutcome
from control.reconcilers.snapshot import Snapshot
from control.resolver import Resolver
from control.settings import ControlSettings

NOW = "2026-01-01T00:00:00Z"
SETTINGS = ControlSettings(Path("/unused"), ingress_base_url="http://ingress:8080")
DEFAULTS = BackendSettings(kafka_bootstrap_servers="default-kafka:9092", nats_url="nats://default:4222")

KAFKA = """apiVersion: messaging.knative.dev/v1beta1
kind: KafkaChannel
spec:
  numPartitions: 3
  replicationFactor: 1
  retentionDuration: PT1H
"""
NATS = """apiVersion: messaging.knative.dev/v1alpha1
kind: NatsJetStreamChannel
spec:
  stream:
    config: {maxAge: 1h30m, maxBytes: 1048576, storage: Memory, replicas: 1}
"""
MEMORY = "apiVersion: messaging.knative.dev/v1\nkind: InMemoryChannel\n"


def mt_broker(cm: str | None = "br-channel") -> dict[str, Any]:
    spec = {"config": {"apiVersion": "v1", "kind": "ConfigMap", "name": cm, "namespace": "knative-eventing"}} \
        if cm else {}
    return {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker",
            "metadata": {"name": "b", "namespace": "ns1", "uid": "uid-b", "generation": 1,
                         "annotations": {"eventing.knative.dev/broker.class": "MTChannelBasedBroker"}},
            "spec": spec, "status": {}}


def channel_cm(template: str | None) -> dict[str, Any]:
    data = {"channel-template-spec": template} if template is not None else {"other": "x"}
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "br-channel", "namespace": "knative-eventing", "uid": "cm"}, "data": data}


def conditions(status: dict[str, Any]) -> dict[str, tuple[str, str, str]]:
    return {c["type"]: (c["status"], c.get("reason", ""), c.get("message", "")) for c in status["conditions"]}


@pytest.mark.parametrize(("template", "expected"), [
    (None, ("memory", "", 1, 1, {}, "InMemoryChannel")),
    (MEMORY, ("memory", "", 1, 1, {}, "InMemoryChannel")),
    (KAFKA, ("kafka", "default-kafka:9092", 3, 1, {"retention.ms": "3600000"}, "KafkaChannel")),
    # KafkaChannel's own default retention, PT168H.
    (KAFKA.replace("  retentionDuration: PT1H\n", ""),
     ("kafka", "default-kafka:9092", 3, 1, {"retention.ms": "604800000"}, "KafkaChannel")),
    (NATS, ("nats", "nats://default:4222", 1, 1,
            {"max.age.seconds": "5400.0", "max.bytes": "1048576", "storage": "memory", "replicas": "1"},
            "NatsJetStreamChannel")),
])
def test_the_template_picks_the_backend_and_shapes_the_topic(
        template: str | None, expected: tuple[str, str, int, int, dict[str, str], str]) -> None:
    where = broker_build.placement(mt_broker(), Snapshot.of([channel_cm(template)]), SETTINGS, DEFAULTS)
    assert where is not None and where.refused == ""
    topic = where.topic
    assert (where.backend, where.connection, topic.partitions, topic.replication_factor, dict(topic.config),
            where.channel and where.channel[1]) == expected
    assert topic.name == "knative-broker.ns1.b"


def test_a_broker_with_no_config_sits_on_an_inmemorychannel_and_says_so() -> None:
    obj = mt_broker(cm=None)
    where = broker_build.placement(obj, Snapshot(), SETTINGS, DEFAULTS)
    assert where is not None and where.backend == "memory"
    status = broker_build.status(obj, where, TopicOutcome(True), Resolver(Snapshot(), ""), SETTINGS, NOW)
    assert status["annotations"]["knative.dev/channelKind"] == "InMemoryChannel"
    assert status["annotations"]["knative.dev/channelAPIVersion"] == "messaging.knative.dev/v1"
    assert status["annotations"]["knative.dev/channelName"] == "b-kne-trigger"


@pytest.mark.parametrize(("template", "message"), [
    ("apiVersion: messaging.knative.dev/v1\nkind: RabbitChannel\n", "'RabbitChannel'"),
    ("apiVersion: messaging.knative.dev/v1\nkind: KafkaChannel\n", "expected one of InMemoryChannel"),
    ("just a string", "must be a YAML object"),
    ("kind: [unclosed", "not YAML"),
    (KAFKA.replace("numPartitions: 3", "numPartitions: three"), "spec.numPartitions: 'three' must be an integer >= 1"),
    (KAFKA.replace("PT1H", "1h"), "spec.retentionDuration"),
    (NATS.replace("1h30m", "soon"), "spec.stream.config.maxAge"),
    (NATS.replace("Memory", "Disk"), "spec.stream.config.storage: 'Disk' must be one of File, Memory"),
])
def test_a_template_nerve_cannot_run_is_a_status_naming_the_key(template: str, message: str) -> None:
    obj = mt_broker()
    where = broker_build.placement(obj, Snapshot.of([channel_cm(template)]), SETTINGS, DEFAULTS)
    assert where is not None and where.backend == ""
    status = broker_build.status(obj, where, broker_build.refusal(where), Resolver(Snapshot(), ""), SETTINGS, NOW)
    ready = conditions(status)["Ready"]
    assert ready[:2] == ("False", "ChannelTemplateFailed")
    assert "ConfigMap knative-eventing/br-channel key channel-template-spec: " in ready[2]
    assert message in ready[2]
    assert "address" not in status


def test_a_missing_configmap_is_not_ready_rather_than_memory() -> None:
    where = broker_build.placement(mt_broker("nowhere"), Snapshot(), SETTINGS, DEFAULTS)
    assert where is not None and where.backend == "" and "knative-eventing/nowhere does not exist" in where.refused


def test_clean_up_finds_the_kafka_topic_once_the_template_configmap_is_gone() -> None:
    obj = mt_broker()
    where = broker_build.placement(obj, Snapshot.of([channel_cm(KAFKA)]), SETTINGS, DEFAULTS)
    assert where is not None
    obj["status"] = broker_build.status(obj, where, TopicOutcome(True), Resolver(Snapshot(), ""), SETTINGS, NOW)
    # Reconciled once more without its ConfigMap (`nerve delete -f dir/` deletes it first): the record stays.
    gone = broker_build.placement(obj, Snapshot(), SETTINGS, DEFAULTS)
    assert gone is not None
    obj["status"] = broker_build.status(obj, gone, broker_build.refusal(gone), Resolver(Snapshot(), ""),
                                        SETTINGS, NOW)
    cleanup = broker_build.cleanup_placement(obj, Snapshot(), SETTINGS, DEFAULTS)
    assert cleanup is not None
    assert (cleanup.backend, cleanup.connection, cleanup.topic.name) == (
        "kafka", "default-kafka:9092", "knative-broker.ns1.b")


def test_a_native_kafka_broker_ignores_channel_templates() -> None:
    obj = mt_broker()
    obj["metadata"]["annotations"]["eventing.knative.dev/broker.class"] = "Kafka"
    where = broker_build.placement(obj, Snapshot.of([channel_cm(NATS)]), SETTINGS, DEFAULTS)
    assert where is not None and (where.backend, where.channel, where.refused) == ("kafka", None, "")
