"""SinkBinding: the manifest's rules, its status, and which workloads get which K_SINK / K_CE_OVERRIDES."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from control.api.admission import AdmissionSettings, admit
from control.reconcilers.resources import sinkbinding as build
from control.reconcilers.snapshot import Snapshot
from control.resolver import Resolver
from core.errors import InvalidResource
from core.selector import LabelSelector

# The seed's binding (../shared/seeds/003_c7549bdb00436181.txt "sink binding"), as written.
SEED = {
    "apiVersion": "sources.knative.dev/v1beta1", "kind": "SinkBinding",
    "metadata": {"name": "test-sink-binding"},
    "spec": {
        "subject": {"apiVersion": "batch/v1", "kind": "Job", "selector": {"matchLabels": {"app": "heartbeat-cron"}}},
        "sink": {"ref": {"apiVersion": "v1", "kind": "Service", "name": "event-display"}},
        "ceOverrides": {"extensions": {"hello": "world"}},
    },
}


def _admitted(manifest: dict[str, Any], uid: str = "u1", created: str = "2026-01-01T00:00:00Z") -> dict[str, Any]:
    obj = admit(manifest, None, AdmissionSettings()).obj
    obj["metadata"].update(uid=uid, generation=1, creationTimestamp=created)
    return obj


def _errors(spec: dict[str, Any], namespace: str = "default") -> list[tuple[str, str]]:
    manifest = {"apiVersion": "sources.knative.dev/v1", "kind": "SinkBinding",
                "metadata": {"name": "b", "namespace": namespace}, "spec": spec}
    with pytest.raises(InvalidResource) as caught:
        admit(manifest, None, AdmissionSettings())
    return [(e.path, e.reason) for e in caught.value.errors]


def test_the_seed_binding_is_admitted_as_v1() -> None:
    admitted = admit(SEED, None, AdmissionSettings())
    assert admitted.obj["apiVersion"] == "sources.knative.dev/v1"
    assert admitted.warnings == []
    assert admitted.obj["spec"]["sink"]["ref"]["namespace"] == "default"


SINK = {"uri": "http://sink.example/"}


@pytest.mark.parametrize(("spec", "expected"), [
    ({"sink": SINK}, [("spec.subject", "required: the apiVersion, kind and name or selector of the workloads "
                                       "to bind")]),
    ({"sink": SINK, "subject": {"kind": "Job", "name": "j"}}, [("spec.subject.apiVersion", "required")]),
    ({"sink": SINK, "subject": {"apiVersion": "batch/v1", "name": "j"}}, [("spec.subject.kind", "required")]),
    ({"sink": SINK, "subject": {"apiVersion": "batch/v1", "kind": "Job"}},
     [("spec.subject", "expected exactly one, got neither: name, selector")]),
    ({"sink": SINK, "subject": {"apiVersion": "batch/v1", "kind": "Job", "name": "j", "selector": {}}},
     [("spec.subject", "expected exactly one, got both: name, selector")]),
    ({"sink": SINK, "subject": {"apiVersion": "batch/v1", "kind": "Job", "name": "j", "namespace": "other"}},
     [("spec.subject.namespace", "'other' must be the SinkBinding's namespace 'default' (or unset)")]),
    ({"sink": SINK, "subject": {"apiVersion": "batch/v1", "kind": "Job",
                                "selector": {"matchExpressions": [{"key": "app", "operator": "Near"}]}}},
     [("spec.subject.selector.matchExpressions[0].operator",
       "'Near' is not a valid selector operator; use In, NotIn, Exists, DoesNotExist")]),
    ({"sink": SINK, "subject": {"apiVersion": "batch/v1", "kind": "Job",
                                "selector": {"matchExpressions": [{"key": "app", "operator": "In"}]}}},
     [("spec.subject.selector.matchExpressions[0].values", "must be specified when `operator` is In")]),
    ({"subject": {"apiVersion": "batch/v1", "kind": "Job", "name": "j"}}, [("spec.sink", "required")]),
])
def test_a_bad_binding_is_refused_naming_the_field(spec: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    assert _errors(spec) == expected


def test_a_subject_in_the_binding_s_own_namespace_is_accepted() -> None:
    manifest = copy.deepcopy(SEED)
    manifest["metadata"]["namespace"] = "ns1"
    manifest["spec"]["subject"]["namespace"] = "ns1"
    assert admit(manifest, None, AdmissionSettings()).obj["spec"]["subject"]["namespace"] == "ns1"


def matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    return LabelSelector.from_json(selector).matches(labels)


def test_label_selectors_match_as_kubernetes_does() -> None:
    labels = {"app": "heartbeat-cron", "tier": "batch"}
    assert matches({}, labels)
    assert matches({"matchLabels": {"app": "heartbeat-cron"}}, labels)
    assert not matches({"matchLabels": {"app": "other"}}, labels)
    assert matches({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["batch", "web"]}]}, labels)
    assert not matches({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["batch"]}]}, labels)
    assert matches({"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]}, labels)
    assert matches({"matchExpressions": [{"key": "app", "operator": "Exists"}]}, labels)
    assert not matches({"matchExpressions": [{"key": "app", "operator": "DoesNotExist"}]}, labels)
    assert not matches({"matchLabels": {"app": "heartbeat-cron"},
                        "matchExpressions": [{"key": "zone", "operator": "Exists"}]}, labels)


def _resolved(binding: dict[str, Any], snapshot: Snapshot) -> dict[str, Any]:
    binding["status"] = build.status(binding, snapshot, Resolver(snapshot, "http://{name}.{namespace}.svc.cluster.local"))
    return binding


def test_the_seed_binding_binds_the_cronjob_s_jobs_by_their_labels() -> None:
    binding = _admitted(SEED)
    snapshot = Snapshot.of([binding])
    _resolved(binding, snapshot)
    assert binding["status"]["sinkUri"] == "http://event-display.default.svc.cluster.local"
    conditions = {c["type"]: c["status"] for c in binding["status"]["conditions"]}
    assert conditions == {"Ready": "True", "SinkProvided": "True", "SinkBindingAvailable": "True"}
    job_labels = {"app": "heartbeat-cron"}  # the CronJob's spec.jobTemplate.metadata.labels
    assert build.injected_env("Job", "default", "heartbeat-cron-1600063020", job_labels, snapshot) == {
        "K_SINK": "http://event-display.default.svc.cluster.local",
        "K_CE_OVERRIDES": '{"extensions":{"hello":"world"}}',
    }
    # Another kind, another namespace, other labels: not this binding's subjects.
    assert build.injected_env("Deployment", "default", "heartbeat-cron", job_labels, snapshot) == {}
    assert build.injected_env("Job", "ns2", "heartbeat-cron-1", job_labels, snapshot) == {}
    assert build.injected_env("Job", "default", "other", {"app": "other"}, snapshot) == {}


def test_exclusion_labels_on_the_workload_or_its_namespace_opt_out() -> None:
    binding = _admitted(SEED)
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default", "labels": {}}}
    snapshot = Snapshot.of([binding, namespace])
    _resolved(binding, snapshot)
    labels = {"app": "heartbeat-cron"}
    assert build.injected_env("Job", "default", "j", labels, snapshot)
    assert build.injected_env("Job", "default", "j", {**labels, build.EXCLUDE_LABEL: "true"}, snapshot) == {}
    namespace["metadata"]["labels"] = {build.EXCLUDE_LABEL: "true"}
    assert build.injected_env("Job", "default", "j", labels, snapshot) == {}


def test_without_ce_overrides_k_ce_overrides_is_empty_and_a_named_subject_must_exist() -> None:
    manifest = {"apiVersion": "sources.knative.dev/v1", "kind": "SinkBinding", "metadata": {"name": "b"},
                "spec": {"subject": {"apiVersion": "v1", "kind": "Pod", "name": "producer"}, "sink": SINK}}
    binding = _admitted(manifest)
    snapshot = Snapshot.of([binding])
    _resolved(binding, snapshot)
    available = next(c for c in binding["status"]["conditions"] if c["type"] == "SinkBindingAvailable")
    ready = next(c for c in binding["status"]["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "SubjectMissing")
    assert available["message"] == 'pods "producer" not found'
    # The env does not wait for the subject: a Pod of that name started later is bound.
    assert build.injected_env("Pod", "default", "producer", {}, snapshot) == {
        "K_SINK": "http://sink.example/", "K_CE_OVERRIDES": ""}
    assert build.injected_env("Pod", "default", "consumer", {}, snapshot) == {}


def test_an_unresolved_sink_injects_nothing_and_the_oldest_binding_wins() -> None:
    missing = copy.deepcopy(SEED)
    missing["metadata"]["name"] = "a-missing"
    missing["spec"]["sink"] = {"ref": {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "name": "none"}}
    younger = copy.deepcopy(SEED)
    younger["metadata"]["name"] = "younger"
    younger["spec"]["sink"] = {"uri": "http://younger.example/"}
    bindings = [_admitted(missing, "u1", "2026-01-01T00:00:00Z"), _admitted(SEED, "u2", "2026-01-02T00:00:00Z"),
                _admitted(younger, "u3", "2026-01-03T00:00:00Z")]
    snapshot = Snapshot.of(bindings)
    for binding in bindings:
        _resolved(binding, snapshot)
    ready = next(c for c in bindings[0]["status"]["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "NotFound")
    assert "sinkUri" not in bindings[0]["status"]
    env = build.injected_env("Job", "default", "j", {"app": "heartbeat-cron"}, snapshot)
    assert env["K_SINK"] == "http://event-display.default.svc.cluster.local"
    # A deleted binding injects nothing from then on ("Undo").
    bindings[1]["metadata"]["deletionTimestamp"] = "2026-01-04T00:00:00Z"
    assert build.injected_env("Job", "default", "j", {"app": "heartbeat-cron"}, snapshot)["K_SINK"] == \
        "http://younger.example/"


def test_a_subject_kind_nerve_does_not_run_is_said_in_the_status() -> None:
    manifest = copy.deepcopy(SEED)
    manifest["spec"]["subject"] = {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": "ksvc"}
    binding = _admitted(manifest)
    _resolved(binding, Snapshot.of([binding]))
    ready = next(c for c in binding["status"]["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "SubjectUnsupported")
    assert "a CronJob's Jobs" in ready["message"]


def test_a_sink_with_ca_certs_injects_k_ca_certs() -> None:
    from core.tls import new_ca
    pem = new_ca("sink CA").cert_pem.decode()
    manifest = {"apiVersion": "sources.knative.dev/v1", "kind": "SinkBinding", "metadata": {"name": "b"},
                "spec": {"subject": {"apiVersion": "v1", "kind": "Pod", "name": "producer"},
                         "sink": {"uri": "https://sink.example/", "CACerts": pem}}}
    binding = _admitted(manifest)
    snapshot = Snapshot.of([binding])
    _resolved(binding, snapshot)
    assert binding["status"]["sinkCACerts"] == pem
    assert build.injected_env("Pod", "default", "producer", {}, snapshot) == {
        "K_SINK": "https://sink.example/", "K_CE_OVERRIDES": "", "K_CA_CERTS": pem}
