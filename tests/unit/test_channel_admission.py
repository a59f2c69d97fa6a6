"""Admission of the channel kinds and Subscriptions, without I/O: defaults, validation, update rules."""

from __future__ import annotations

from typing import Any

import pytest

from control.api import kinds
from control.api.admission import AdmissionSettings, Refused, admit
from control.api.channel import with_defaults_from
from control.api.natsjetstreamchannel import go_duration_seconds, stream_config

SETTINGS = AdmissionSettings()
MESSAGING = "messaging.knative.dev/v1"


def _channel(kind: str = "Channel", api_version: str = MESSAGING, namespace: str = "ns1",
             **spec: Any) -> dict[str, Any]:
    manifest: dict[str, Any] = {"apiVersion": api_version, "kind": kind,
                                "metadata": {"name": "c", "namespace": namespace}}
    if spec:
        manifest["spec"] = spec
    return manifest


def _subscription(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": MESSAGING, "kind": "Subscription", "metadata": {"name": "s", "namespace": "ns1"},
            "spec": {"channel": {"apiVersion": MESSAGING, "kind": "Channel", "name": "c"},
                     "subscriber": {"uri": "http://sink/"}, **spec}}


def _errors(manifest: Any, old: dict[str, Any] | None = None,
            settings: AdmissionSettings = SETTINGS) -> dict[str, str]:
    with pytest.raises(Refused) as info:
        admit(manifest, old, settings)
    return {e.path: e.reason for e in info.value.errors}


def _defaults_configmap(text: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "default-ch-webhook", "namespace": "knative-eventing"},
            "data": {"default-ch-config": text}}


@pytest.mark.parametrize(("name", "kind"), [
    ("channels", "Channel"), ("ch", "Channel"), ("inmemorychannels", "InMemoryChannel"), ("imc", "InMemoryChannel"),
    ("kafkachannels", "KafkaChannel"), ("kc", "KafkaChannel"), ("natsjetstreamchannels", "NatsJetStreamChannel"),
    ("subscriptions", "Subscription"), ("sub", "Subscription"),
    ("subscriptions.messaging.knative.dev", "Subscription"),
])
def test_every_spelling_finds_its_kind(name: str, kind: str) -> None:
    found = kinds.lookup(name)
    assert found is not None and found.kind == kind


def test_a_channel_gets_the_setting_template_and_the_subscribable_annotation() -> None:
    obj = admit(_channel(), None, AdmissionSettings(default_channel_kind="KafkaChannel")).obj
    assert obj["spec"]["channelTemplate"] == {"apiVersion": "messaging.knative.dev/v1beta1", "kind": "KafkaChannel"}
    assert obj["metadata"]["annotations"] == {"messaging.knative.dev/subscribable": "v1"}


def test_the_default_ch_webhook_configmap_wins_namespace_default_first() -> None:
    text = """
clusterDefault:
  apiVersion: messaging.knative.dev/v1beta1
  kind: KafkaChannel
  spec: {numPartitions: 3}
namespaceDefaults:
  special:
    apiVersion: messaging.knative.dev/v1alpha1
    kind: NatsJetStreamChannel
"""
    settings = with_defaults_from(SETTINGS, _defaults_configmap(text))
    cluster = admit(_channel(), None, settings).obj["spec"]["channelTemplate"]
    assert cluster == {"apiVersion": "messaging.knative.dev/v1beta1", "kind": "KafkaChannel",
                       "spec": {"numPartitions": 3}}
    special = admit(_channel(namespace="special"), None, settings).obj["spec"]["channelTemplate"]
    assert special["kind"] == "NatsJetStreamChannel"
    # Another ConfigMap, or an unreadable one, is no default.
    other = _defaults_configmap(text)
    other["metadata"]["name"] = "something-else"
    assert with_defaults_from(SETTINGS, other) is SETTINGS
    broken = with_defaults_from(SETTINGS, _defaults_configmap("clusterDefault: [unclosed"))
    assert admit(_channel(), None, broken).obj["spec"]["channelTemplate"]["kind"] == "InMemoryChannel"


def test_a_bad_channel_template_is_refused_naming_the_field() -> None:
    assert "is not a channel kind Nerve runs" in _errors(_channel(channelTemplate={
        "apiVersion": MESSAGING, "kind": "RabbitChannel"}))["spec.channelTemplate.kind"]
    assert "use messaging.knative.dev/v1beta1" in _errors(_channel(channelTemplate={
        "apiVersion": MESSAGING, "kind": "KafkaChannel"}))["spec.channelTemplate.apiVersion"]
    assert _errors(_channel(channelTemplate={"kind": "InMemoryChannel"})) == {
        "spec.channelTemplate.apiVersion": "required"}
    errors = _errors(_channel(channelTemplate={"apiVersion": "messaging.knative.dev/v1beta1", "kind": "KafkaChannel",
                                               "spec": {"numPartitions": 0, "retentionDuration": "1 week"}}))
    assert set(errors) == {"spec.channelTemplate.spec.numPartitions", "spec.channelTemplate.spec.retentionDuration"}


def test_the_channel_template_is_immutable() -> None:
    old = admit(_channel(), None, SETTINGS).obj
    new = _channel(channelTemplate={"apiVersion": "messaging.knative.dev/v1beta1", "kind": "KafkaChannel"})
    assert "immutable" in _errors(new, old)["spec.channelTemplate"]


