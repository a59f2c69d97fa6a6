"""The control plane as `nerve apply` users meet it: validation, statuses, restarts, live changes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.support.manifests import BROKER, trigger
from tests.support.receiver import Receiver
from tests.support.stack import Stack, event, running_stack


async def _apply_error(stack: Stack, *items: dict[str, Any]) -> dict[str, Any]:
    async with stack.session.post(f"{stack.api}/api/v1/apply", json={"items": list(items)}) as r:
        assert r.status == 400, await r.text()
        body: dict[str, Any] = await r.json()
        return body


def _ready(obj: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in obj["status"]["conditions"] if c["type"] == "Ready")


async def test_invalid_manifests_name_each_field_and_store_nothing(stack: Stack) -> None:
    bad = trigger(
        "t1",
        "not a uri",
        filter={"attributes": {"Bad-Key": "x"}},
        delivery={"retry": -1, "backoffPolicy": "sometimes", "backoffDelay": "1s", "format": "xml"},
    )
    body = await _apply_error(stack, BROKER, bad)
    fields = {d["field"] for d in body["details"]}
    assert fields >= {
        "spec.subscriber.uri",
        "spec.delivery.retry",
        "spec.delivery.backoffPolicy",
        "spec.delivery.backoffDelay",
        "spec.delivery.format",
    }
    assert {d["resource"] for d in body["details"]} == {"Trigger/ns1/t1"}
    reasons = " ".join(d["reason"] for d in body["details"])
    assert "must be an integer >= 0" in reasons
    assert "linear or exponential" in reasons
    # The valid Broker of the same request was not stored either.
    async with stack.session.get(f"{stack.api}/api/v1/resources/brokers?namespace=ns1") as r:
        assert (await r.json())["items"] == []


async def test_destination_rules(stack: Stack) -> None:
    neither = trigger("t1", "x")
    neither["spec"]["subscriber"] = {}
    body = await _apply_error(stack, neither)
    assert body["details"][0]["field"] == "spec.subscriber"
    assert body["details"][0]["reason"] == "expected at least one of ref or uri, got neither"
    both = trigger("t1", "http://abs/")
    both["spec"]["subscriber"] = {"ref": {"apiVersion": "v1", "kind": "Service", "name": "s"}, "uri": "http://abs/"}
    body = await _apply_error(stack, both)
    assert "absolute URI is not allowed when ref is present" in body["reason"]


async def test_unknown_kinds_and_missing_names_are_refused(stack: Stack) -> None:
    body = await _apply_error(stack, {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "d"}})
    assert "apps/v1/StatefulSet is not supported" in body["reason"]
    # A Deployment is a kind now (local workloads), refused only for what it lacks.
    body = await _apply_error(stack, {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}})
    assert body["details"][0]["field"] == "spec"
    body = await _apply_error(stack, {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "metadata": {}})
    assert body["details"][0]["field"].endswith("metadata.name")


async def test_a_trigger_before_its_broker_waits_then_becomes_ready(stack: Stack, receiver: Receiver) -> None:
    await stack.apply(trigger("early", receiver.url))
    early = await stack.get("trigger", "ns1", "early")
    assert _ready(early)["status"] == "False"
    assert _ready(early)["reason"] == "BrokerDoesNotExist"
    await stack.apply(BROKER)
    early = await stack.get("trigger", "ns1", "early")
    assert _ready(early)["status"] == "True"
    assert early["status"]["subscriberUri"] == receiver.url
    broker = await stack.get("broker", "ns1", "default")
    assert broker["status"]["address"]["url"] == f"{stack.ingress}/ns1/default"
    assert {c["type"] for c in broker["status"]["conditions"]} >= {
        "Ready",
        "Addressable",
        "IngressReady",
        "TriggerChannelReady",
        "DeadLetterSinkResolved",
    }
    assert await stack.send("/ns1/default", event("after")) == 202
    await receiver.wait_for(1)


async def test_immutable_fields_and_generations(stack: Stack, receiver: Receiver) -> None:
    await stack.apply(BROKER, trigger("t1", receiver.url))
    changed_class = {
        **BROKER,
        "metadata": {**BROKER["metadata"], "annotations": {"eventing.knative.dev/broker.class": "Kafka"}},
    }
    body = await _apply_error(stack, changed_class)
    assert "immutable" in body["reason"]
    body = await _apply_error(stack, trigger("t1", receiver.url, broker="other"))
    assert body["details"][0]["field"] == "spec.broker"
    result = await stack.apply(trigger("t1", receiver.url, delivery={"retry": 1}))
    assert result[0]["outcome"] == "configured"
    t1 = await stack.get("trigger", "ns1", "t1")
    assert t1["metadata"]["generation"] == 2
    assert t1["status"]["observedGeneration"] == 2
    assert (await stack.apply(trigger("t1", receiver.url, delivery={"retry": 1})))[0]["outcome"] == "unchanged"


async def test_service_refs_resolve_by_annotation_or_template(tmp_path: Path, receiver: Receiver) -> None:
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "hello-display", "namespace": "ns1", "annotations": {"nerve.dev/url": receiver.url}},
    }
    by_ref = trigger("byref", "unused")
    by_ref["spec"]["subscriber"] = {"ref": {"apiVersion": "v1", "kind": "Service", "name": "hello-display"}}
    templated = trigger("templated", "unused")
    templated["spec"]["subscriber"] = {
        "ref": {"apiVersion": "v1", "kind": "Service", "name": "elsewhere"},
        "uri": "/path",
    }
    # The template is used only where it is configured (compose, a cluster's DNS) ...
    async with running_stack(tmp_path / "templated",
                             service_url_template="http://{name}.{namespace}.svc.cluster.local") as stack:
        await stack.apply(BROKER, service, by_ref, templated)
        assert (await stack.get("trigger", "ns1", "byref"))["status"]["subscriberUri"] == receiver.url
        assert (await stack.get("trigger", "ns1", "templated"))["status"]["subscriberUri"] == (
            "http://elsewhere.ns1.svc.cluster.local/path"
        )
    # ... by default a ref to a Service that does not exist resolves to nothing: not Ready, never an
    # invented svc.cluster.local address that loses every event.
    async with running_stack(tmp_path / "default") as stack:
        await stack.apply(BROKER, service, by_ref, templated)
        assert (await stack.get("trigger", "ns1", "byref"))["status"]["subscriberUri"] == receiver.url
        missing = await stack.get("trigger", "ns1", "templated")
        assert missing["status"]["subscriberUri"] == ""
        resolved = next(c for c in missing["status"]["conditions"] if c["type"] == "SubscriberResolved")
        assert resolved["status"] == "False" and "Service ns1/elsewhere does not exist" in resolved["message"]
        assert _ready(missing)["status"] == "False"


async def test_deleting_a_broker_unroutes_it_and_its_triggers_wait(stack: Stack, receiver: Receiver) -> None:
    await stack.apply(BROKER, trigger("t1", receiver.url))
    await stack.delete("broker", "ns1", "default")
    assert await stack.send("/ns1/default", event(1)) == 404
    assert _ready(await stack.get("trigger", "ns1", "t1"))["reason"] == "BrokerDoesNotExist"


async def test_resources_survive_a_restart(tmp_path: Path, receiver: Receiver) -> None:
    async with running_stack(tmp_path) as stack:
        await stack.apply(BROKER, trigger("t1", receiver.url))
        first = stack.nerve.dispatcher.generation
    async with running_stack(tmp_path) as stack:
        assert _ready(await stack.get("trigger", "ns1", "t1"))["status"] == "True"
        assert stack.nerve.dispatcher.generation > first
        assert await stack.send("/ns1/default", event("after-restart")) == 202
        await receiver.wait_for(1)


async def test_bad_filters_are_refused_at_apply_time_with_their_path(stack: Stack, receiver: Receiver) -> None:
    two_dialects = trigger("t1", receiver.url, filters=[{"exact": {"type": "a"}, "suffix": {"type": "b"}}])
    body = await _apply_error(stack, two_dialects)
    assert body["details"][0]["field"].startswith("spec.filters[0]")
    assert "multiple dialects found" in body["details"][0]["reason"]
    bad_cesql = trigger("t1", receiver.url, filters=[{"any": [{"cesql": "type = 'a' AND"}]}])
    body = await _apply_error(stack, bad_cesql)
    assert body["details"][0]["field"].startswith("spec.filters[0].any[0].cesql")
    bad_key = trigger("t1", receiver.url, filter={"attributes": {"Bad-Key": "x"}})
    body = await _apply_error(stack, bad_key)
    assert body["details"][0]["field"] == "spec.filter.attributes.Bad-Key"
    async with stack.session.get(f"{stack.api}/api/v1/resources/triggers?namespace=ns1") as r:
        assert (await r.json())["items"] == []


async def test_knatives_kafka_broker_yaml_is_accepted_unchanged(stack: Stack) -> None:
    await stack.apply("""
