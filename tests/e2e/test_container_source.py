"""ContainerSource end to end, as a user runs it: `nerve up`, `nerve apply` of Knative's YAML, a real
HTTP sink. The container's command runs as a local process with K_SINK, K_CE_OVERRIDES and its template
env; its events arrive with the ceOverrides extensions; its args are honoured; a killed process is
restarted; deleting the source stops it and removes its Deployment and SinkBinding."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import pytest

from tests.e2e.nerve_up import nerve_up
from tests.support.receiver import Receiver
from tests.support.stack import eventually

pytestmark = pytest.mark.e2e
PRODUCER = str(Path(__file__).resolve().parents[1] / "support" / "producer.py")


def _source(sink: str) -> str:
    return f"""
apiVersion: sources.knative.dev/v1
kind: ContainerSource
metadata: {{name: producer}}
spec:
  template:
    spec:
      containers:
      - name: producer
        image: example.com/producer:1
        command: [{json.dumps(sys.executable)}, {json.dumps(PRODUCER)}]
        args: [--count, "0", --period, "0.3", --type, dev.nerve.e2e.container]
        env:
        - {{name: GREETING, value: hello}}
  sink: {{uri: {json.dumps(sink)}}}
  ceOverrides:
    extensions: {{hello: world}}
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_a_container_source_runs_bound_restarts_and_stops(tmp_path: Path) -> None:
    receiver = Receiver()
    url = await receiver.start()
    try:
        async with nerve_up(tmp_path) as up:
            out = await up.apply(_source(url))
            assert "containersource.sources.knative.dev/producer created" in out
            await eventually(lambda: len(receiver.events) >= 2, timeout=30)
            first = receiver.events[0]
            assert (first.type, first.attributes["hello"]) == ("dev.nerve.e2e.container", "world")
            data = json.loads(first.data or b"")
            assert data["argv"] == ["--count", "0", "--period", "0.3", "--type", "dev.nerve.e2e.container"]
            assert data["env"] == {"K_SINK": url, "K_CE_OVERRIDES": '{"extensions":{"hello":"world"}}',
                                   "GREETING": "hello", "NAME": "producer", "NAMESPACE": "default"}

            async def ready() -> bool:
                source = await up.get("containersource", "producer")
                conditions = {c["type"]: c["status"] for c in (source or {}).get("status", {}).get("conditions", [])}
                return conditions == {"Ready": "True", "SinkBindingReady": "True", "ReceiveAdapterReady": "True"}
            await eventually(ready, timeout=30)
            code, table, _ = await up.nerve("get", "containersources")
            header, row = table.strip().splitlines()
            assert header.split() == ["NAME", "SINK", "AGE", "READY", "REASON"]
            assert row.split()[:2] == ["producer", url] and row.split()[3] == "True"

            # Killed, the process is started again (a new pid), still bound.
            pid = int(str(receiver.events[-1].attributes["pid"]))
            os.kill(pid, signal.SIGKILL)
            await eventually(lambda: str(receiver.events[-1].attributes["pid"]) != str(pid), timeout=30)
            new_pid = int(str(receiver.events[-1].attributes["pid"]))
            assert receiver.events[-1].attributes["hello"] == "world"

            code, out, err = await up.nerve("delete", "containersource", "producer")
            assert code == 0, err
            await eventually(lambda: not _alive(new_pid), timeout=30)
            assert await up.get("deployment", "producer-deployment") is None
            assert await up.get("sinkbinding", "producer-sinkbinding") is None
            count = len(receiver.events)
            await asyncio.sleep(1)
            assert len(receiver.events) == count
    finally:
        await receiver.stop()
