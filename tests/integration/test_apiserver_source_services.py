"""Under separate services (`python -m control`, as compose runs it) no sources process can watch the
store: an ApiServerSource says so in its status instead of going Ready and sending nothing."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.launchers import free_port
from tests.support.services import Service, api_token, http_json


def test_a_separate_control_reports_the_source_not_ready_with_the_reason(tmp_path: Path) -> None:
    port = free_port()
    state = tmp_path / "state"
    control = Service("control", "control", ["--host", "127.0.0.1", "--port", str(port), "--state-dir", str(state)],
                      tmp_path, port)
    control.start()
    try:
        control.wait_ready()
        api, token = f"http://127.0.0.1:{port}", api_token(state)
        source = {"apiVersion": "sources.knative.dev/v1", "kind": "ApiServerSource",
                  "metadata": {"name": "apart", "namespace": "default"},
                  "spec": {"resources": [{"apiVersion": "v1", "kind": "ConfigMap"}],
                           "sink": {"uri": "http://127.0.0.1:9/"}}}
        status, body = http_json(f"{api}/api/v1/apply", {"items": [source]}, token=token)
        assert status == 200, body
        status, obj = http_json(f"{api}/api/v1/resources/apiserversource/default/apart", token=token)
        assert status == 200, obj
        conditions = {c["type"]: c for c in obj["status"]["conditions"]}
        assert (conditions["Deployed"]["status"], conditions["Deployed"]["reason"]) == (
            "False", "ResourceWatchUnavailable")
        assert (conditions["Ready"]["status"], conditions["Ready"]["reason"]) == ("False", "ResourceWatchUnavailable")
        assert "embedded mode (`nerve up`)" in conditions["Ready"]["message"]
        assert {a["source"] for a in obj["status"]["ceAttributes"]} == {api}
        # Nothing for a sources service to start: the contract has no entry for it.
        contract = json.loads((state / "contract.json").read_text())
        assert contract.get("sources", []) == []
    finally:
        control.stop()
