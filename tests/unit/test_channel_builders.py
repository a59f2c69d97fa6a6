"""The channel and Subscription builders: placement, delivery precedence, statuses, names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from channels.registry import BackendSettings
from control.conditions import ready_of
from control.reconcilers.resources import channel as channel_build
from control.reconcilers.resources import subscription as sub_build
from control.reconcilers.snapshot import Snapshot
from control.resolver import Resolver
from control.settings import ControlSettings
from core.contract import EgressConfig

NOW = "2026-01-01T00:00:00Z"
SETTINGS = ControlSettings(Path("/unused"), ingress_base_url="http://ingress:8080")
DEFAULTS = BackendSettings(kafka_bootstrap_servers="default-kafka:9092", nats_url="nats://default:4222")
MESSAGING = "messaging.knative.dev/v1"


def _meta(name: str, uid: str = "", **extra: Any) -> dict[str, Any]:
    return {"name": name, "namespace": "ns1", "uid": uid or f"uid-{name}", "generation": 1, **extra}


def _imc(name: str = "c", status: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": MESSAGING, "kind": "InMemoryChannel", "metadata": _meta(name), "spec": spec,
            "status": status or {}}


def _ready_status(**extra: Any) -> dict[str, Any]:
    return {"conditions": [{"type": "Ready", "status": "True"}],
            "address": {"url": "http://ingress:8080/channels/ns1/c"}, **extra}


def _subscription(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": MESSAGING, "kind": "Subscription", "metadata": _meta("s"),
            "spec": {"channel": {"apiVersion": MESSAGING, "kind": "InMemoryChannel", "name": "c"},
                     "subscriber": {"uri": "http://sub/"}, **spec}, "status": {}}


def _conditions(status: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c.get("reason", "")) for c in status["conditions"]}


def test_a_kafka_channel_topic_takes_its_spec_and_the_default_cluster() -> None:
    kc = {"apiVersion": "messaging.knative.dev/v1beta1", "kind": "KafkaChannel", "metadata": _meta("orders"),
          "spec": {"numPartitions": 6, "replicationFactor": 3, "retentionDuration": "PT1H"}}
    where = channel_build.placement(kc, SETTINGS, DEFAULTS)
    assert (where.backend, where.connection, where.topic.name) == (
        "kafka", "default-kafka:9092", "knative-messaging-kafka.ns1.orders")
    assert (where.topic.partitions, where.topic.replication_factor, dict(where.topic.config)) == (
        6, 3, {"retention.ms": "3600000"})
    resource = channel_build.resource(kc, where)
    assert (resource.ingress_path, resource.kind, resource.bootstrap_servers) == (
        "/channels/ns1/orders", "KafkaChannel", "default-kafka:9092")


def test_a_nats_channel_stream_is_its_override_name_on_the_default_server() -> None:
    njsc = {"apiVersion": "messaging.knative.dev/v1alpha1", "kind": "NatsJetStreamChannel", "metadata": _meta("o"),
            "spec": {"stream": {"overrideName": "ORDERS", "config": {"maxAge": "1m"}}}}
    where = channel_build.placement(njsc, SETTINGS, DEFAULTS)
    assert (where.backend, where.topic.name, dict(where.topic.config)) == (
        "nats", "ORDERS", {"max.age.seconds": "60.0"})
    assert channel_build.resource(njsc, where).connection == "nats://default:4222"


def _merged(sub_delivery: dict[str, Any] | None, channel_delivery: dict[str, Any] | None,
            channel_dls_uri: str = "http://channel-dls/") -> tuple[dict[str, Any] | None, str | None]:
    sub = _subscription(**({"delivery": sub_delivery} if sub_delivery is not None else {}))
    ch = _imc(status=_ready_status(deadLetterSinkUri=channel_dls_uri),
              **({"delivery": channel_delivery} if channel_delivery is not None else {}))
    resolver = Resolver(Snapshot.of([ch]), SETTINGS.service_url_template)
    return sub_build.merged_delivery(sub, ch), sub_build._dead_letter(sub, ch, resolver)


CHANNEL_DELIVERY = {"retry": 5, "backoffPolicy": "linear", "backoffDelay": "PT1S",
                    "deadLetterSink": {"uri": "http://channel-dls/"}}


@pytest.mark.parametrize(("sub_delivery", "expected"), [
    # No delivery of its own: all of the channel's.
    (None, ({"retry": 5, "backoffPolicy": "linear", "backoffDelay": "PT1S"}, "http://channel-dls/")),
    # Retries of its own: those only (no channel backoff mixed in), and still the channel's sink.
    ({"retry": 1}, ({"retry": 1}, "http://channel-dls/")),
    # Only a sink of its own: that sink, and no retries at all (Knative's reconciler, not the spec).
    ({"deadLetterSink": {"uri": "http://mine/"}}, (None, "http://mine/")),
    ({"retry": 2, "deadLetterSink": {"uri": "http://mine/"}}, ({"retry": 2}, "http://mine/")),
])
def test_delivery_precedence_is_knatives_reconciler(sub_delivery: dict[str, Any] | None,
                                                      expected: tuple[Any, Any]) -> None:
    assert _merged(sub_delivery, CHANNEL_DELIVERY) == expected


def test_a_channel_sink_not_resolved_yet_keeps_the_subscription_unresolved() -> None:
    sub = _subscription()
    ch = _imc(status=_ready_status(), delivery={"deadLetterSink": {"uri": "http://channel-dls/"}})
    resource = channel_build.resource(ch, channel_build.placement(ch, SETTINGS, DEFAULTS))
    built = sub_build.build(sub, sub_build.ChannelOf(ch, ch), resource,
                            Resolver(Snapshot.of([ch]), SETTINGS.service_url_template), SETTINGS, NOW)
    assert _conditions(built.status)["ReferencesResolved"] == ("False", "DeadLetterSinkResolveFailed")
    assert built.egress is None


def test_a_subscription_egress_carries_its_group_reply_and_delivery() -> None:
    sub = _subscription(reply={"uri": "http://reply/"}, delivery={"retry": 2, "backoffDelay": "PT0.5S",
                                                                  "deadLetterSink": {"uri": "http://dls/"}})
    sub["metadata"]["annotations"] = {"kafka.eventing.knative.dev/delivery.order": "ordered"}
    ch = _imc(status=_ready_status())
    resource = channel_build.resource(ch, channel_build.placement(ch, SETTINGS, DEFAULTS))
    built = sub_build.build(sub, sub_build.ChannelOf(ch, ch), resource,
                            Resolver(Snapshot.of([ch]), SETTINGS.service_url_template), SETTINGS, NOW)
    assert ready_of({"status": built.status}) == {"type": "Ready", "status": "True", "lastTransitionTime": NOW}
    egress = built.egress
    assert egress is not None
    assert (egress.consumer_group, egress.destination, egress.reply_url, egress.delivery_order) == (
        "kafka.ns1.c.uid-s", "http://sub/", "http://reply/", "ordered")
    assert egress.egress_config == EgressConfig(retry=2, backoff_delay_ms=500, dead_letter="http://dls/")
    assert built.status["physicalSubscription"] == {"subscriberUri": "http://sub/", "replyUri": "http://reply/",
                                                    "deadLetterSinkUri": "http://dls/"}
    assert built.subscriber == {"name": "s", "uid": "uid-s", "generation": 1, "subscriberUri": "http://sub/",
                                "replyUri": "http://reply/",
                                "delivery": {"retry": 2, "backoffDelay": "PT0.5S",
                                             "deadLetterSink": {"uri": "http://dls/"}}}


def test_without_a_reply_the_egress_discards_replies_and_is_unordered() -> None:
    ch = _imc(status=_ready_status())
    resource = channel_build.resource(ch, channel_build.placement(ch, SETTINGS, DEFAULTS))
    built = sub_build.build(_subscription(), sub_build.ChannelOf(ch, ch), resource,
                            Resolver(Snapshot.of([ch]), SETTINGS.service_url_template), SETTINGS, NOW)
    assert built.egress is not None
    assert built.egress.to_json()["discardReply"] == {}
    assert built.egress.delivery_order == "unordered"


def test_a_subscription_without_its_channel_says_so() -> None:
    sub = _subscription()
    found = sub_build.channel_of(sub, Snapshot.of([sub]))
    built = sub_build.build(sub, found, None, Resolver(Snapshot.of([sub]), SETTINGS.service_url_template),
                            SETTINGS, NOW)
    ready = ready_of({"status": built.status}) or {}
    assert (ready["status"], ready["reason"]) == ("False", "ChannelReferenceFailed")
    assert "InMemoryChannel ns1/c does not exist" in ready["message"]
    assert built.egress is None


def test_a_channel_mirrors_its_backing_channel() -> None:
    generic = {"apiVersion": MESSAGING, "kind": "Channel", "metadata": _meta("c", uid="uid-generic"),
               "spec": {"channelTemplate": {"apiVersion": MESSAGING, "kind": "InMemoryChannel"},
                        "delivery": {"deadLetterSink": {"uri": "http://dls/"}}}, "status": {}}
    child = channel_build.backing_channel(generic)
    assert child["spec"] == {"delivery": {"deadLetterSink": {"uri": "http://dls/"}}}
    assert child["metadata"]["annotations"] == {"messaging.knative.dev/subscribable": "v1"}
    assert channel_build.channel_status(generic, None, now=NOW)["conditions"][0]["reason"] == \
        "BackingChannelNotConfigured"
    subscribers = [{"uid": "u1", "observedGeneration": 1, "ready": "True"}]
    backing = {**child, "metadata": {**_meta("c"), "ownerReferences": [{"uid": "uid-generic"}]},
               "status": _ready_status(subscribers=subscribers, deadLetterSinkUri="http://dls/")}
    assert channel_build.backing_of(generic, Snapshot.of([generic, backing])) is backing
    status = channel_build.channel_status(generic, backing, now=NOW)
    assert status["address"] == {"url": "http://ingress:8080/channels/ns1/c"}
    assert (status["subscribers"], status["deadLetterSinkUri"]) == (subscribers, "http://dls/")
    assert status["channel"] == {"apiVersion": MESSAGING, "kind": "InMemoryChannel", "name": "c", "namespace": "ns1"}
    assert all(s == "True" for s, _ in _conditions(status).values())
    # An InMemoryChannel of that name that the Channel does not own is not its backing channel.
    stranger = {**backing, "metadata": _meta("c")}
    assert channel_build.backing_of(generic, Snapshot.of([generic, stranger])) is None


def test_a_concrete_channel_status_has_its_kinds_topic_condition() -> None:
    kc = {"apiVersion": "messaging.knative.dev/v1beta1", "kind": "KafkaChannel", "metadata": _meta("c"), "spec": {}}
    where = channel_build.placement(kc, SETTINGS, DEFAULTS)
    resolver = Resolver(Snapshot.of([kc]), SETTINGS.service_url_template)
    down = channel_build.status(kc, where, channel_build.TopicOutcome(False, "TopicNotReady", "no broker"), [],
                                resolver, SETTINGS, NOW)
    assert _conditions(down)["TopicReady"] == ("False", "TopicNotReady")
    assert _conditions(down)["Ready"] == ("False", "TopicNotReady")
    assert "bootstrap.servers" not in down["annotations"]
    up = channel_build.status(kc, where, channel_build.TopicOutcome(True), [], resolver, SETTINGS, NOW)
    assert _conditions(up)["Ready"] == ("True", "")
    assert up["annotations"]["bootstrap.servers"] == "default-kafka:9092"
    assert up["address"] == {"url": "http://ingress:8080/channels/ns1/c"}


def test_the_channel_that_has_a_shared_topic_keeps_it_else_the_oldest() -> None:
    def imc(name: str, created: str, holds: bool = False) -> dict[str, Any]:
        status = {"annotations": {"nerve.dev/topic": "shared"},
                  "conditions": [{"type": "DispatcherReady", "status": "True"}]} if holds else {}
        return {"apiVersion": MESSAGING, "kind": "InMemoryChannel",
                "metadata": _meta(name, creationTimestamp=created), "spec": {}, "status": status}

    settings = ControlSettings(Path("/unused"), channel_topic_template="shared")
    old, new, holder = imc("old", "2026-01-01T00:00:00Z"), imc("new", "2026-01-02T00:00:00Z"), \
        imc("holder", "2026-01-03T00:00:00Z", holds=True)
    placed = [(c, channel_build.placement(c, settings, DEFAULTS)) for c in (old, new)]
    assert channel_build.topic_holders(placed) == {"uid-new": old}
    placed += [(holder, channel_build.placement(holder, settings, DEFAULTS))]
    assert channel_build.topic_holders(placed) == {"uid-new": holder, "uid-old": holder}
    assert channel_build.topic_holders(placed[:1]) == {}


def test_an_unresolvable_subscriber_is_reported_with_an_empty_uri() -> None:
    sub = _subscription(subscriber={"ref": {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker",
                                            "name": "missing", "namespace": "ns1"}}, reply={"uri": "http://reply/"})
    ch = _imc(status=_ready_status())
    resource = channel_build.resource(ch, channel_build.placement(ch, SETTINGS, DEFAULTS))
    built = sub_build.build(sub, sub_build.ChannelOf(ch, ch), resource,
                            Resolver(Snapshot.of([ch]), SETTINGS.service_url_template), SETTINGS, NOW)
    assert built.status["physicalSubscription"] == {"subscriberUri": "", "replyUri": "http://reply/"}
    assert _conditions(built.status)["ReferencesResolved"] == ("False", "SubscriberResolveFailed")
    assert (built.egress, built.subscriber) == (None, None)
