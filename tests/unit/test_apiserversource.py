"""ApiServerSource's pure parts: label selectors (matching and checks), the kind's validation, the events
the adapter builds, the reconciler's builder, and the Trigger's DependencyReady from a source."""

from __future__ import annotations

import json
from typing import Any

import pytest

from control.api.admission import AdmissionSettings, Refused, admit
from control.api.selector import validate_selector
from control.reconcilers.resources import apiserversource as build
from control.reconcilers.resources.trigger import dependency_condition
from control.reconcilers.snapshot import Snapshot
from control.resolver import Resolver
from core.contract import Egress, Reference, Source
from core.selector import LabelSelector, namespace_labels
from sources.apiserver import build_event, controlled_by, guess_plural, object_reference, self_link
from sources.emit import Emitter

# ---------------------------------------------------------------------------------------- selectors


@pytest.mark.parametrize(("selector", "labels", "matches"), [
    ({}, {}, True),
    (None, {"a": "b"}, True),
    ({"matchLabels": {"app": "web"}}, {"app": "web", "x": "y"}, True),
    ({"matchLabels": {"app": "web"}}, {"app": "db"}, False),
    ({"matchLabels": {"app": "web"}}, {}, False),
    ({"matchExpressions": [{"key": "env", "operator": "In", "values": ["a", "b"]}]}, {"env": "b"}, True),
    ({"matchExpressions": [{"key": "env", "operator": "In", "values": ["a"]}]}, {}, False),
    ({"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["a"]}]}, {}, True),
    ({"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["a"]}]}, {"env": "a"}, False),
    ({"matchExpressions": [{"key": "env", "operator": "Exists"}]}, {"env": ""}, True),
    ({"matchExpressions": [{"key": "env", "operator": "Exists"}]}, {}, False),
    ({"matchExpressions": [{"key": "env", "operator": "DoesNotExist"}]}, {}, True),
    ({"matchExpressions": [{"key": "env", "operator": "DoesNotExist"}]}, {"env": "x"}, False),
    ({"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "env", "operator": "Exists"}]},
     {"app": "web"}, False),
])
def test_label_selectors_match_as_the_api_server_matches(selector: Any, labels: dict[str, str],
                                                          matches: bool) -> None:
    assert validate_selector(selector, "s") == []
    assert LabelSelector.from_json(selector).matches(labels) is matches


def test_a_selector_reads_as_kubectl_writes_it() -> None:
    selector = LabelSelector.from_json({"matchLabels": {"app": "web"}, "matchExpressions": [
        {"key": "env", "operator": "In", "values": ["b", "a"]}, {"key": "old", "operator": "DoesNotExist"}]})
    assert str(selector) == "app=web,env in (a,b),!old"
    assert LabelSelector.from_json({}).everything and not selector.everything
    assert LabelSelector.of_labels({"app": "x"}).matches({"app": "x", "y": "z"})


def test_a_namespace_is_selectable_by_its_name_label() -> None:
    assert namespace_labels("team-a", None) == {"kubernetes.io/metadata.name": "team-a"}
    assert namespace_labels("team-a", {"metadata": {"labels": {"env": "test"}}}) == {
        "env": "test", "kubernetes.io/metadata.name": "team-a"}


@pytest.mark.parametrize(("selector", "path", "reason"), [
    ("x", "s", "must be a label selector: an object with matchLabels and/or matchExpressions"),
    ({"matchLabels": ["a"]}, "s.matchLabels", "must be a map of label keys to values"),
    ({"matchLabels": {"-bad": "x"}}, "s.matchLabels.-bad",
     "'-bad': a label name is at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or "
     "digit"),
    ({"matchLabels": {"Example.com/app": "x"}}, "s.matchLabels.Example.com/app",
     "'Example.com/app': the prefix before '/' must be a DNS subdomain (lower-case letters, digits, '-', '.')"),
    ({"matchLabels": {"app": "not ok"}}, "s.matchLabels.app",
     "'not ok': a label value is empty or at most 63 letters, digits, '-', '_' or '.', starting and ending with "
     "a letter or digit"),
    ({"matchExpressions": [{"key": "a", "operator": "Equals", "values": ["x"]}]}, "s.matchExpressions[0].operator",
     "'Equals' is not a valid selector operator; use In, NotIn, Exists, DoesNotExist"),
    ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": []}]}, "s.matchExpressions[0].values",
     "must be specified when `operator` is NotIn"),
    ({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}, "s.matchExpressions[0].values",
     "may not be specified when `operator` is Exists"),
    ({"matchExpressions": [{"operator": "Exists"}]}, "s.matchExpressions[0].key", "required"),
    ({"matchExpressions": {"key": "a"}}, "s.matchExpressions", "must be a list of {key, operator, values}"),
])
def test_a_bad_selector_is_refused_with_its_field(selector: Any, path: str, reason: str) -> None:
    assert [(e.path, e.reason) for e in validate_selector(selector, "s")] == [(path, reason)]


# ------------------------------------------------------------------------------------- the kind


def source_manifest(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "sources.knative.dev/v1beta1", "kind": "ApiServerSource",
            "metadata": {"name": "s", "namespace": "ns1"},
            "spec": {"resources": [{"apiVersion": "v1", "kind": "Event"}],
                     "sink": {"ref": {"apiVersion": "v1", "kind": "Service", "name": "event-display"}}, **spec}}


def test_defaults_and_the_stored_version() -> None:
    admitted = admit(source_manifest(), None, AdmissionSettings())
    assert admitted.obj["apiVersion"] == "sources.knative.dev/v1"
    assert (admitted.obj["spec"]["mode"], admitted.obj["spec"]["serviceAccountName"]) == ("Reference", "default")
    assert admitted.obj["spec"]["sink"]["ref"]["namespace"] == "ns1"


def _refused(**spec: Any) -> list[tuple[str, str]]:
    with pytest.raises(Refused) as refused:
        admit(source_manifest(**spec), None, AdmissionSettings())
    return [(e.path, e.reason) for e in refused.value.errors]


def test_invalid_specs_are_refused_naming_each_field() -> None:
    assert _refused(resources=[]) == [("spec.resources", "required: a non-empty list of {apiVersion, kind, selector}")]
    assert _refused(resources=[{"apiVersion": "apps/v1/x", "kind": " "}, {"kind": "Pod"}]) == [
        ("spec.resources[0].apiVersion",
         "invalid value: 'apps/v1/x'; an apiVersion is `version` or `group/version`, such as v1 or apps/v1"),
        ("spec.resources[0].kind", "required"),
        ("spec.resources[1].apiVersion", "required")]
    assert _refused(mode="resource") == [("spec.mode", "invalid value: 'resource'; must be Reference or Resource")]
    assert _refused(owner={"apiVersion": "Apps/V1", "kind": ""}) == [
        ("spec.owner.apiVersion",
         "invalid value: 'Apps/V1'; an apiVersion is `version` or `group/version`, such as v1 or apps/v1"),
        ("spec.owner.kind", "required")]
    assert _refused(namespaceSelector={"matchExpressions": [{"key": "env", "operator": "In"}]}) == [
        ("spec.namespaceSelector.matchExpressions[0].values", "must be specified when `operator` is In")]
    assert _refused(filters=[{"exakt": {"type": "x"}}]) == [
        ("spec.filters[0].exakt", "unknown filter dialect; expected one of: exact, prefix, suffix, all, any, not, "
                                  "cesql")]


def test_a_kind_nerve_does_not_store_is_said_at_apply_time() -> None:
    admitted = admit(source_manifest(resources=[{"apiVersion": "v1", "kind": "ConfigMap"},
                                                {"apiVersion": "example.com/v1", "kind": "Widget"}]),
                     None, AdmissionSettings())
    [notice] = admitted.warnings
    assert notice.path == "spec.resources[1]"
    assert "Nerve stores no example.com/v1/Widget objects, so this entry sees no changes" in notice.message


def test_rbac_kinds_are_stored_with_a_warning_that_they_grant_nothing() -> None:
    for manifest in ({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "events-sa"}},
                     {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                      "metadata": {"name": "event-watcher"}, "rules": [{"apiGroups": [""], "resources": ["events"],
                                                                        "verbs": ["get", "list", "watch"]}]},
                     {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                      "metadata": {"name": "b"}, "roleRef": {"kind": "ClusterRole", "name": "event-watcher"},
                      "subjects": [{"kind": "ServiceAccount", "name": "events-sa", "namespace": "default"}]}):
        admitted = admit(manifest, None, AdmissionSettings())
        assert [w.message for w in admitted.warnings] == [
            f"{manifest['kind']} is stored but grants nothing: embedded Nerve has no RBAC, so an ApiServerSource "
            "sees every kind Nerve stores whatever its serviceAccountName may do"]
    assert "namespace" not in admit(manifest, None, AdmissionSettings()).obj["metadata"]  # cluster-scoped


# -------------------------------------------------------------------------------------- events


def _source(config: dict[str, Any] | None = None) -> Source:
    ref = Reference("u1", "ns1", "s", "ApiServerSource")
    egress = Egress(uid="u1", reference=ref, consumer_group="", destination="http://sink/", generation=1)
    return Source("u1", ref, egress, {"ceOverrides": {"team": "infra"}, **(config or {})})


@pytest.mark.parametrize(("kind", "plural"), [
    ("Event", "events"), ("ConfigMap", "configmaps"), ("Ingress", "ingresses"), ("NetworkPolicy", "networkpolicies"),
    ("Endpoints", "endpoints"), ("ApiServerSource", "apiserversources"),
])
def test_plurals_are_guessed_as_kubernetes_guesses_them(kind: str, plural: str) -> None:
    assert guess_plural(kind) == plural


def test_subjects_follow_knative_s_self_links() -> None:
    assert self_link("v1", "Pod", "default", "busybox") == "/apis/v1/namespaces/default/pods/busybox"
    assert self_link("apps/v1", "Deployment", "ns", "d") == "/apis/apps/v1/namespaces/ns/deployments/d"
    assert self_link("serving.knative.dev", "Revision", "ns", "r") == \
        "/apis/serving.knative.dev/versionUnknown/namespaces/ns/revisions/r"


OBJ = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "ns1", "uid": "x"},
       "data": {"k": "v"}}


@pytest.mark.parametrize(("mode", "change", "type_", "payload"), [
    ("Reference", "add", "dev.knative.apiserver.ref.add",
     {"kind": "ConfigMap", "namespace": "ns1", "name": "c", "apiVersion": "v1"}),
    ("Reference", "delete", "dev.knative.apiserver.ref.delete",
     {"kind": "ConfigMap", "namespace": "ns1", "name": "c", "apiVersion": "v1"}),
    ("Resource", "update", "dev.knative.apiserver.resource.update", OBJ),
])
def test_an_event_is_built_as_knative_s_adapter_builds_it(mode: str, change: Any, type_: str,
                                                          payload: dict[str, Any]) -> None:
    emitter = Emitter(_source(), None, default_timeout_s=1.0)  # type: ignore[arg-type]  # never sends here
    event = build_event(emitter, change, OBJ, mode=mode, source="http://127.0.0.1:8081")
    assert {k: v for k, v in event.attributes.items() if k not in ("id", "time")} == {
        "specversion": "1.0", "type": type_, "source": "http://127.0.0.1:8081",
        "subject": "/apis/v1/namespaces/ns1/configmaps/c", "datacontenttype": "application/json",
        "kind": "ConfigMap", "apiversion": "v1", "name": "c", "namespace": "ns1", "team": "infra"}
    assert json.loads(event.data or b"") == payload
    assert list(json.loads(event.data or b"")) == list(payload)  # Go's field order for the ObjectReference
    assert event.headers == {"Kn-Namespace": "ns1"}


def test_a_cluster_scoped_reference_has_no_namespace() -> None:
    assert object_reference({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}}) == {
        "kind": "Namespace", "name": "n", "apiVersion": "v1"}


