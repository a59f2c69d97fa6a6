"""The memory backend across separate processes: it keeps events inside one process, so a separate
control, ingress or dispatcher must say so, never take an event with 202 that no other process can read."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

from tests.support import manifests
from tests.support.launchers import free_port
from tests.support.services import Service, api_token, http_json


def _post_event(url: str) -> tuple[int, dict[str, str]]:
    request = urllib.request.Request(url, data=b"{}", method="POST", headers={
        "ce-specversion": "1.0", "ce-id": "1", "ce-source": "/t", "ce-type": "t", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, {}
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_a_memory_broker_under_separate_services_is_not_ready_and_refused_with_503(tmp_path: Path) -> None:
    state, api, ingress_port = tmp_path / "state", free_port(), free_port()
    control = Service("control", "control", ["--port", str(api), "--state-dir", str(state), "--backend", "memory",
                                             "--ingress-base-url", f"http://127.0.0.1:{ingress_port}"], tmp_path, api)
    ingress = Service("ingress", "ingress", ["--port", str(ingress_port), "--contract", str(state / "contract.json")],
                      tmp_path, ingress_port)
    try:
        control.start()
        control.wait_ready(min_generation=0)
        token = api_token(state)
        status, body = http_json(f"http://127.0.0.1:{api}/api/v1/apply", {"items": [manifests.broker("b", "ns1")]},
                                 token=token)
        assert status == 200, body
        ingress.start()
        ingress.wait_ready()
        deadline = time.monotonic() + 20
        while True:
            _, broker = http_json(f"http://127.0.0.1:{api}/api/v1/resources/brokers/ns1/b", token=token)
            ready = {c["type"]: c for c in broker.get("status", {}).get("conditions", [])}.get("Ready", {})
            if ready.get("status") == "False" or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert ready.get("status") == "False", broker
        assert "memory backend keeps events inside one process" in ready.get("message", ""), ready
        status, error = _post_event(f"http://127.0.0.1:{ingress_port}/ns1/b")
        assert status == 503, (status, error)
        assert "works only under `nerve up`" in error["reason"]
    finally:
        ingress.stop()
        control.stop()
