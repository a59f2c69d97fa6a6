"""`nerve up` observed as an operator observes it: OTEL_* variables send its spans to a real OTLP/HTTP
receiver, `--log-format json` writes one JSON object per line with the trace id of the delivery it is
about, and `--no-legacy-metrics` serves only Knative's current metric names."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from tests.support.launchers import free_port
from tests.support.manifests import broker, trigger
from tests.support.otlp import OtlpReceiver
from tests.support.receiver import Answer, Receiver

NERVE = str(Path(sys.executable).with_name("nerve"))
PRODUCER_TRACE = "5b8efff798038103d269b633813fc60c"
TRACEPARENT = f"00-{PRODUCER_TRACE}-eee19b7ec3c1b174-01"
pytestmark = pytest.mark.e2e


async def _wait_http(session: aiohttp.ClientSession, url: str, log: Path) -> None:
    for _ in range(300):
        try:
            async with session.get(url) as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise AssertionError(f"{url} never answered:\n{_read(log)}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _read(path: Path) -> str:
    return path.read_text()


def _start_nerve(tmp_path: Path, ingress: int, api: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    # Logs go to stderr; stdout has only the banner `nerve up` prints for the user.
    with (tmp_path / "nerve-up.log").open("wb") as err, (tmp_path / "nerve-up.out").open("wb") as out:
        return subprocess.Popen(
            [NERVE, "up", "--ingress-port", str(ingress), "--api-port", str(api),
             "--state-dir", str(tmp_path / "state"), "--log-format", "json", "--no-legacy-metrics"],
            stdout=out, stderr=err, env=env)


async def test_nerve_up_exports_spans_logs_json_with_trace_ids_and_serves_current_metrics(tmp_path: Path) -> None:
    collector, good, failing = OtlpReceiver(), Receiver(), Receiver(lambda i, e: Answer(500))
    for server in (collector, good, failing):
        await server.start()
    ingress, api = free_port(), free_port()
    env = {**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url, "OTEL_SERVICE_NAME": "nerve-e2e",
           "OTEL_BSP_SCHEDULE_DELAY": "100"}
    log = tmp_path / "nerve-up.log"
    proc = _start_nerve(tmp_path, ingress, api, env)
    try:
        async with aiohttp.ClientSession() as session:
            await _wait_http(session, f"http://127.0.0.1:{api}/healthz", log)
            token = _read(tmp_path / "state" / "token").strip()
            auth = {"Authorization": f"Bearer {token}"}
            items = [broker("default", "obs"), trigger("good", good.url, namespace="obs"),
                     trigger("bad", failing.url, namespace="obs", delivery={"retry": 0})]
            async with session.post(f"http://127.0.0.1:{api}/api/v1/apply", json={"items": items},
                                    headers=auth) as response:
                assert response.status == 200, await response.text()
            headers = {"ce-specversion": "1.0", "ce-id": "e2e-1", "ce-source": "/e2e", "ce-type": "greeting",
                       "traceparent": TRACEPARENT}
            async with session.post(f"http://127.0.0.1:{ingress}/obs/default", headers=headers, data=b"") as response:
                assert response.status == 202
            await good.wait_for(1)
            await failing.wait_for(1)
            assert good.received[0].headers["traceparent"].split("-")[1] == PRODUCER_TRACE
            expected = {"broker:default.obs", "trigger:good.obs", "trigger:bad.obs", f"send {good.url}"}
            await collector.wait_for(lambda: expected <= {s.name for s in collector.in_trace(PRODUCER_TRACE)})
            async with session.get(f"http://127.0.0.1:{api}/metrics") as response:
                metrics = await response.text()
    finally:
        await asyncio.to_thread(_stop, proc)
        for server in (collector, good, failing):
            await server.stop()

    assert {s.service for s in collector.in_trace(PRODUCER_TRACE)} == {"nerve-e2e"}
    assert 'kn_eventing_dispatch_duration_seconds_count{' in metrics
    assert "mt_broker_" not in metrics
    lines = [line for line in _read(log).splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all({"time", "level", "logger", "message"} <= r.keys() for r in records)
    [dropped] = [r for r in records if "e2e-1 dropped" in r["message"]]
    assert dropped["level"] == "WARNING" and dropped["trace_id"] == PRODUCER_TRACE
    assert len(dropped["span_id"]) == 16