@pytest.mark.parametrize(("owner", "refs", "passes"), [
    (None, [], True),
    ({"apiVersion": "apps/v1", "kind": "ReplicaSet"}, [], False),
    ({"kind": "ReplicaSet"}, [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "controller": True}], True),
    ({"kind": "ReplicaSet"}, [{"apiVersion": "apps/v1", "kind": "ReplicaSet"}], False),  # not the controller
    ({"apiVersion": "apps/v2", "kind": "ReplicaSet"},
     [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "controller": True}], False),
    ({"apiVersion": "apps/v1", "kind": ""}, [{"apiVersion": "apps/v1", "kind": "Job", "controller": True}], True),
])
def test_the_owner_filter_looks_at_the_controller(owner: Any, refs: list[Any], passes: bool) -> None:
    assert controlled_by({"metadata": {"ownerReferences": refs}}, owner) is passes


# -------------------------------------------------------------------------------------- builder


def _stored(**spec: Any) -> dict[str, Any]:
    obj = admit(source_manifest(**spec), None, AdmissionSettings()).obj
    obj["metadata"].update(uid="u1", generation=1)
    obj["status"] = {}
    return obj


SNAPSHOT = Snapshot.of([
    {"kind": "Namespace", "metadata": {"name": "team-a", "labels": {"env": "test"}}},
    {"kind": "Namespace", "metadata": {"name": "team-b", "labels": {"env": "prod"}}},
    {"kind": "ConfigMap", "metadata": {"name": "c", "namespace": "implicit"}},
    {"kind": "Service", "metadata": {"name": "event-display", "namespace": "ns1",
                                     "annotations": {"nerve.dev/url": "http://display/"}}},
])
RESOLVER = Resolver(SNAPSHOT, "http://{name}.{namespace}.svc.cluster.local")


