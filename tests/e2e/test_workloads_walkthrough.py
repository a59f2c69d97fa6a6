"""Seed 003's consumer and producers, run as a user types them: `nerve up`, the CLI and curl.

The event-display Deployment + Service of examples/event-display/ apply as written and run Nerve's event
printer as a local process; a Trigger with `subscriber.ref: Service event-display` reaches it, and
`nerve logs -l app=event-display` shows what it printed. The heartbeats image runs Nerve's heartbeats
(K_SINK given in its env here: SinkBinding is another slice), a CronJob with a seconds field makes Jobs
whose ONE_SHOT heartbeats arrive, the seed's `kubectl run busybox --restart=Never -- ls` Pod runs `ls`
and leaves kubelet's Created/Started Events, and a deleted Deployment's process is gone.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.test_walkthrough import NERVE, REPO, Processes, run, wait_http
from tests.support.launchers import free_port

pytestmark = pytest.mark.e2e

SETUP = """
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {name: default}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {name: to-display}
spec:
  broker: default
  subscriber:
    ref: {apiVersion: v1, kind: Service, name: event-display}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {name: to-nowhere}
spec:
  broker: default
  subscriber:
    ref: {apiVersion: v1, kind: Service, name: no-such-display}
"""
# `kubectl run busybox --image=radial/busyboxplus:curl --restart=Never -- ls`
BUSYBOX = """
apiVersion: v1
kind: Pod
metadata: {name: busybox, labels: {run: busybox}}
spec:
  restartPolicy: Never
  containers:
  - {name: busybox, image: "radial/busyboxplus:curl", args: [ls]}
"""


def heartbeats(sink: str) -> str:
    return f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: heartbeats}}
spec:
  selector: {{matchLabels: {{app: heartbeats}}}}
  template:
    metadata: {{labels: {{app: heartbeats}}}}
    spec:
      containers:
      - name: heartbeats
        image: docker.io/coldtea214/heartbeats:1.0
        args: [--period=1]
        env:
        - {{name: POD_NAME, value: mypod}}
        - {{name: POD_NAMESPACE, value: event-test}}
        - {{name: K_SINK, value: "{sink}"}}
        - {{name: K_CE_OVERRIDES, value: '{{"extensions":{{"hello":"world"}}}}'}}
"""


def cronjob(sink: str) -> str:
    doc = yaml.safe_load((REPO / "examples" / "sink-binding" / "01-cronjob.yaml").read_text())
    doc["spec"]["schedule"] = "*/2 * * * * *"  # every 2 seconds: Nerve's seconds field, so the test is quick
    doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["env"].append(
        {"name": "K_SINK", "value": sink})
    return yaml.safe_dump(doc)


def wait_for(check: object, what: str, timeout: float = 30.0) -> object:
    deadline = time.monotonic() + timeout
    while True:
        result = check()  # type: ignore[operator]
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {timeout}s")
        time.sleep(0.2)


def table(output: str) -> dict[str, list[str]]:
    lines = output.strip().splitlines()
    header = re.split(r"\s{2,}", lines[0])
    rows = {}
    for line in lines[1:]:
        cells = re.split(r"\s{2,}", line)
        rows[cells[0]] = cells
    return {"": header, **rows}


