"""EventType auto-create with Nerve as separate processes (compose's shape): the ingress and the dispatcher
write what they see through the control API (`--control-url`, `--control-token`), on a real NATS."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from core.events import to_binary
from tests.support.services import Cluster, http_json
from tests.support.stack import event


def _eventtypes(cluster: Cluster, token: str) -> list[dict[str, Any]]:
    request = urllib.request.Request(f"{cluster.api_url}/api/v1/resources/eventtypes?namespace=default",
                                     headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        items: list[dict[str, Any]] = json.loads(response.read())["items"]
        return items


@pytest.mark.nats
def test_separate_ingress_writes_auto_created_eventtypes_through_the_control_api(
        tmp_path: Path, nats_url: str) -> None:
    token = secrets.token_urlsafe(24)
    cluster = Cluster(tmp_path, "nats", nats_url)
    cluster.control.args.append(f"--token={token}")  # a token may start with "-"
    auto = ["--eventtype-auto-create", "--control-url", cluster.api_url, f"--control-token={token}"]
    cluster.ingress.args += auto
    cluster.dispatcher.args += auto
    cluster.start()
    try:
        broker = {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker",
                  "metadata": {"name": "default", "namespace": "default",
                               "annotations": {"eventing.knative.dev/broker.class": "NatsJetStreamBroker"}}}
        status, body = http_json(f"{cluster.api_url}/api/v1/apply", {"items": [broker]}, token=token)
        assert status == 200, body
        generation = cluster.generation()
        cluster.ingress.wait_ready(generation)
        headers, data = to_binary(event(1, type_="com.example.separate", source="/svc"))
        for _ in range(3):
            request = urllib.request.Request(f"{cluster.ingress_url}/default/default", data=data, headers=headers)
            with urllib.request.urlopen(request, timeout=10) as response:
                assert response.status == 202
        deadline = time.monotonic() + 15
        while not (items := _eventtypes(cluster, token)) and time.monotonic() < deadline:
            time.sleep(0.1)
        [et] = items
        assert et["metadata"]["name"].startswith("et-default-")
        assert et["spec"]["reference"]["kind"] == "Broker"
        assert {a["name"]: a.get("value") for a in et["spec"]["attributes"]}["type"] == "com.example.separate"
    finally:
        cluster.stop()


def test_a_separate_ingress_asked_to_auto_create_without_a_control_url_is_refused(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "ingress", "--eventtype-auto-create"], capture_output=True,
                          text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == ("python -m ingress: error: --eventtype-auto-create needs --control-url "
                                   "(NERVE_CONTROL_URL): the control API to write to")
