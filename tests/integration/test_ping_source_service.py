"""PingSource run by `python -m sources` as its own process (compose's topology): it follows the contract
file of a separate `python -m control`, keeps its ticks under its own --state-dir, and a restart of it
(SIGTERM, then start again) neither doubles nor skips a tick."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from tests.support.receiver import Receiver
from tests.support.services import Service, api_token, free_port, http_json

pytestmark = pytest.mark.nats


@pytest.fixture
def services(tmp_path: Path, nats_url: str) -> Iterator[tuple[Service, Service, Path]]:
    state = tmp_path / "control"
    api, port = free_port(), free_port()
    control = Service("control", "control", [
        "--host", "127.0.0.1", "--port", str(api), "--state-dir", str(state), "--backend", "nats",
        "--nats-url", nats_url], tmp_path, api)
    sources = Service("sources", "sources", [
        "--host", "127.0.0.1", "--port", str(port), "--contract", str(state / "contract.json"),
        "--nats-url", nats_url, "--state-dir", str(tmp_path / "sources")], tmp_path, port)
    control.start()
    sources.start()
    try:
        control.wait_ready()
        yield control, sources, state
    finally:
        sources.stop()
        control.stop()


async def test_the_sources_process_ticks_and_restarts_without_doubles(
    services: tuple[Service, Service, Path], receiver: Receiver, tmp_path: Path
) -> None:
    control, sources, state = services
    ping = {"apiVersion": "sources.knative.dev/v1", "kind": "PingSource", "metadata": {"name": "p", "namespace": "ns1"},
            "spec": {"schedule": "* * * * * *", "data": "tick", "sink": {"uri": receiver.url}}}
    status, body = await asyncio.to_thread(http_json, f"http://127.0.0.1:{control.port}/api/v1/apply",
                                           {"items": [ping]}, token=api_token(state))
    assert status == 200, body
    generation = int(json.loads((state / "contract.json").read_text())["generation"])
    await asyncio.to_thread(sources.wait_ready, generation)
    await receiver.wait_for(2, timeout=15)
    assert (tmp_path / "sources" / "pingsource.db").exists()

    await asyncio.to_thread(sources.stop)
    before = len(receiver.received)
    await asyncio.sleep(1.5)
    sources.start()
    await asyncio.to_thread(sources.wait_ready, generation)
    await receiver.wait_for(before + 3, timeout=15)
    times = [datetime.fromisoformat(str(e.attributes["time"]).replace("Z", "+00:00")).timestamp()
             for e in receiver.events]
    # Ticks fired late together are sent at once and may arrive in any order: compared sorted.
    assert sorted(times) == [min(times) + i for i in range(len(times))], times
    assert {e.source for e in receiver.events} == {"/apis/v1/namespaces/ns1/pingsources/p"}