class Api:
    """The control API read directly while waiting (a CLI call costs a Python start); what the test
    asserts a user sees goes through the CLI."""

    def __init__(self, url: str, token_file: Path) -> None:
        self.url, self.token_file = url, token_file

    def _get(self, path: str) -> Any:
        request = urllib.request.Request(f"{self.url}{path}", headers={
            "Authorization": f"Bearer {self.token_file.read_text().strip()}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read()) if path.startswith("/api/v1/resources") else response.read().decode()

    def items(self, kind: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self._get(f"/api/v1/resources/{kind}?namespace=default")["items"]
        return items

    def logs(self, pod: str) -> str:
        text: str = self._get(f"/api/v1/logs/default/{pod}")
        return text


def test_seed_workloads_run_locally(tmp_path: Path) -> None:
    procs = Processes(tmp_path)
    ingress, api = free_port(), free_port()
    env = {**os.environ, "NERVE_SERVER": f"http://127.0.0.1:{api}"}
    examples = tmp_path / "event-display"
    shutil.copytree(REPO / "examples" / "event-display", examples)
    up_log = procs.start("nerve-up", NERVE, "up", "--ingress-port", str(ingress), "--api-port", str(api))
    broker = f"http://127.0.0.1:{ingress}/default/default"
    api_ = Api(f"http://127.0.0.1:{api}", tmp_path / ".nerve" / "token")

    def nerve(*args: str, stdin: str | None = None) -> str:
        result = run(NERVE, *args, env=env, stdin=stdin, cwd=tmp_path)
        assert result.returncode == 0, f"nerve {' '.join(args)}: {result.stderr}"
        return result.stdout

    try:
        wait_http(f"http://127.0.0.1:{api}/healthz")
        applied = nerve("apply", "-f", str(examples / "01-event-display.yaml"), "-f", "-", stdin=SETUP)
        assert "deployment.apps/event-display created" in applied and "service/event-display created" in applied

        wait_for(lambda: api_.items("deployments")[0].get("status", {}).get("readyReplicas") == 1,
                 "event-display ready")
        deployments = table(nerve("get", "deploy"))
        assert deployments[""] == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
        assert deployments["event-display"][1:4] == ["1/1", "1", "1"]
        pods = table(nerve("get", "pods"))
        assert pods[""] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
        [display_pod] = [name for name in pods if name.startswith("event-display-")]
        assert pods[display_pod][1:4] == ["1/1", "Running", "0"]
        triggers = table(nerve("get", "triggers"))
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", triggers["to-display"][2]) and \
            triggers["to-display"][4] == "True"
        assert triggers["to-nowhere"][-2:] == ["False", "Unable to get the Subscriber's URI"]

        curl = run("curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", broker, "-X", "POST",
                   "-H", "Ce-Id: say-hello", "-H", "Ce-Specversion: 1.0", "-H", "Ce-Type: greeting",
                   "-H", "Ce-Source: curl", "-H", "Content-Type: application/json",
                   "-d", '{"message": "hello, world!"}', env=env)
        assert curl.stdout == "202", curl.stderr
        wait_for(lambda: '"message": "hello, world!"' in api_.logs(display_pod), "the display printed the event")
        assert '    "message": "hello, world!"' in nerve("logs", "-l", "app=event-display", "--tail=100").splitlines()
        logged = nerve("logs", "deployment/event-display")
        assert "☁️  cloudevents.Event" in logged and "  id: say-hello" in logged

        # The heartbeats image, with K_SINK: beats reach the display through the Broker; and the seed's
        # `kubectl run busybox ... --restart=Never -- ls`, which runs `ls`, completes and leaves Events.
        nerve("apply", "-f", "-", stdin=heartbeats(broker) + "---" + BUSYBOX)

        def beats(text: str | None = None) -> list[str]:
            out = api_.logs(display_pod) if text is None else text
            return [b for b in out.split("☁️  cloudevents.Event\n") if "samples.heartbeat" in b]
        wait_for(lambda: len(beats()) >= 2, "two heartbeats")
        blocks = beats(nerve("logs", "-l", "app=event-display", "--tail=-1"))
        first = blocks[0]
        assert "  type: dev.knative.eventing.samples.heartbeat" in first
        assert "  source: https://knative.dev/eventing/cmd/heartbeats/#event-test/mypod" in first
        assert "  hello: world" in first and "  the: 42" in first and "  heart: yes" in first
        assert '    "id": 1,' in first and '    "label": ""' in first
        assert '    "id": 2,' in blocks[1]

        wait_for(lambda: any(p["metadata"]["name"] == "busybox" and p["status"].get("phase") == "Succeeded"
                             for p in api_.items("pods")), "busybox Completed")
        assert table(nerve("get", "pods"))["busybox"][1:4] == ["0/1", "Completed", "0"]
        assert "nerve-up.log" in nerve("logs", "busybox")  # ls ran in nerve up's directory
        events = nerve("get", "events")
        assert "Created container busybox" in events and "Started container busybox" in events

        # The seed's CronJob, ticking every 2 s: Jobs <cronjob>-<unix seconds> run ONE_SHOT heartbeats.
        nerve("apply", "-f", "-", stdin=cronjob(broker))

        def completed_jobs() -> list[str]:
            return [j["metadata"]["name"] for j in api_.items("jobs")
                    if any(c["type"] == "Complete" for c in j.get("status", {}).get("conditions", []))]
        wait_for(lambda: len(completed_jobs()) >= 2, "two completed Jobs of the CronJob")
        jobs = table(nerve("get", "jobs"))
        done = [name for name, row in jobs.items() if row[1:3] == ["Complete", "1/1"]]
        assert len(done) >= 2 and all(re.fullmatch(r"heartbeat-cron-\d{10}", name) for name in done), jobs
        cron = table(nerve("get", "cronjobs"))
        assert cron[""] == ["NAME", "SCHEDULE", "SUSPEND", "ACTIVE", "LAST SCHEDULE", "AGE"]
        assert cron["heartbeat-cron"][1:3] == ["*/2 * * * * *", "False"]
        wait_for(lambda: [b for b in beats() if "#default/heartbeat-cron-" in b], "a CronJob heartbeat arrived")
        one_shots = [b for b in beats() if "#default/heartbeat-cron-" in b]
        assert all('    "id": 1,' in b for b in one_shots)
        nerve("delete", "cronjob", "heartbeat-cron")
        assert api_.items("jobs") == []  # the CronJob's Jobs (and their Pods) went with it

        # Deleting the Deployment stops its process.
        [pod] = [p for p in api_.items("pods") if p["metadata"]["name"] == display_pod]
        pid = int(pod["status"]["containerStatuses"][0]["containerID"].removeprefix("process://"))
        os.kill(pid, 0)
        nerve("delete", "deployment", "event-display")
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    except BaseException:
        print(up_log.read_text())
        raise
    finally:
        procs.stop()
