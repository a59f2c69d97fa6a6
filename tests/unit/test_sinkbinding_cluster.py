"""The pure part of SinkBinding on a cluster (control/reconcilers/resources/sinkbinding.py): Knative's Do
and Undo on a pod spec, the selection modes, and what a Deployment or CronJob is written back as."""

from __future__ import annotations

from typing import Any

import pytest

from control.reconcilers.resources.sinkbinding import (
    BOUND_ANNOTATION,
    bound_object,
    bound_pod_spec,
    cluster_patches,
    selected,
)
from control.reconcilers.snapshot import Snapshot

SINK = {"K_SINK": "http://sink", "K_CE_OVERRIDES": '{"extensions":{"a":"b"}}'}


def test_do_replaces_the_bound_variables_in_every_container_and_init_container() -> None:
    spec = {"initContainers": [{"name": "i"}],
            "containers": [{"name": "c", "env": [{"name": "K_CA_CERTS", "value": "x"}, {"name": "A", "value": "1"},
                                                 {"name": "K_SINK", "value": "old"}]}]}
    bound = bound_pod_spec(spec, SINK)
    assert bound["initContainers"][0]["env"] == [{"name": "K_SINK", "value": "http://sink"},
                                                 {"name": "K_CE_OVERRIDES", "value": SINK["K_CE_OVERRIDES"]}]
    assert [v["name"] for v in bound["containers"][0]["env"]] == ["A", "K_SINK", "K_CE_OVERRIDES"]
    undone = bound_pod_spec(bound, {})
    assert undone == {"initContainers": [{"name": "i"}],
                      "containers": [{"name": "c", "env": [{"name": "A", "value": "1"}]}]}


def test_an_empty_value_is_written_as_the_api_server_stores_it() -> None:
    bound = bound_pod_spec({"containers": [{"name": "c"}]}, {"K_SINK": "http://s", "K_CE_OVERRIDES": ""})
    assert bound["containers"][0]["env"][1] == {"name": "K_CE_OVERRIDES"}


@pytest.mark.parametrize(("labels", "ns_labels", "mode", "expected"), [
    ({}, {}, "exclusion", True),
    ({"bindings.knative.dev/exclude": "true"}, {}, "exclusion", False),
    ({}, {"bindings.knative.dev/exclude": "true"}, "exclusion", False),
    ({"bindings.knative.dev/exclude": "false"}, {}, "exclusion", True),
    ({}, {}, "inclusion", False),
    ({"bindings.knative.dev/include": "true"}, {}, "inclusion", True),
    ({"bindings.knative.dev/include": "true"}, {"bindings.knative.dev/include": "true"}, "inclusion", True),
    ({"bindings.knative.dev/include": "true"}, {"bindings.knative.dev/exclude": "true"}, "inclusion", False),
    ({"bindings.knative.dev/include": "true"}, {"bindings.knative.dev/include": "false"}, "inclusion", False),
])
def test_selection_modes(labels: dict[str, str], ns_labels: dict[str, str], mode: str, expected: bool) -> None:
    assert selected(labels, ns_labels, mode) is expected


def _binding(subject: dict[str, Any], created: str = "2026-01-01T00:00:00Z", name: str = "b") -> dict[str, Any]:
    return {"kind": "SinkBinding", "metadata": {"name": name, "namespace": "ns", "creationTimestamp": created},
            "spec": {"subject": subject, "sink": {"uri": "http://sink"}}, "status": {"sinkUri": "http://sink"}}


def _cronjob(labels: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "cj", "namespace": "ns"},
            "spec": {"jobTemplate": {"metadata": {"labels": labels},
                                     "spec": {"template": {"spec": {"containers": [{"name": "c"}]}}}}}}


def test_a_job_subject_with_a_selector_binds_the_cronjob_whose_jobs_will_match() -> None:
    cron = _cronjob({"app": "heartbeat-cron"})
    snap = Snapshot.of([cron, _binding({"apiVersion": "batch/v1", "kind": "Job",
                                        "selector": {"matchLabels": {"app": "heartbeat-cron"}}})])
    [(stored, patched)] = cluster_patches(snap)
    assert stored is cron
    assert patched["metadata"]["annotations"] == {BOUND_ANNOTATION: "b"}
    assert patched["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["env"] == [
        {"name": "K_SINK", "value": "http://sink"}, {"name": "K_CE_OVERRIDES"}]
    # A named Job cannot be one of a CronJob's Jobs (they are named <cronjob>-<minute>).
    named = Snapshot.of([cron, _binding({"apiVersion": "batch/v1", "kind": "Job", "name": "cj"})])
    assert cluster_patches(named) == []


def test_the_oldest_binding_wins_and_an_unannotated_object_is_never_unbound() -> None:
    cron = _cronjob({"app": "x"})
    subject = {"apiVersion": "batch/v1", "kind": "CronJob", "name": "cj"}
    newer, older = _binding(subject, "2026-02-01T00:00:00Z", "newer"), _binding(subject, name="older")
    older["status"]["sinkUri"] = "http://older"
    bound = bound_object(cron, Snapshot.of([cron, newer, older]))
    assert bound["metadata"]["annotations"][BOUND_ANNOTATION] == "older"
    # No binding and no annotation: a K_SINK the user wrote is theirs.
    own = _cronjob({})
    own["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "K_SINK", "value": "u"}]
    assert bound_object(own, Snapshot.of([own])) == own
    # Annotated, binding gone: unbound.
    assert bound_object(bound, Snapshot.of([bound]))["spec"] == cron["spec"]


def test_ca_certs_come_between_the_sink_and_the_overrides_as_knative_appends_them() -> None:
    env = {"K_SINK": "https://sink", "K_CE_OVERRIDES": "", "K_CA_CERTS": "-----BEGIN CERTIFICATE-----"}
    bound = bound_pod_spec({"containers": [{"name": "c"}]}, env)
    assert [v["name"] for v in bound["containers"][0]["env"]] == ["K_SINK", "K_CA_CERTS", "K_CE_OVERRIDES"]
