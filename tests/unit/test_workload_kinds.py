"""Admission of the workload kinds (Deployment, Job, CronJob, Pod, Event, Service), as the seeds write them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from control.api import kinds
from control.api.admission import AdmissionSettings, Refused, admit
from control.api.workloads_cron import croniter_form, latest_due, next_after, schedule_problem
from core.contract import Contract, Reference, Workload

SETTINGS = AdmissionSettings()
EXAMPLE = Path(__file__).parents[2] / "examples" / "event-display"


def _errors(manifest: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(Refused) as info:
        admit(manifest, None, SETTINGS)
    return {e.path: e.reason for e in info.value.errors}


def _pod(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "busybox", "command": ["true"]}], **spec}}


def test_the_seed_documents_are_admitted_as_written() -> None:
    docs = [d for f in sorted(EXAMPLE.glob("*.yaml")) for d in yaml.safe_load_all(f.read_text())]
    admitted = [admit(d, None, SETTINGS) for d in docs]
    assert [a.kind.kind for a in admitted] == ["Deployment", "Service", "CronJob"]
    assert admitted[2].obj["apiVersion"] == "batch/v1"  # v1beta1 stored as v1
    assert admitted[0].obj["spec"]["template"]["spec"]["restartPolicy"] == "Always"
    assert admitted[2].obj["spec"]["jobTemplate"]["spec"]["backoffLimit"] == 6


def test_kubectl_spellings() -> None:
    for spelling, kind in (("deploy", "Deployment"), ("po", "Pod"), ("cj", "CronJob"), ("jobs", "Job"),
                           ("events", "Event"), ("svc", "Service")):
        found = kinds.lookup(spelling)
        assert found is not None and found.kind == kind
    headers = {k: [c.header for c in kinds.resolve(k).columns] for k in ("deploy", "po", "jobs", "cj")}
    assert headers["deploy"] == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert headers["po"] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert headers["jobs"][0] == "NAME" and "COMPLETIONS" in headers["jobs"] and "DURATION" in headers["jobs"]
    assert headers["cj"] == ["NAME", "SCHEDULE", "SUSPEND", "ACTIVE", "LAST SCHEDULE", "AGE"]


def test_containers_need_a_name_and_an_image() -> None:
    pod = _pod(containers=[{"image": "x"}, {"name": "b"}], restartPolicy="Sometimes")
    errors = _errors(pod)
    assert "spec.containers[0].name" in errors
    assert errors["spec.containers[1].image"] == "required"
    assert "Sometimes" in errors["spec.restartPolicy"]
    assert "spec.containers" in _errors(_pod(containers=[]))


def test_env_needs_strings_and_known_field_refs() -> None:
    pod = _pod(containers=[{"name": "c", "image": "x", "env": [
        {"name": "A", "value": 1},
        {"name": "B", "valueFrom": {"fieldRef": {"fieldPath": "metadata.nope"}}},
        {"name": "C", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
    ]}])
    errors = _errors(pod)
    assert "string" in errors["spec.containers[0].env[0].value"]
    assert "metadata.nope" in errors["spec.containers[0].env[1].valueFrom.fieldRef.fieldPath"]
    assert "spec.containers[0].env[2].valueFrom.fieldRef.fieldPath" not in errors


def test_a_deployment_selector_must_match_its_template() -> None:
    dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
           "spec": {"selector": {"matchLabels": {"app": "a"}},
                    "template": {"metadata": {"labels": {"app": "b"}},
                                 "spec": {"containers": [{"name": "c", "image": "x"}]}}}}
    assert "spec.template.metadata.labels" in _errors(dep)
    dep["spec"]["template"]["metadata"]["labels"] = {"app": "a"}
    dep["spec"]["replicas"] = -1
    assert "spec.replicas" in _errors(dep)


def test_a_job_restarts_never_or_on_failure_only() -> None:
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
           "spec": {"template": {"spec": {"restartPolicy": "Always", "containers": [{"name": "c", "image": "x"}]}}}}
    assert "Always" in _errors(job)["spec.template.spec.restartPolicy"]


@pytest.mark.parametrize(("schedule", "ok"), [
    ("* * * * *", True), ("*/5 1 * * 1-5", True), ("@hourly", True), ("*/2 * * * * *", True),
    ("10 0/1 * * * ?", True), ("@every 1m", False), ("* * * *", False), ("61 * * * *", False), ("", False),
])
def test_cronjob_schedules(schedule: str, ok: bool) -> None:
    assert (schedule_problem(schedule) is None) is ok


def test_a_bad_cronjob_names_its_fields() -> None:
    cj = {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "c"},
          "spec": {"schedule": "every minute", "timeZone": "Mars/Olympus", "concurrencyPolicy": "Sometimes",
                   "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "c"}]}}}}}}
    errors = _errors(cj)
    assert {"spec.schedule", "spec.timeZone", "spec.concurrencyPolicy",
            "spec.jobTemplate.spec.template.spec.containers[0].image"} <= set(errors)


def test_a_leading_seconds_field_is_moved_last_for_croniter() -> None:
    from datetime import UTC, datetime
    assert croniter_form("*/2 * * * * *") == "* * * * * */2"
    start = datetime(2026, 1, 1, 12, 0, 1, tzinfo=UTC)
    assert next_after("*/2 * * * * *", start) == datetime(2026, 1, 1, 12, 0, 2, tzinfo=UTC)
    assert next_after("* * * * *", start) == datetime(2026, 1, 1, 12, 1, tzinfo=UTC)
    # one run made up for many missed, the latest
    assert latest_due("* * * * *", start, datetime(2026, 1, 1, 12, 5, 30, tzinfo=UTC)) == \
        datetime(2026, 1, 1, 12, 5, tzinfo=UTC)
    assert latest_due("* * * * *", start, datetime(2026, 1, 1, 12, 0, 59, tzinfo=UTC)) is None
    assert latest_due("* * * * *", start, datetime(2026, 1, 1, 12, 1, tzinfo=UTC)) == \
        datetime(2026, 1, 1, 12, 1, tzinfo=UTC)


def test_service_ports_are_checked() -> None:
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
           "spec": {"selector": {"app": 1}, "ports": [{"port": 0, "targetPort": True}]}}
    assert {"spec.selector", "spec.ports[0].port", "spec.ports[0].targetPort"} <= set(_errors(svc))


def test_an_event_names_its_object() -> None:
    ev = {"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e"}, "type": "Odd"}
    assert {"involvedObject", "type"} <= set(_errors(ev))


def test_workloads_survive_the_contract_file() -> None:
    w = Workload("u/c", Reference("u", "ns", "p", "Pod"), "c", builtin="heartbeats", args=("--period=1",),
                 env=(("K_SINK", "http://x"),), port=40000, restart_policy="Never", serves=False)
    contract = Contract(3, (), (), (w,))
    assert Contract.loads(contract.dumps()) == contract