apiVersion: v1
kind: ConfigMap
metadata:
  name: kafka-broker-config
  namespace: knative-eventing
data:
  default.topic.partitions: "10"
  default.topic.replication.factor: "3"
  bootstrap.servers: "my-cluster-kafka-bootstrap.kafka:9092"
---
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata:
  annotations:
    eventing.knative.dev/broker.class: Kafka
  name: default
  namespace: default
spec:
  config:
    apiVersion: v1
    kind: ConfigMap
    name: kafka-broker-config
    namespace: knative-eventing
  delivery:
    retry: 3
""")
    broker = await stack.get("broker", "default", "default")
    assert broker["spec"]["config"]["namespace"] == "knative-eventing"
    assert broker["status"]["annotations"]["nerve.dev/backend"] == "kafka"


async def _apply(stack: Stack, *items: dict[str, Any], query: str = "") -> tuple[int, dict[str, Any]]:
    async with stack.session.post(f"{stack.api}/api/v1/apply{query}", json={"items": list(items)}) as r:
        body: dict[str, Any] = await r.json()
        return r.status, body


async def test_every_problem_of_every_document_is_reported(stack: Stack) -> None:
    bad_name = trigger("Bad_Name", "/relative", delivery={"retry": -1})
    no_meta = {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "metadata": "default"}
    typo = {"apiVersion": "eventing.knative.dev/v1", "kind": "Triger", "metadata": {"name": "t2"}}
    body = await _apply_error(stack, bad_name, BROKER, no_meta, typo)
    assert [(d["resource"], d["field"]) for d in body["details"]] == [
        ("Trigger/ns1/Bad_Name", "metadata.name"),
        ("Trigger/ns1/Bad_Name", "spec.subscriber.uri"),
        ("Trigger/ns1/Bad_Name", "spec.delivery.retry"),
        ("document 3", "metadata"),
        ("Triger/t2", "kind"),
    ]
    assert body["details"][-1]["reason"] == 'unknown kind "Triger"; did you mean "Trigger" (eventing.knative.dev/v1)?'
    async with stack.session.get(f"{stack.api}/api/v1/resources/brokers?namespace=ns1") as r:
        assert (await r.json())["items"] == []


async def test_unknown_fields_are_warned_applied_and_pruned_or_refused_when_strict(stack: Stack) -> None:
    typo = trigger("t1", "http://127.0.0.1:9/", brokr="x", delivery={"retry": 1, "retyr": 3})
    typo["metadata"]["labelz"] = {"a": "b"}
    status, body = await _apply(stack, BROKER, typo, query="?fieldValidation=Strict")
    assert status == 400
    assert [(d["field"], d["reason"]) for d in body["details"]] == [
        ("metadata.labelz", "unknown field"), ("spec.brokr", "unknown field"), ("spec.delivery.retyr", "unknown field"),
    ]
    async with stack.session.get(f"{stack.api}/api/v1/resources/triggers?namespace=ns1") as r:
        assert (await r.json())["items"] == []
    status, body = await _apply(stack, BROKER, typo)
    assert status == 200, body
    assert body["warnings"] == [
        {"resource": "Trigger/ns1/t1", "field": path, "message": f'unknown field "{path}"'}
        for path in ("metadata.labelz", "spec.brokr", "spec.delivery.retyr")
    ]
    stored = await stack.get("trigger", "ns1", "t1")
    assert "brokr" not in stored["spec"] and "labelz" not in stored["metadata"]
    assert stored["spec"]["delivery"] == {"retry": 1}
    status, body = await _apply(stack, typo, query="?fieldValidation=Ignore")
    assert (status, body["warnings"]) == (200, [])
    status, body = await _apply(stack, typo, query="?fieldValidation=Loose")
    assert status == 400
    assert body["field"] == "fieldValidation"


async def test_a_refused_apply_still_shows_the_warning_that_explains_it(stack: Stack) -> None:
    typo = trigger("t1", "unused")
    typo["spec"]["subscribr"] = typo["spec"].pop("subscriber")
    body = await _apply_error(stack, typo)
    assert [d["field"] for d in body["details"]] == ["spec.subscriber"]
    assert [w["field"] for w in body["warnings"]] == ["spec.subscribr"]


async def test_not_found_and_unknown_kinds_answer_404_in_kubectls_words(stack: Stack) -> None:
    for method in ("GET", "DELETE"):
        async with stack.session.request(method, f"{stack.api}/api/v1/resources/triggers/ns1/x") as r:
            assert r.status == 404
            assert (await r.json())["reason"] == 'triggers.eventing.knative.dev "x" not found'
    async with stack.session.get(f"{stack.api}/api/v1/resources/cm/ns1/x") as r:
        assert (r.status, (await r.json())["reason"]) == (404, 'configmaps "x" not found')
    async with stack.session.get(f"{stack.api}/api/v1/resources/brokrs") as r:
        assert (r.status, (await r.json())["reason"]) == (404, 'unknown kind "brokrs"; did you mean "brokers"?')