@pytest.mark.parametrize("kind,api_version", [
    ("Channel", MESSAGING), ("InMemoryChannel", MESSAGING), ("KafkaChannel", "messaging.knative.dev/v1beta1"),
    ("NatsJetStreamChannel", "messaging.knative.dev/v1alpha1"),
])
def test_users_never_write_spec_subscribers(kind: str, api_version: str) -> None:
    mine = [{"uid": "u1", "subscriberUri": "http://mine/"}]
    assert "Subscription" in _errors(_channel(kind, api_version, subscribers=mine))["spec.subscribers"]
    stored = admit(_channel(kind, api_version), None, SETTINGS).obj
    stored["spec"]["subscribers"] = [{"uid": "u0", "subscriberUri": "http://theirs/"}]
    # Left out (Nerve writes it again) or sent back as it is: fine. Changed: refused.
    admit(_channel(kind, api_version), stored, SETTINGS)
    admit({**stored, "spec": dict(stored["spec"])}, stored, SETTINGS)
    assert "spec.subscribers" in _errors({**stored, "spec": {**stored["spec"], "subscribers": mine}}, stored)


def test_kafka_channel_defaults_and_immutable_topic_shape() -> None:
    obj = admit(_channel("KafkaChannel", "messaging.knative.dev/v1beta1"), None, SETTINGS).obj
    assert {k: obj["spec"][k] for k in ("numPartitions", "replicationFactor", "retentionDuration")} == {
        "numPartitions": 1, "replicationFactor": 1, "retentionDuration": "PT168H"}
    changed = _channel("KafkaChannel", "messaging.knative.dev/v1beta1", numPartitions=4)
    assert "immutable" in _errors(changed, obj)["spec.numPartitions"]
    bad = _channel("KafkaChannel", "messaging.knative.dev/v1beta1", replicationFactor=True, retentionDuration="PT0S")
    assert set(_errors(bad)) == {"spec.replicationFactor", "spec.retentionDuration"}


def test_nats_stream_config_maps_onto_the_backend_and_unrun_fields_are_noticed() -> None:
    manifest = _channel("NatsJetStreamChannel", "messaging.knative.dev/v1alpha1", stream={
        "overrideName": "ORDERS", "config": {
            "retention": "Interest", "maxConsumers": 5, "maxMsgs": 100, "maxBytes": 1024, "discard": "New",
            "maxAge": "1h30m", "maxMsgSize": 512, "storage": "Memory", "replicas": 3, "duplicateWindow": "2m",
            "placement": {"cluster": "east"}}},
        consumerConfigTemplate={"deliverPolicy": "All"})
    admitted = admit(manifest, None, SETTINGS)
    assert stream_config(admitted.obj["spec"]) == {
        "retention": "interest", "discard": "new", "storage": "memory", "max.consumers": "5", "max.msgs": "100",
        "max.bytes": "1024", "max.msg.size": "512", "replicas": "3", "max.age.seconds": "5400.0",
        "duplicate.window.seconds": "120.0"}
    noticed = {n.path for n in admitted.warnings}
    assert noticed == {"spec.stream.config.placement", "spec.consumerConfigTemplate"}
    bad = _channel("NatsJetStreamChannel", "messaging.knative.dev/v1alpha1", stream={
        "overrideName": "KN_ORDERS", "config": {"storage": "Disk", "maxAge": "an hour", "maxMsgs": -1}})
    assert set(_errors(bad)) == {"spec.stream.overrideName", "spec.stream.config.storage",
                                 "spec.stream.config.maxAge", "spec.stream.config.maxMsgs"}


@pytest.mark.parametrize(("text", "seconds"), [("0", 0.0), ("90s", 90.0), ("1h30m", 5400.0), ("1.5h", 5400.0),
                                               ("500ms", 0.5), ("2m3s", 123.0)])
def test_go_durations(text: str, seconds: float) -> None:
    assert go_duration_seconds(text) == seconds


@pytest.mark.parametrize("text", ["", "1", "1d", "h", "PT1H", "1h 2m"])
def test_not_go_durations(text: str) -> None:
    with pytest.raises(ValueError):
        go_duration_seconds(text)


def test_a_subscription_needs_a_channel_and_a_subscriber() -> None:
    no_sub = _subscription()
    del no_sub["spec"]["subscriber"]
    assert _errors(no_sub) == {"spec.subscriber": "required: the Subscription must reference a subscriber"}
    no_channel = _subscription()
    del no_channel["spec"]["channel"]
    assert _errors(no_channel) == {"spec.channel": "required: the Subscription must reference a channel"}
    wrong = _subscription(channel={"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "name": "b"})
    assert "is not a channel kind Nerve runs" in _errors(wrong)["spec.channel.kind"]
    elsewhere = _subscription(channel={"apiVersion": MESSAGING, "kind": "Channel", "name": "c", "namespace": "x"})
    assert "cross-namespace" in _errors(elsewhere)["spec.channel.namespace"]
    order = _subscription()
    order["metadata"]["annotations"] = {"kafka.eventing.knative.dev/delivery.order": "sorted"}
    assert set(_errors(order)) == {"metadata.annotations.kafka.eventing.knative.dev/delivery.order"}


def test_subscription_defaults_and_update_rules() -> None:
    obj = admit(_subscription(reply={"ref": {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker",
                                             "name": "b"}}), None, SETTINGS).obj
    assert obj["spec"]["reply"]["ref"]["namespace"] == "ns1"
    moved = _subscription(channel={"apiVersion": MESSAGING, "kind": "Channel", "name": "other"})
    assert "immutable" in _errors(moved, obj)["spec.channel"]
    admit(_subscription(subscriber={"uri": "http://elsewhere/"}, delivery={"retry": 1}), obj, SETTINGS)