def test_the_status_and_the_contract_entry() -> None:
    built = build.build(_stored(mode="Resource", resources=[{"apiVersion": "v1", "kind": "ConfigMap"},
                                                            {"apiVersion": "example.com/v1", "kind": "Widget"}]),
                        SNAPSHOT, RESOLVER, source_url="http://api", watch_available=True)
    status = built.status
    assert status["sinkUri"] == "http://display/"
    assert status["ceAttributes"] == [{"type": f"dev.knative.apiserver.resource.{c}", "source": "http://api"}
                                      for c in ("add", "delete", "update")]
    assert status["namespaces"] == ["ns1"]
    assert {c["type"]: c["status"] for c in status["conditions"]} == {
        "SinkProvided": "True", "Deployed": "True", "SufficientPermissions": "True", "OIDCIdentityCreated": "True",
        "Ready": "True"}
    assert built.source is not None
    assert built.source.config == {
        "source": "http://api", "mode": "Resource", "owner": None, "filters": [], "namespaces": ["ns1"],
        "namespaceSelector": None, "allNamespaces": False, "ceOverrides": {},
        # A kind Nerve does not store is left out (and was warned about at apply time).
        "resources": [{"apiVersion": "v1", "kind": "ConfigMap", "namespaced": True, "selector": None}]}


