"""The workload controllers' pure builders: what a container runs, its env, Pod phases, and what a
Deployment, Job and CronJob make at a given moment."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from control.api.admission import AdmissionSettings, admit
from control.reconcilers.resources import workloads as build
from control.reconcilers.snapshot import Snapshot
from nerve import heartbeats

NOW = datetime(2026, 1, 1, 12, 0, 30, tzinfo=UTC)


def _admitted(manifest: dict[str, Any], uid: str = "u1") -> dict[str, Any]:
    obj = admit(manifest, None, AdmissionSettings()).obj
    obj["metadata"].update(uid=uid, generation=1, creationTimestamp="2026-01-01T12:00:00Z")
    return obj


def _container(**fields: Any) -> dict[str, Any]:
    return {"name": "c", "image": "nginx", **fields}


@pytest.mark.parametrize(("container", "expected"), [
    (_container(image="gcr.io/knative-releases/knative.dev/eventing-contrib/cmd/event_display@sha256:49dac8ea"),
     build.Program(builtin="event_display", serves=True)),
    (_container(image="gcr.io/knative-releases/knative.dev/eventing/cmd/event_display:v1.14"),
     build.Program(builtin="event_display", serves=True)),
    (_container(image="docker.io/coldtea214/heartbeats:1.0", args=["--period=1"]),
     build.Program(args=("--period=1",), builtin="heartbeats")),
    (_container(image="gcr.io/knative-releases/knative.dev/eventing/cmd/heartbeats"),
     build.Program(builtin="heartbeats")),
    (_container(image="radial/busyboxplus:curl", args=["ls", "-l"]), build.Program(command=("ls",), args=("-l",))),
    (_container(image="anything", command=["sh", "-c"], args=["echo hi"]),
     build.Program(command=("sh", "-c"), args=("echo hi",))),
    (_container(image="nginx:1.27"), None),
    (_container(image="busybox"), None),  # no args: its shell would read a terminal it has not got
])
def test_what_a_container_runs(container: dict[str, Any], expected: build.Program | None) -> None:
    assert build.program(container) == expected


def _pod(**spec: Any) -> dict[str, Any]:
    return _admitted({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "ns1",
                                                                       "labels": {"app": "a"}},
                      "spec": {"containers": [_container(command=["run"])], **spec}}, "pod-uid")


def test_env_resolves_field_refs_and_injected_env_wins() -> None:
    pod = _pod()
    container = _container(command=["run"], env=[
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
        {"name": "K_SINK", "value": "http://old"}])
    env = dict(build.container_env(pod, container, 41000, {"K_SINK": "http://new"}))
    assert env["POD_NAME"] == "p" and env["POD_NAMESPACE"] == "ns1" and env["APP"] == "a"
    assert env["PORT"] == "41000" and env["K_SINK"] == "http://new"


def test_pod_status_without_a_runner_or_a_runnable_image_says_why() -> None:
    pod = _pod()
    status = build.pod_status(pod, 0, local=False, now="t")
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False" and ready["reason"] == "NoLocalRunner"
    assert status["phase"] == "Pending"
    pod["spec"]["containers"] = [_container(image="nginx")]
    status = build.pod_status(pod, 0, local=True, now="t")
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "ImageNotRunnable"
    assert "embedded mode runs commands; no container runtime" in ready["message"]
    assert build.pod_workloads(pod, 0, Snapshot()) == []


@pytest.mark.parametrize(("policy", "codes", "phase"), [
    ("Never", [0], "Succeeded"), ("Never", [1], "Failed"), ("OnFailure", [0], "Succeeded"),
    ("OnFailure", [1], "Running"), ("Always", [0], "Running"),
])
def test_pod_phase_follows_the_restart_policy(policy: str, codes: list[int], phase: str) -> None:
    statuses = [{"name": "c", "state": {"terminated": {"exitCode": code}}} for code in codes]
    assert build.pod_phase(policy, statuses) == phase


def _deployment(image: str = "busybox") -> dict[str, Any]:
    return _admitted({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": "ns1"},
                      "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "d"}},
                               "template": {"metadata": {"labels": {"app": "d"}},
                                            "spec": {"containers": [{"name": "c", "image": image,
                                                                     "args": ["sleep", "9"]}]}}}})


def test_a_deployment_keeps_its_replicas_and_replaces_pods_of_an_old_template(monkeypatch: pytest.MonkeyPatch) -> None:
    dep = _deployment()
    plan = build.deployment_plan(dep, [], Snapshot())
    names = [p["metadata"]["name"] for p in plan.wanted]
    assert len(set(names)) == 2 and all(n.startswith("d-") and len(n.split("-")) == 3 for n in names)
    assert plan.wanted[0]["metadata"]["labels"]["app"] == "d"
    assert build.deployment_plan(dep, [], Snapshot()).wanted == plan.wanted  # names are stable
    old = [{**copy.deepcopy(p), "metadata": {**p["metadata"], "uid": f"x{i}"}} for i, p in enumerate(plan.wanted)]
    # A binding's env is part of the template: its pods are new ones.
    monkeypatch.setattr(build, "injected_env", lambda *a: {"K_SINK": "http://sink"})
    changed = build.deployment_plan(dep, old, Snapshot())
    assert {p["metadata"]["name"] for p in changed.wanted}.isdisjoint(names)
    assert [p["metadata"]["name"] for p in changed.delete] == names
    env = changed.wanted[0]["spec"]["containers"][0]["env"]
    assert {"name": "K_SINK", "value": "http://sink"} in env
    assert changed.status["updatedReplicas"] == 0 and changed.status["replicas"] == 2


def _job(backoff_limit: int = 1) -> dict[str, Any]:
    return _admitted({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j", "namespace": "ns1"},
                      "spec": {"backoffLimit": backoff_limit, "template": {"spec": {"containers": [
                          {"name": "c", "image": "x", "command": ["false"]}]}}}}, "job-uid")


def _finished(pod: dict[str, Any], phase: str, at: datetime) -> dict[str, Any]:
    pod = copy.deepcopy(pod)
    pod["metadata"]["uid"] = pod["metadata"]["name"]
    pod["status"] = {"phase": phase, "containerStatuses": [
        {"name": "c", "state": {"terminated": {"exitCode": 0 if phase == "Succeeded" else 1,
                                               "finishedAt": at.strftime("%Y-%m-%dT%H:%M:%SZ")}}}]}
    return pod


def test_a_job_retries_a_failed_pod_after_back_off_then_fails() -> None:
    job = _job(backoff_limit=1)
    first = build.job_plan(job, [], Snapshot(), NOW)
    [pod] = first.wanted
    assert pod["metadata"]["labels"]["job-name"] == "j" and pod["spec"]["restartPolicy"] == "Never"
    failed = _finished(pod, "Failed", NOW)
    waiting = build.job_plan(job, [failed], Snapshot(), NOW + timedelta(seconds=5))
    assert waiting.wanted == [] and waiting.wake_at == NOW + timedelta(seconds=10)
    retry = build.job_plan(job, [failed], Snapshot(), NOW + timedelta(seconds=10))
    [second] = retry.wanted
    assert second["metadata"]["name"] != pod["metadata"]["name"]
    over = build.job_plan(job, [failed, _finished(second, "Failed", NOW)], Snapshot(), NOW + timedelta(minutes=1))
    assert over.wanted == []
    assert over.status["conditions"][0]["reason"] == "BackoffLimitExceeded" and over.status["failed"] == 2
    done = build.job_plan(job, [_finished(pod, "Succeeded", NOW)], Snapshot(), NOW)
    assert build.job_finished({"status": done.status}) == "Complete" and done.status["succeeded"] == 1


def _cronjob(**spec: Any) -> dict[str, Any]:
    return _admitted({"apiVersion": "batch/v1beta1", "kind": "CronJob",
                      "metadata": {"name": "heartbeat-cron", "namespace": "ns1"},
                      "spec": {"schedule": "* * * * *", "jobTemplate": {
                          "metadata": {"labels": {"app": "heartbeat-cron"}},
                          "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [
                              {"name": "c", "image": "x", "command": ["true"]}]}}}}, **spec}}, "cj-uid")


def test_a_cronjob_makes_a_job_per_due_tick_named_by_its_minute() -> None:
    cj = _cronjob()
    assert build.cronjob_plan(cj, [], NOW).wanted == []  # created 12:00:00, no tick since
    plan = build.cronjob_plan(cj, [], NOW + timedelta(minutes=2))
    [job] = plan.wanted
    tick = datetime(2026, 1, 1, 12, 2, tzinfo=UTC)
    assert job["metadata"]["name"] == f"heartbeat-cron-{int(tick.timestamp()) // 60}"
    assert job["metadata"]["labels"] == {"app": "heartbeat-cron"}
    assert plan.status["lastScheduleTime"] == "2026-01-01T12:02:00Z"
    assert plan.wake_at == datetime(2026, 1, 1, 12, 3, tzinfo=UTC)
    cj["status"] = plan.status
    assert build.cronjob_plan(cj, [], NOW + timedelta(minutes=2, seconds=20)).wanted == []
    assert build.cronjob_plan(_cronjob(suspend=True), [], NOW + timedelta(minutes=2)).wanted == []


def test_a_seconds_schedule_names_jobs_by_the_second_and_forbid_skips_while_one_runs() -> None:
    cj = _cronjob(schedule="*/2 * * * * *", concurrencyPolicy="Forbid")
    [job] = build.cronjob_plan(cj, [], NOW).wanted
    assert job["metadata"]["name"] == f"heartbeat-cron-{int(NOW.timestamp())}"
    running = {**job, "metadata": {**job["metadata"], "uid": "j1"}}
    assert build.cronjob_plan(cj, [running], NOW).wanted == [running]


def test_finished_jobs_beyond_the_history_limits_are_deleted() -> None:
    cj = _cronjob(successfulJobsHistoryLimit=1, suspend=True)
    done = [{"metadata": {"name": f"j{i}", "uid": f"j{i}", "creationTimestamp": f"2026-01-01T12:0{i}:00Z"},
             "status": {"conditions": [{"type": "Complete", "status": "True"}], "completionTime": "t"}}
            for i in range(3)]
    plan = build.cronjob_plan(cj, done, NOW)
    assert [j["metadata"]["name"] for j in plan.delete] == ["j0", "j1"]


def test_heartbeats_needs_a_sink(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("K_SINK", raising=False)
    monkeypatch.setenv("POD_NAME", "p")
    monkeypatch.setenv("POD_NAMESPACE", "ns1")
    assert heartbeats.main(["--period=1"]) == 1
    assert "required key K_SINK missing value" in capsys.readouterr().err
    assert heartbeats.parse_period("1") == 1.0 and heartbeats.parse_period("1m30s") == 90.0
    assert heartbeats.parse_period("500ms") == 0.5
    with pytest.raises(ValueError, match="Invalid period"):
        heartbeats.parse_period("soon")


def _service(**meta: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc", "namespace": "ns1", **meta},
            "spec": {"selector": {"app": "a"}, "ports": [{"port": 80, "targetPort": 8080}]}}


def test_a_service_ref_resolves_annotation_then_local_pod_then_template_else_not_at_all() -> None:
    from control.resolver import Resolver, Unresolvable

    ref = {"ref": {"apiVersion": "v1", "kind": "Service", "name": "svc"}}
    pod = _pod()
    pod["status"] = {"phase": "Running", "port": 41234}
    assert Resolver(Snapshot.of([_service(), pod]), "").resolve(ref, "ns1") == "http://127.0.0.1:41234"
    annotated = _service(annotations={"nerve.dev/url": "http://elsewhere/"})
    assert Resolver(Snapshot.of([annotated, pod]), "").resolve(ref, "ns1") == "http://elsewhere/"
    assert Resolver(Snapshot.of([_service()]), "http://{name}.{namespace}.svc").resolve(ref, "ns1") == \
        "http://svc.ns1.svc"
    finished = {**pod, "status": {"phase": "Succeeded", "port": 41234}}
    with pytest.raises(Unresolvable, match="selects no running local workload"):
        Resolver(Snapshot.of([_service(), finished]), "").resolve(ref, "ns1")
    with pytest.raises(Unresolvable, match="Service ns1/svc does not exist"):
        Resolver(Snapshot(), "").resolve(ref, "ns1")
