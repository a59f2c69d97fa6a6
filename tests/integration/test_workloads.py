"""Local workloads in embedded mode (docs/sources.md): the seeds' Deployment + Service, Jobs, CronJobs and
Pods run as processes of the host, through the control API of a real embedded Nerve."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.support.manifests import BROKER
from tests.support.stack import Stack, event, eventually

EXAMPLE = Path(__file__).parents[2] / "examples" / "event-display" / "01-event-display.yaml"


def _cond(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in obj.get("status", {}).get("conditions", []) if c["type"] == type_), {})



async def _list(stack: Stack, kind: str, namespace: str = "default") -> list[dict[str, Any]]:
    async with stack.session.get(f"{stack.api}/api/v1/resources/{kind}?namespace={namespace}") as response:
        items: list[dict[str, Any]] = (await response.json())["items"]
        return items


async def _logs(stack: Stack, namespace: str, pod: str) -> str:
    async with stack.session.get(f"{stack.api}/api/v1/logs/{namespace}/{pod}") as response:
        assert response.status == 200, await response.text()
        return await response.text()


def _pid(pod: dict[str, Any]) -> int | None:
    for cs in pod.get("status", {}).get("containerStatuses", []):
        if "running" in cs.get("state", {}) and cs.get("containerID", "").startswith("process://"):
            return int(cs["containerID"].removeprefix("process://"))
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _deployment(name: str, command: list[str], **labels: str) -> dict[str, Any]:
    labels = labels or {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": "default"},
            "spec": {"selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": name, "image": "python", "command": command}]}}}}


async def test_the_seed_event_display_gets_a_triggers_events(stack: Stack) -> None:
    broker = {**BROKER, "metadata": {"name": "default", "namespace": "default"}}
    trigger = {"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger",
               "metadata": {"name": "to-display", "namespace": "default"},
               "spec": {"broker": "default",
                        "subscriber": {"ref": {"apiVersion": "v1", "kind": "Service", "name": "event-display"}}}}
    await stack.apply(EXAMPLE.read_text(), broker, trigger)

    async def ready() -> bool:
        dep = await stack.get("deployments", "default", "event-display")
        return dep.get("status", {}).get("readyReplicas") == 1
    await eventually(ready, timeout=20)
    [pod] = await _list(stack, "pods")
    assert pod["metadata"]["name"].startswith("event-display-")
    assert pod["metadata"]["labels"]["app"] == "event-display"
    port = pod["status"]["port"]
    t = await stack.get("triggers", "default", "to-display")
    assert t["status"]["subscriberUri"] == f"http://127.0.0.1:{port}", t["status"]
    assert _cond(t, "Ready")["status"] == "True", t["status"]

    sent = event("e1", data=b'{"message": "hello, world!"}')
    assert await stack.send("/default/default", sent) == 202

    async def printed() -> bool:
        return '"message": "hello, world!"' in await _logs(stack, "default", pod["metadata"]["name"])
    await eventually(printed, timeout=10)
    text = await _logs(stack, "default", pod["metadata"]["name"])
    assert "☁️  cloudevents.Event" in text and "  id: e1" in text and "  type: dev.nerve.test" in text
    events = await _list(stack, "events")
    reasons = {(e["reason"], e["message"]) for e in events if e["involvedObject"]["name"] == pod["metadata"]["name"]}
    assert {("Created", "Created container event-display"), ("Started", "Started container event-display")} <= reasons


async def test_a_killed_process_is_restarted_and_a_deleted_one_stopped(stack: Stack) -> None:
    await stack.apply(_deployment("sleeper", [sys.executable, "-c", "import time; print('up', flush=True); "
                                                                    "time.sleep(600)"]))

    async def running() -> dict[str, Any] | None:
        pods = await _list(stack, "pods")
        return pods[0] if pods and _pid(pods[0]) else None
    await eventually(running, timeout=20)
    pod = await running()
    assert pod is not None
    first = _pid(pod)
    assert first is not None and _alive(first)
    name = pod["metadata"]["name"]

    async def printed(times: int) -> bool:
        return (await _logs(stack, "default", name)).count("up\n") == times
    await eventually(lambda: printed(1), timeout=10)
    os.kill(first, signal.SIGKILL)

    async def restarted() -> bool:
        pods = await _list(stack, "pods")
        pid = _pid(pods[0]) if pods else None
        return pid is not None and pid != first and pods[0]["status"]["containerStatuses"][0]["restartCount"] == 1
    await eventually(restarted, timeout=20)
    pod = (await _list(stack, "pods"))[0]
    status = pod["status"]["containerStatuses"][0]
    assert status["lastState"]["terminated"]["exitCode"] == 137
    second = _pid(pod)
    assert second is not None
    events = {e["reason"] for e in await _list(stack, "events")}
    assert "BackOff" in events
    await eventually(lambda: printed(2), timeout=10)  # one log across restarts, as the seed's `kubectl logs` reads

    await stack.delete("deployments", "default", "sleeper")
    assert not _alive(second)
    assert await _list(stack, "pods") == []


async def test_a_job_runs_to_completion(stack: Stack) -> None:
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "once", "namespace": "default"},
           "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [
               {"name": "main", "image": "busybox", "command": ["sh", "-c", "echo done-$JOB_WORD"],
                "env": [{"name": "JOB_WORD", "value": "here"}]}]}}}}
    await stack.apply(job)

    async def complete() -> bool:
        j = await stack.get("jobs", "default", "once")
        return _cond(j, "Complete").get("status") == "True"
    await eventually(complete, timeout=20)
    j = await stack.get("jobs", "default", "once")
    assert j["status"]["succeeded"] == 1 and "completionTime" in j["status"]
    [pod] = await _list(stack, "pods")
    assert pod["metadata"]["labels"]["job-name"] == "once"
    assert pod["status"]["phase"] == "Succeeded"
    assert await _logs(stack, "default", pod["metadata"]["name"]) == "done-here\n"


async def test_an_image_without_a_command_is_not_runnable(stack: Stack) -> None:
    await stack.apply(yaml.safe_dump({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "nginx"},
        "spec": {"selector": {"matchLabels": {"app": "nginx"}},
                 "template": {"metadata": {"labels": {"app": "nginx"}},
                              "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27"}]}}}}))
    dep = await stack.get("deployments", "default", "nginx")
    ready = _cond(dep, "Ready")
    assert ready["status"] == "False" and ready["reason"] == "ImageNotRunnable", dep["status"]
    [pod] = await _list(stack, "pods")
    assert _cond(pod, "Ready")["reason"] == "ImageNotRunnable"
    waiting = pod["status"]["containerStatuses"][0]["state"]["waiting"]
    assert "embedded mode runs commands; no container runtime" in waiting["message"]
    async with stack.session.get(f"{stack.api}/api/v1/logs/default/{pod['metadata']['name']}") as response:
        assert response.status == 400
        assert (await response.json())["reason"].endswith("is waiting to start: ImageNotRunnable")


async def test_a_trigger_to_a_service_that_does_not_exist_is_not_ready(stack: Stack) -> None:
    trigger = {"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger",
               "metadata": {"name": "nowhere", "namespace": "ns1"},
               "spec": {"broker": "default",
                        "subscriber": {"ref": {"apiVersion": "v1", "kind": "Service", "name": "no-such"}}}}
    await stack.apply(BROKER, trigger)
    t = await stack.get("triggers", "ns1", "nowhere")
    resolved = _cond(t, "SubscriberResolved")
    assert resolved["status"] == "False" and "Service ns1/no-such does not exist" in resolved["message"]
    assert _cond(t, "Ready")["status"] == "False"


async def test_a_failing_job_gives_up_at_its_backoff_limit(stack: Stack) -> None:
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "fails", "namespace": "default"},
           "spec": {"backoffLimit": 0, "template": {"spec": {"containers": [
               {"name": "main", "image": "busybox", "command": ["sh", "-c", "echo nope >&2; exit 3"]}]}}}}
    await stack.apply(job)

    async def failed() -> bool:
        return _cond(await stack.get("jobs", "default", "fails"), "Failed").get("status") == "True"
    await eventually(failed, timeout=20)
    j = await stack.get("jobs", "default", "fails")
    assert _cond(j, "Failed")["reason"] == "BackoffLimitExceeded" and j["status"]["failed"] == 1
    [pod] = await _list(stack, "pods")
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (pod["status"]["phase"], terminated["exitCode"], terminated["reason"]) == ("Failed", 3, "Error")
    assert await _logs(stack, "default", pod["metadata"]["name"]) == "nope\n"  # stderr too


async def test_following_a_pods_log_streams_until_it_ends(stack: Stack) -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "talker", "namespace": "default"},
           "spec": {"restartPolicy": "Never", "containers": [
               {"name": "main", "image": "busybox",
                "command": ["sh", "-c", "echo one; sleep 1; echo two; echo three"]}]}}
    await stack.apply(pod)
    async with stack.session.get(f"{stack.api}/api/v1/logs/default/talker?follow=true") as response:
        assert response.status == 200
        text = await asyncio.wait_for(response.text(), timeout=20)
    assert text == "one\ntwo\nthree\n"
    async with stack.session.get(f"{stack.api}/api/v1/logs/default/talker?tailLines=1") as response:
        assert await response.text() == "three\n"
    async with stack.session.get(f"{stack.api}/api/v1/logs/default/talker?container=other") as response:
        assert response.status == 404 and "main" in (await response.json())["reason"]
    async with stack.session.get(f"{stack.api}/api/v1/logs/default/nobody") as response:
        assert response.status == 404


async def test_pods_run_again_on_the_same_port_after_a_restart(tmp_path: Path) -> None:
    from tests.support.stack import running_stack

    script = "import os, time; print('port', os.environ['PORT'], flush=True); time.sleep(600)"
    ports = []
    pids = []
    for _ in range(2):
        async with running_stack(tmp_path) as stack:
            if not ports:
                await stack.apply(_deployment("keeper", [sys.executable, "-c", script]))

            async def up() -> bool:
                pods = await _list(stack, "pods")
                return bool(pods) and _pid(pods[0]) is not None and \
                    (await _logs(stack, "default", pods[0]["metadata"]["name"])).count("port") == len(ports) + 1
            await eventually(up, timeout=20)
            [pod] = await _list(stack, "pods")
            ports.append(pod["status"]["port"])
            pids.append(_pid(pod))
        assert pids[-1] is not None and not _alive(pids[-1])  # stopping nerve up stops its processes
    assert ports[0] == ports[1] and pids[0] != pids[1]


async def test_without_a_local_runner_pods_say_so_and_nothing_runs(tmp_path: Path) -> None:
    """What control does under separate services (`nerve control` + `nerve sources`): no process, a reason."""
    from control.api import kinds
    from control.api.admission import AdmissionSettings, admit
    from control.reconcilers.snapshot import Snapshot
    from control.reconcilers.workloads import WorkloadReconciler
    from control.reconcilers.writes import Writes
    from control.store.sqlite import SqliteStore

    store = SqliteStore(tmp_path / "nerve.db")
    try:
        for manifest in (_deployment("d", ["true"]), yaml.safe_load(
                (Path(__file__).parents[2] / "examples" / "sink-binding" / "01-cronjob.yaml").read_text())):
            manifest["metadata"]["namespace"] = "default"
            await store.create(admit(manifest, None, AdmissionSettings()).obj)
        reconciler = WorkloadReconciler(local=False)
        for _ in range(3):
            snapshot = await Snapshot.load(store, [k.kind for k in kinds.KINDS])
            workloads = await reconciler.reconcile_all(snapshot, Writes(store))
            assert workloads == []
        [pod] = (await store.list("Pod")).items
        assert _cond(pod, "Ready")["reason"] == "NoLocalRunner"
        dep = await store.get("Deployment", "default", "d")
        assert dep is not None and _cond(dep, "Ready")["reason"] == "NoLocalRunner"
        assert (await store.list("Job")).items == [] and reconciler.wake_at is None
    finally:
        await store.close()