@pytest.mark.parametrize(("selector", "namespaces", "everything"), [
    ({"matchLabels": {"env": "test"}}, ["team-a"], False),
    ({"matchExpressions": [{"key": "env", "operator": "DoesNotExist"}]}, ["implicit", "ns1"], False),
    ({"matchLabels": {"kubernetes.io/metadata.name": "team-b"}}, ["team-b"], False),
    ({}, ["implicit", "ns1", "team-a", "team-b"], True),
])
def test_a_namespace_selector_lists_what_it_matches(selector: dict[str, Any], namespaces: list[str],
                                                    everything: bool) -> None:
    built = build.build(_stored(namespaceSelector=selector), SNAPSHOT, RESOLVER, source_url="u", watch_available=True)
    assert built.status["namespaces"] == namespaces
    assert built.source is not None
    assert (built.source.config["namespaces"], built.source.config["namespaceSelector"],
            built.source.config["allNamespaces"]) == (None, selector, everything)


def test_without_a_store_to_watch_the_source_is_not_ready_and_says_why() -> None:
    built = build.build(_stored(), SNAPSHOT, RESOLVER, source_url="u", watch_available=False)
    ready = next(c for c in built.status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "ResourceWatchUnavailable")
    assert "embedded mode (`nerve up`)" in ready["message"]
    assert built.source is None


def test_a_sink_that_does_not_resolve() -> None:
    built = build.build(_stored(sink={"ref": {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker",
                                               "name": "nope"}}), SNAPSHOT, RESOLVER, source_url="u",
                        watch_available=True)
    sink = next(c for c in built.status["conditions"] if c["type"] == "SinkProvided")
    assert (sink["status"], sink["reason"], built.source) == ("False", "NotFound", None)
    assert "sinkUri" not in built.status


# ---------------------------------------------------------------------------- Trigger dependency


def _trigger(dependency: dict[str, Any] | None) -> dict[str, Any]:
    annotations = {"knative.dev/dependency": json.dumps(dependency)} if dependency else {}
    return {"kind": "Trigger", "metadata": {"name": "t", "namespace": "ns1", "annotations": annotations}}


REF = {"kind": "ApiServerSource", "name": "s", "apiVersion": "sources.knative.dev/v1"}


def _source_obj(generation: int = 1, observed: int | None = 1, ready: dict[str, str] | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {} if observed is None else {"observedGeneration": observed}
    if ready is not None:
        status["conditions"] = [{"type": "Ready", **ready}]
    return {"kind": "ApiServerSource", "metadata": {"name": "s", "namespace": "ns1", "generation": generation},
            "status": status}


@pytest.mark.parametrize(("dependency", "objects", "expected"), [
    (None, [], ("True", None)),
    (REF, [], ("False", "DependencyDoesNotExist")),
    ({**REF, "kind": "Widget"}, [], ("Unknown", "ListerDoesNotExist")),
    (REF, [_source_obj(generation=2)], ("Unknown", "GenerationNotEqual")),
    (REF, [_source_obj()], ("Unknown", "DependencyNotConfigured")),
    (REF, [_source_obj(ready={"status": "False", "reason": "NotFound"})], ("False", "NotFound")),
    (REF, [_source_obj(ready={"status": "Unknown", "reason": "Pending"})], ("Unknown", "Pending")),
    (REF, [_source_obj(ready={"status": "True"})], ("True", None)),
])
def test_dependency_ready_follows_the_source(dependency: dict[str, Any] | None, objects: list[dict[str, Any]],
                                             expected: tuple[str, str | None]) -> None:
    condition = dependency_condition(_trigger(dependency), Snapshot.of(objects))
    assert (condition["status"], condition.get("reason")) == expected
