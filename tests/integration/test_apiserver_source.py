"""ApiServerSource in embedded mode: changes made with the control API (as `nerve apply` / `nerve delete`
make them) reach a real HTTP sink as Knative's apiserver adapter sends them (rekt features
`ev:test/rekt/features/apiserversource/data_plane.go`, behaviour 69)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from core.events import Event
from tests.support.manifests import broker, trigger
from tests.support.receiver import Answer, Receiver
from tests.support.stack import Stack

SOURCES = "sources.knative.dev/v1"


def api_server_source(name: str, sink: dict[str, Any] | str, *, namespace: str = "ns1",
                      resources: list[dict[str, Any]] | None = None, api_version: str = SOURCES,
                      **spec: Any) -> dict[str, Any]:
    return {"apiVersion": api_version, "kind": "ApiServerSource", "metadata": {"name": name, "namespace": namespace},
            "spec": {"resources": resources or [{"apiVersion": "v1", "kind": "ConfigMap"}],
                     "sink": {"uri": sink} if isinstance(sink, str) else sink, **spec}}


def configmap(name: str, namespace: str = "ns1", labels: dict[str, str] | None = None,
              **data: str) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if labels:
        metadata["labels"] = labels
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data}


def namespace(name: str, **labels: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def data(event: Event) -> Any:
    return json.loads(event.data or b"")


async def ready(stack: Stack, kind: str, namespace: str, name: str) -> dict[str, Any]:
    obj = await stack.get(kind, namespace, name)
    conditions = {c["type"]: c for c in obj["status"]["conditions"]}
    assert conditions["Ready"]["status"] == "True", obj["status"]
    return obj


async def test_reference_mode_sends_the_object_reference_of_each_change(stack: Stack, receiver: Receiver) -> None:
    await stack.apply(configmap("before", x="1"))  # exists before the source: Knative sends nothing for it
    await stack.apply(api_server_source("refs", receiver.url, ceOverrides={"extensions": {"team": "infra"}}))
    status = (await ready(stack, "apiserversource", "ns1", "refs"))["status"]
    assert status["sinkUri"] == receiver.url
    assert status["namespaces"] == ["ns1"]
    assert [a["type"] for a in status["ceAttributes"]] == [
        "dev.knative.apiserver.ref.add", "dev.knative.apiserver.ref.delete", "dev.knative.apiserver.ref.update"]
    assert {a["source"] for a in status["ceAttributes"]} == {stack.api}
    assert {c["type"]: c["status"] for c in status["conditions"]} == {
        "SinkProvided": "True", "Deployed": "True", "SufficientPermissions": "True", "OIDCIdentityCreated": "True",
        "Ready": "True"}

    await stack.apply(configmap("settings", x="1"))
    await stack.apply(configmap("settings", x="2"))
    await stack.apply(configmap("settings", x="2"))  # no change, no new resourceVersion: no event
    await stack.delete("configmap", "ns1", "settings")
    await stack.apply(configmap("elsewhere", namespace="ns2"))  # not a watched namespace
    events = await receiver.wait_for(3)
    await receiver.settle()
    assert [e.type for e in receiver.events] == [
        "dev.knative.apiserver.ref.add", "dev.knative.apiserver.ref.update", "dev.knative.apiserver.ref.delete"]
    for event in events:
        assert data(event) == {"kind": "ConfigMap", "namespace": "ns1", "name": "settings", "apiVersion": "v1"}
        assert event.attributes["source"] == stack.api
        assert event.attributes["subject"] == "/apis/v1/namespaces/ns1/configmaps/settings"
        assert event.attributes["datacontenttype"] == "application/json"
        assert {k: event.attributes[k] for k in ("kind", "apiversion", "name", "namespace", "team")} == {
            "kind": "ConfigMap", "apiversion": "v1", "name": "settings", "namespace": "ns1", "team": "infra"}
        assert event.attributes["specversion"] == "1.0" and event.attributes["time"]
    assert len({e.id for e in events}) == 3
    assert {r.headers["Kn-Namespace"] for r in receiver.received} == {"ns1"}


async def test_resource_mode_sends_the_whole_object(stack: Stack, receiver: Receiver) -> None:
    await stack.apply(api_server_source("full", receiver.url, mode="Resource",
                                        api_version="sources.knative.dev/v1beta1"))
    await ready(stack, "apiserversource", "ns1", "full")
    await stack.apply(configmap("settings", x="1"))
    await stack.delete("configmap", "ns1", "settings")
    added, deleted = await receiver.wait_for(2)
    assert (added.type, deleted.type) == ("dev.knative.apiserver.resource.add", "dev.knative.apiserver.resource.delete")
    stored = data(added)
    assert (stored["apiVersion"], stored["kind"], stored["data"]) == ("v1", "ConfigMap", {"x": "1"})
    assert stored["metadata"]["name"] == "settings" and stored["metadata"]["uid"]
    assert data(deleted)["metadata"]["uid"] == stored["metadata"]["uid"]
    assert added.attributes["subject"] == "/apis/v1/namespaces/ns1/configmaps/settings"


async def test_label_selectors_and_match_expressions_are_honoured(stack: Stack, receiver: Receiver) -> None:
    selector = {"matchLabels": {"app": "web"},
                "matchExpressions": [{"key": "tier", "operator": "In", "values": ["front", "edge"]},
                                     {"key": "legacy", "operator": "DoesNotExist"}]}
    await stack.apply(api_server_source("selected", receiver.url, resources=[
        {"apiVersion": "v1", "kind": "ConfigMap", "selector": selector}]))
    await stack.apply(configmap("no-labels"), configmap("db", labels={"app": "db", "tier": "front"}),
                      configmap("back", labels={"app": "web", "tier": "back"}),
                      configmap("old", labels={"app": "web", "tier": "front", "legacy": "yes"}),
                      configmap("shop", labels={"app": "web", "tier": "edge"}))
    [event] = await receiver.wait_for(1)
    await receiver.settle()
    assert (event.type, event.attributes["name"]) == ("dev.knative.apiserver.ref.add", "shop")
    assert len(receiver.events) == 1
    # Relabelled out of the selector: a delete, as a watch with a label selector reports it; and back in: an add.
    await stack.apply(configmap("shop", labels={"app": "web", "tier": "back"}))
    await stack.apply(configmap("back", labels={"app": "web", "tier": "front"}))
    await receiver.wait_for(3)
    await receiver.settle()
    assert [(e.type, e.attributes["name"]) for e in receiver.events[1:]] == [
        ("dev.knative.apiserver.ref.delete", "shop"), ("dev.knative.apiserver.ref.add", "back")]


async def test_namespace_selector_includes_matching_and_excludes_other_namespaces(
    stack: Stack, receiver: Receiver
) -> None:
    await stack.apply(namespace("team-a", env="test"), namespace("team-b", env="prod"))
    await stack.apply(api_server_source("by-env", receiver.url, namespaceSelector={"matchLabels": {"env": "test"}}))
    assert (await ready(stack, "apiserversource", "ns1", "by-env"))["status"]["namespaces"] == ["team-a"]
    await stack.apply(configmap("a", namespace="team-b"), configmap("b", namespace="ns1"),
                      configmap("c", namespace="team-a"))
    # A namespace labelled to match after the source started is watched from then on.
    await stack.apply(namespace("team-c", env="test"))
    await stack.apply(configmap("d", namespace="team-c"))
    await receiver.wait_for(2)
    await receiver.settle()
    assert [(e.attributes["namespace"], e.attributes["name"]) for e in receiver.events] == [
        ("team-a", "c"), ("team-c", "d")]
    assert (await stack.get("apiserversource", "ns1", "by-env"))["status"]["namespaces"] == ["team-a", "team-c"]


async def test_an_empty_namespace_selector_covers_namespaces_created_later(stack: Stack, receiver: Receiver) -> None:
    await stack.apply(api_server_source("everywhere", receiver.url, namespaceSelector={}))
    await ready(stack, "apiserversource", "ns1", "everywhere")
    await stack.apply(namespace("brand-new"))
    await stack.apply(configmap("a", namespace="brand-new"), configmap("b", namespace="never-declared"))
    await receiver.wait_for(2)
    assert sorted(e.attributes["namespace"] for e in receiver.events) == ["brand-new", "never-declared"]
    namespaces = (await stack.get("apiserversource", "ns1", "everywhere"))["status"]["namespaces"]
    assert {"brand-new", "never-declared", "ns1"} <= set(namespaces)


async def test_cluster_scoped_kinds_and_the_owner_filter(stack: Stack, receiver: Receiver) -> None:
    # Subscriptions a Sequence generates are controlled by it; one applied by hand is not.
    await stack.apply(api_server_source("owned", receiver.url, resources=[
        {"apiVersion": "messaging.knative.dev/v1", "kind": "Subscription"},
        {"apiVersion": "v1", "kind": "Namespace"}], owner={"apiVersion": "flows.knative.dev/v1", "kind": "Sequence"}))
    await stack.apply({"apiVersion": "flows.knative.dev/v1", "kind": "Sequence", "metadata": {"name": "seq",
                       "namespace": "ns1"}, "spec": {"steps": [{"uri": receiver.url}]}},
                      namespace("not-owned"))
    await receiver.wait_for(1)
    await receiver.settle()
    # The add, then updates as the Subscription's status is written; nothing about the Namespace.
    assert receiver.events[0].type == "dev.knative.apiserver.ref.add"
    assert {e.attributes["kind"] for e in receiver.events} == {"Subscription"}
    assert {e.type for e in receiver.events[1:]} <= {"dev.knative.apiserver.ref.update"}
    assert receiver.events[0].attributes["subject"] == \
        "/apis/messaging.knative.dev/v1/namespaces/ns1/subscriptions/seq-kn-sequence-0"


async def test_a_sink_ref_to_a_broker_or_a_service(stack: Stack, receiver: Receiver) -> None:
    await stack.apply(broker("default"), trigger("all", receiver.url),
                      {"apiVersion": "v1", "kind": "Service", "metadata": {
                          "name": "event-display", "namespace": "ns1", "annotations": {"nerve.dev/url": receiver.url}}})
    await stack.apply(
        api_server_source("to-broker", {"ref": {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker",
                                                "name": "default"}}),
        api_server_source("to-service", {"ref": {"apiVersion": "v1", "kind": "Service", "name": "event-display"}},
                          resources=[{"apiVersion": "v1", "kind": "Namespace"}]))
    assert (await ready(stack, "apiserversource", "ns1", "to-broker"))["status"]["sinkUri"] == \
        f"{stack.ingress}/ns1/default"
    assert (await ready(stack, "apiserversource", "ns1", "to-service"))["status"]["sinkUri"] == receiver.url
    await stack.apply(configmap("via-broker"), namespace("direct"))
    await receiver.wait_for(2)
    by_name = {e.attributes["name"]: e for e in receiver.events}
    assert "knativearrivaltime" in by_name["via-broker"].attributes  # it went through the Broker
    assert "knativearrivaltime" not in by_name["direct"].attributes


async def test_a_flaky_sink_still_gets_the_event(stack: Stack) -> None:
    flaky = Receiver(lambda index, event: Answer(503 if index == 0 else 202))
    url = await flaky.start()
    try:
        await stack.apply(api_server_source("retried", url))
        await stack.apply(configmap("once"))
        first, second = await flaky.wait_for(2)
        await flaky.settle()
        assert first.id == second.id and len(flaky.events) == 2
    finally:
        await flaky.stop()


async def _apply_status(stack: Stack, manifest: dict[str, Any]) -> tuple[int, Any]:
    async with stack.session.post(f"{stack.api}/api/v1/apply", json={"items": [manifest]}) as response:
        return response.status, await response.json()


@pytest.mark.parametrize(("spec", "field"), [
    ({"resources": []}, "spec.resources"),
    ({"resources": [{"apiVersion": "v1"}]}, "spec.resources[0].kind"),
    ({"resources": [{"apiVersion": "a/b/c", "kind": "ConfigMap"}]}, "spec.resources[0].apiVersion"),
    ({"mode": "Everything"}, "spec.mode"),
    ({"resources": [{"apiVersion": "v1", "kind": "ConfigMap", "selector": {"matchExpressions": [
        {"key": "app", "operator": "Near", "values": ["x"]}]}}]},
     "spec.resources[0].selector.matchExpressions[0].operator"),
    ({"namespaceSelector": {"matchExpressions": [{"key": "env", "operator": "In"}]}},
     "spec.namespaceSelector.matchExpressions[0].values"),
    ({"owner": {"apiVersion": "apps/v1"}}, "spec.owner.kind"),
])
async def test_an_invalid_spec_is_refused_on_create_and_on_update(
    stack: Stack, receiver: Receiver, spec: dict[str, Any], field: str
) -> None:
    bad = api_server_source("bad", receiver.url)
    bad["spec"].update(spec)
    code, body = await _apply_status(stack, bad)
    assert code == 400, body
    assert field in [e["field"] for e in body["details"]], body
    await stack.apply(api_server_source("bad", receiver.url))
    code, body = await _apply_status(stack, bad)
    assert code == 400 and field in [e["field"] for e in body["details"]], body
    assert (await stack.get("apiserversource", "ns1", "bad"))["spec"]["resources"] == [
        {"apiVersion": "v1", "kind": "ConfigMap"}]


async def test_a_trigger_with_a_dependency_is_not_ready_until_its_source_is(stack: Stack, receiver: Receiver) -> None:
    dependency = json.dumps({"kind": "ApiServerSource", "name": "watcher", "apiVersion": "sources.knative.dev/v1"})
    await stack.apply(broker("default"),
                      trigger("waits", receiver.url, annotations={"knative.dev/dependency": dependency}))

    async def dependency_ready() -> dict[str, Any]:
        obj = await stack.get("trigger", "ns1", "waits")
        return {c["type"]: c for c in obj["status"]["conditions"]}

    conditions = await dependency_ready()
    assert (conditions["DependencyReady"]["status"], conditions["DependencyReady"]["reason"]) == (
        "False", "DependencyDoesNotExist")
    assert conditions["Ready"]["status"] == "False"
    # The source exists but its sink (a Broker not there yet) does not resolve: still not Ready, its reason.
    await stack.apply(api_server_source("watcher", {"ref": {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker",
                                                            "name": "later"}}))
    conditions = await dependency_ready()
    assert (conditions["DependencyReady"]["status"], conditions["DependencyReady"]["reason"]) == ("False", "NotFound")
    await stack.apply(broker("later"))
    await ready(stack, "apiserversource", "ns1", "watcher")
    conditions = await dependency_ready()
    assert conditions["DependencyReady"]["status"] == "True" and conditions["Ready"]["status"] == "True"


async def test_the_dependency_annotation_is_checked_at_apply_time(stack: Stack, receiver: Receiver) -> None:
    bad = trigger("t", receiver.url, annotations={"knative.dev/dependency": '{"kind": "PingSource"}'})
    code, body = await _apply_status(stack, bad)
    assert code == 400
    assert sorted(e["field"] for e in body["details"]) == [
        "metadata.annotations.knative.dev/dependency.apiVersion", "metadata.annotations.knative.dev/dependency.name"]
    code, body = await _apply_status(stack, trigger("t", receiver.url, annotations={"knative.dev/dependency": "x"}))
    assert code == 400 and body["details"][0]["field"] == "metadata.annotations.knative.dev/dependency"


async def test_a_source_watching_its_own_kind_does_not_feed_itself(stack: Stack, receiver: Receiver) -> None:
    await stack.apply(api_server_source("self", receiver.url, resources=[
        {"apiVersion": "sources.knative.dev/v1", "kind": "ApiServerSource"},
        {"apiVersion": "v1", "kind": "ConfigMap"}]))
    await stack.apply(configmap("one"))
    await receiver.wait_for(1)
    assert stack.nerve.service is not None
    for _ in range(3):  # passes that rewrite nothing change no resourceVersion: no events about the source
        await stack.nerve.service.reconciler.reconcile()
    await receiver.settle(0.5)
    assert [e.attributes["kind"] for e in receiver.events] == ["ConfigMap"]


async def test_changing_and_deleting_the_source(stack: Stack, receiver: Receiver) -> None:
    other = Receiver()
    other_url = await other.start()
    try:
        await stack.apply(api_server_source("changing", receiver.url))
        await stack.apply(configmap("a"))
        await receiver.wait_for(1)
        # A new mode restarts the watch; a new sink only moves where the events go.
        await stack.apply(api_server_source("changing", receiver.url, mode="Resource"))
        await stack.apply(configmap("b"))
        await receiver.wait_for(2)
        await stack.apply(api_server_source("changing", other_url, mode="Resource"))
        await stack.apply(configmap("c"))
        [moved] = await other.wait_for(1)
        assert [e.type for e in receiver.events] == ["dev.knative.apiserver.ref.add",
                                                     "dev.knative.apiserver.resource.add"]
        assert (moved.type, moved.attributes["name"]) == ("dev.knative.apiserver.resource.add", "c")
        await stack.delete("apiserversource", "ns1", "changing")
        await stack.apply(configmap("d"))
        await other.settle()
        assert len(other.events) == 1 and len(receiver.events) == 2
    finally:
        await other.stop()


async def test_filters_keep_only_the_events_they_match(stack: Stack, receiver: Receiver) -> None:
    await stack.apply(api_server_source("deletes-only", receiver.url, filters=[
        {"suffix": {"type": ".delete"}}, {"not": {"exact": {"name": "keep"}}}]))
    await stack.apply(configmap("gone"), configmap("keep"))
    await stack.delete("configmap", "ns1", "keep")
    await stack.delete("configmap", "ns1", "gone")
    [event] = await receiver.wait_for(1)
    await receiver.settle()
    assert (event.type, event.attributes["name"], len(receiver.events)) == ("dev.knative.apiserver.ref.delete",
                                                                           "gone", 1)
