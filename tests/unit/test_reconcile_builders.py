"""The pure builders: what each kind produces from an object, a store snapshot and backend answers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from channels.registry import BackendSettings
from control.conditions import ready_of
from control.reconcilers import finalizers, garbage
from control.reconcilers.controller import deleting_status
from control.reconcilers.resources import broker as broker_build
from control.reconcilers.resources import kafkasource as source_build
from control.reconcilers.resources import trigger as trigger_build
from control.reconcilers.resources.broker import TopicOutcome
from control.reconcilers.resources.kafkasource import Probe
from control.reconcilers.snapshot import Snapshot
from control.resolver import Resolver
from control.settings import ControlSettings
from core.contract import EgressConfig

NOW = "2026-01-01T00:00:00Z"
SETTINGS = ControlSettings(Path("/unused"), ingress_base_url="http://ingress:8080")
DEFAULTS = BackendSettings(kafka_bootstrap_servers="default-kafka:9092", nats_url="nats://default:4222")


def meta(name: str, uid: str = "", namespace: str = "ns1", **extra: Any) -> dict[str, Any]:
    return {"name": name, "namespace": namespace, "uid": uid or f"uid-{name}", "generation": 1, **extra}


def broker(cls: str = "MTChannelBasedBroker", config: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker",
            "metadata": meta("b", annotations={"eventing.knative.dev/broker.class": cls}),
            "spec": {**({"config": config} if config else {}), **spec}, "status": {}}


def configmap(name: str, namespace: str = "ns1", **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta(name, namespace=namespace), "data": data}


def cm_ref(name: str, namespace: str = "ns1") -> dict[str, str]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "name": name, "namespace": namespace}


def conditions(status: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c.get("reason", "")) for c in status["conditions"]}


# ------------------------------------------------------------------------------------------ Broker

@pytest.mark.parametrize(("obj", "objects", "expected"), [
    (broker(), [], ("memory", "", "knative-broker.ns1.b", 1, 1, {})),
    (broker("Kafka"), [], ("kafka", "default-kafka:9092", "knative-broker.ns1.b", 1, 1, {})),
    (broker("Kafka", cm_ref("k", "knative-eventing")),
     [configmap("k", "knative-eventing", **{"bootstrap.servers": "k1:9092,k2:9092",
                                           "default.topic.partitions": "10",
                                           "default.topic.replication.factor": "3"})],
     ("kafka", "k1:9092,k2:9092", "knative-broker.ns1.b", 10, 3, {})),
    (broker("NatsJetStreamBroker"), [], ("nats", "nats://default:4222", "knative-broker.ns1.b", 1, 1, {})),
    (broker("NatsJetStreamBroker", cm_ref("s")),
     [configmap("s", **{"url": "nats://mine:4222", "max.bytes": "1048576", "other": "x"})],
     ("nats", "nats://mine:4222", "knative-broker.ns1.b", 1, 1, {"max.bytes": "1048576"})),
    # A ConfigMap that is not there yet: the defaults, as Knative does before it is created.
    (broker("Kafka", cm_ref("missing")), [], ("kafka", "default-kafka:9092", "knative-broker.ns1.b", 1, 1, {})),
])
def test_broker_placement(obj: dict[str, Any], objects: list[dict[str, Any]],
                          expected: tuple[str, str, str, int, int, dict[str, str]]) -> None:
    where = broker_build.placement(obj, Snapshot.of(objects), SETTINGS, DEFAULTS)
    assert where is not None
    topic = where.topic
    assert (where.backend, where.connection, topic.name, topic.partitions, topic.replication_factor,
            dict(topic.config)) == expected
    assert where.problem == ""


def test_a_broker_of_an_unknown_class_has_no_placement_and_says_why() -> None:
    obj = broker("Imaginary")
    assert broker_build.placement(obj, Snapshot(), SETTINGS, DEFAULTS) is None
    status = broker_build.status(obj, None, None, Resolver(Snapshot(), ""), SETTINGS, NOW)
    assert conditions(status)["Ready"] == ("False", "BrokerClassNotSupported")
    assert "address" not in status


def test_a_configmap_number_that_is_not_one_is_a_placement_problem() -> None:
    where = broker_build.placement(broker("Kafka", cm_ref("k")),
                                   Snapshot.of([configmap("k", **{"default.topic.partitions": "ten"})]),
                                   SETTINGS, DEFAULTS)
    assert where is not None and "default.topic.partitions" in where.problem


@pytest.mark.parametrize(("outcome", "ready", "reason"), [
    (TopicOutcome(True), "True", ""),
    (TopicOutcome(False, "TopicNotReady", "Kafka at k:9092 is unreachable"), "False", "TopicNotReady"),
])
def test_broker_status_follows_its_topic(outcome: TopicOutcome, ready: str, reason: str) -> None:
    obj = broker()
    where = broker_build.placement(obj, Snapshot(), SETTINGS, DEFAULTS)
    status = broker_build.status(obj, where, outcome, Resolver(Snapshot(), ""), SETTINGS, NOW)
    assert status["address"] == {"url": "http://ingress:8080/ns1/b"}
    assert conditions(status)["Ready"] == (ready, reason)
    assert conditions(status)["TriggerChannelReady"][0] == ready
    assert {c["lastTransitionTime"] for c in status["conditions"]} == {NOW}


def test_broker_contract_entry() -> None:
    obj = broker("Kafka")
    where = broker_build.placement(obj, Snapshot(), SETTINGS, DEFAULTS)
    assert where is not None
    entry = broker_build.resource(obj, where)
    assert (entry.uid, entry.ingress_path, entry.topic, entry.bootstrap_servers, entry.egresses) == (
        "uid-b", "/ns1/b", "knative-broker.ns1.b", "default-kafka:9092", ())


# ----------------------------------------------------------------------------------------- Trigger

def trigger(subscriber: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger", "metadata": meta("t"),
            "spec": {"broker": "b", "subscriber": subscriber, **spec}, "status": {}}


def ready_broker(**spec: Any) -> tuple[dict[str, Any], Any]:
    obj = broker(**spec)
    where = broker_build.placement(obj, Snapshot(), SETTINGS, DEFAULTS)
    assert where is not None
    obj["status"] = broker_build.status(obj, where, TopicOutcome(True), Resolver(Snapshot(), ""), SETTINGS, NOW)
    return obj, broker_build.resource(obj, where)


@pytest.mark.parametrize(("case", "ready", "reason", "subscribed"), [
    ("ready", "True", "", True),
    ("no broker", "False", "BrokerDoesNotExist", False),
    ("broker not ready", "False", "TopicNotReady", True),
    ("unresolvable subscriber", "False", "Unable to get the Subscriber's URI", False),
])
def test_trigger_status_and_egress(case: str, ready: str, reason: str, subscribed: bool) -> None:
    obj = trigger({"uri": "http://sub/"})
    b, entry = ready_broker()
    if case == "no broker":
        b, entry = None, None
    elif case == "broker not ready":
        where = broker_build.placement(b, Snapshot(), SETTINGS, DEFAULTS)
        b["status"] = broker_build.status(b, where, TopicOutcome(False, "TopicNotReady", "down"),
                                          Resolver(Snapshot(), ""), SETTINGS, NOW)
    elif case == "unresolvable subscriber":
        obj = trigger({"ref": {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "name": "nope"}})
    built = trigger_build.build(obj, b, entry, Resolver(Snapshot(), ""), SETTINGS, NOW)
    assert conditions(built.status)["Ready"] == (ready, reason)
    assert (built.egress is not None) == subscribed


def test_a_trigger_delivery_replaces_its_brokers_and_names_its_group() -> None:
    b, entry = ready_broker(delivery={"retry": 5, "backoffDelay": "PT1S"})
    inherited = trigger_build.build(trigger({"uri": "http://sub/"}), b, entry, Resolver(Snapshot(), ""), SETTINGS)
    own = trigger_build.build(trigger({"uri": "http://sub/"}, delivery={"retry": 1}), b, entry,
                              Resolver(Snapshot(), ""), SETTINGS)
    assert inherited.egress is not None and own.egress is not None
    assert inherited.egress.egress_config == EgressConfig(retry=5, backoff_delay_ms=1000)
    assert own.egress.egress_config == EgressConfig(retry=1)
    assert own.egress.consumer_group == "knative-trigger.ns1.t"
    assert own.egress.reply_to_original_topic


# ------------------------------------------------------------------------------------- KafkaSource

def kafka_source(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "sources.knative.dev/v1", "kind": "KafkaSource", "metadata": meta("src"),
            "spec": {"bootstrapServers": ["h1:9092", "h2:9092"], "topics": ["orders", "refunds"],
                     "consumerGroup": "cg", "sink": {"uri": "http://sink/"}, "initialOffset": "latest",
                     "ordering": "ordered", "consumers": 1, **spec}, "status": {}}


@pytest.mark.parametrize(("probe", "ready", "reason", "message_names"), [
    (Probe(True), "True", "", ""),
    (Probe(False, "Kafka at 127.0.0.1:1 is unreachable: KafkaConnectionError"), "False", "ClientCreationFailed",
     "127.0.0.1:1"),
    (Probe(None, "Kafka at h1:9092,h2:9092 has not answered within 2s yet"), "Unknown", "ConnectionPending",
     "h1:9092,h2:9092"),
    (Probe(True, missing_topics=("refunds",)), "False", "TopicsNotFound", "refunds"),
])
def test_kafka_source_readiness_follows_its_cluster(probe: Probe, ready: str, reason: str,
                                                    message_names: str) -> None:
    built = source_build.build(kafka_source(), probe, Resolver(Snapshot(), ""), NOW)
    condition = ready_of({"status": built.status})
    assert condition is not None
    assert (condition["status"], condition.get("reason", "")) == (ready, reason)
    assert message_names in condition.get("message", "")


@pytest.mark.parametrize(("spec", "order", "offset", "overrides"), [
    ({}, "ordered", "latest", {}),
    ({"ordering": "unordered", "initialOffset": "earliest", "ceOverrides": {"extensions": {"team": "pay"}}},
     "unordered", "earliest", {"team": "pay"}),
])
def test_one_contract_source_per_kafka_source(spec: dict[str, Any], order: str, offset: str,
                                              overrides: dict[str, str]) -> None:
    built = source_build.build(kafka_source(delivery={"retry": 2}, **spec), Probe(True),
                               Resolver(Snapshot(), ""), NOW)
    source = built.source
    assert source is not None
    assert (source.uid, source.kind, source.reference.name) == ("uid-src", "KafkaSource", "src")
    egress = source.egress
    assert (egress.destination, egress.consumer_group, egress.delivery_order, egress.egress_config.retry) == (
        "http://sink/", "cg", order, 2)
    assert source.config == {"bootstrapServers": "h1:9092,h2:9092", "topics": ["orders", "refunds"],
                             "initialOffset": offset, "source": "/apis/v1/namespaces/ns1/kafkasources/src",
                             "ceOverrides": overrides}


def test_a_kafka_source_without_a_sink_has_no_contract_entry() -> None:
    obj = kafka_source(sink={"ref": {"apiVersion": "v1", "kind": "Nope", "name": "x"}})
    built = source_build.build(obj, Probe(True), Resolver(Snapshot(), ""), NOW)
    assert built.source is None
    assert conditions(built.status)["SinkProvided"][0] == "False"


# ------------------------------------------------------------------- finalizers and owner references

def obj(name: str, *owners: str, deleting: bool = False, finalizer: bool = False) -> dict[str, Any]:
    m = meta(name, ownerReferences=[{"apiVersion": "v1", "kind": "ConfigMap", "name": o, "uid": f"uid-{o}"}
                                    for o in owners])
    if deleting:
        m["deletionTimestamp"] = NOW
    if finalizer:
        m["finalizers"] = [finalizers.BACKEND_CLEANUP]
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": m}


@pytest.mark.parametrize(("objects", "orphans"), [
    ([obj("owner"), obj("child", "owner")], []),
    ([obj("child", "owner")], ["child"]),
    # An owner being deleted still exists: its children wait for it.
    ([obj("owner", deleting=True), obj("child", "owner")], []),
    # Any one owner left keeps a child.
    ([obj("a"), obj("child", "a", "gone")], []),
    ([obj("child", "gone", "also-gone")], ["child"]),
    # A chain goes one generation at a time; one being deleted already is not deleted again.
    ([obj("child", "gone"), obj("grandchild", "child")], ["child"]),
    ([obj("child", "gone", deleting=True)], []),
    ([obj("plain")], []),
])
def test_orphans_are_the_objects_whose_owners_are_all_gone(objects: list[dict[str, Any]],
                                                           orphans: list[str]) -> None:
    assert [o["metadata"]["name"] for o in garbage.orphans(objects)] == orphans


def test_owner_reference_names_the_owner() -> None:
    owner = obj("owner")
    assert garbage.owner_reference(owner) == {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner",
                                              "uid": "uid-owner", "controller": True, "blockOwnerDeletion": True}


@pytest.mark.parametrize(("o", "needs_adding", "pending"), [
    (obj("new"), True, False),
    (obj("kept", finalizer=True), False, False),
    (obj("deleted", deleting=True, finalizer=True), False, True),
    (obj("deleted-no-finalizer", deleting=True), False, False),
])
def test_finalizer_states(o: dict[str, Any], needs_adding: bool, pending: bool) -> None:
    assert finalizers.needs_adding(o) is needs_adding
    assert finalizers.pending(o) is pending
    assert finalizers.has(finalizers.added(o))
    assert not finalizers.has(finalizers.removed(finalizers.added(o)))


def test_a_deleting_object_says_it_waits_for_clean_up_and_why() -> None:
    b = broker()
    b["status"] = {"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": NOW},
                                  {"type": "Addressable", "status": "True", "lastTransitionTime": NOW}]}
    status = deleting_status(b, "cannot delete NATS stream 'x': TimeoutError()")
    ready = ready_of({"status": status})
    assert ready is not None
    assert (ready["status"], ready["reason"]) == ("False", "Deleting")
    assert "cannot delete NATS stream" in ready["message"]
    assert conditions(status)["Addressable"] == ("True", "")


def test_clean_up_finds_the_topic_on_the_recorded_cluster_once_the_configmap_is_gone() -> None:
    obj = broker("Kafka", cm_ref("k"))
    cm = configmap("k", **{"bootstrap.servers": "mine:9092"})
    where = broker_build.placement(obj, Snapshot.of([cm]), SETTINGS, DEFAULTS)
    obj["status"] = broker_build.status(obj, where, TopicOutcome(True), Resolver(Snapshot(), ""), SETTINGS, NOW)
    assert obj["status"]["annotations"]["bootstrap.servers"] == "mine:9092"
    with_cm = broker_build.cleanup_placement(obj, Snapshot.of([cm]), SETTINGS, DEFAULTS)
    without_cm = broker_build.cleanup_placement(obj, Snapshot(), SETTINGS, DEFAULTS)
    assert with_cm is not None and without_cm is not None
    assert (with_cm.connection, without_cm.connection) == ("mine:9092", "mine:9092")
    assert without_cm.topic.name == "knative-broker.ns1.b"
    # Reconciled without its ConfigMap (topic not ready on the default cluster): the record stays.
    lost = broker_build.placement(obj, Snapshot(), SETTINGS, DEFAULTS)
    obj["status"] = broker_build.status(obj, lost, TopicOutcome(False, "TopicNotReady", "x"),
                                        Resolver(Snapshot(), ""), SETTINGS, NOW)
    assert obj["status"]["annotations"]["bootstrap.servers"] == "mine:9092"
