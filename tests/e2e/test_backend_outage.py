"""The backend goes away mid-run: the ingress answers 503 (never 202) while it is down, and when it is
back delivery resumes with nothing that got a 202 lost. Kafka is stopped and started again; NATS is
restarted on the same port and store. Each test runs its own private server.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support import manifests
from tests.support.launchers import backend_params, kafka_launcher, nats_launcher
from tests.support.receiver import Receiver
from tests.support.services import Cluster

pytestmark = pytest.mark.e2e


BROKER = manifests.broker("out", "e2e")


def trigger(url: str) -> dict[str, Any]:
    return manifests.trigger(
        "sink",
        url,
        namespace="e2e",
        broker="out",
        delivery={"retry": 20, "backoffPolicy": "linear", "backoffDelay": "PT0.2S"},
    )


class Backend:
    """A private server that the test can take down and bring back."""

    def __init__(self, kind: str, workdir: Path) -> None:
        self.kind = kind
        self.dir = workdir / kind
        self.launcher: Any = kafka_launcher() if kind == "kafka" else nats_launcher()
        self.process: Any = self.launcher.start(self.dir)

    @property
    def connection(self) -> str:
        return str(self.process.bootstrap if self.kind == "kafka" else self.process.url)

    def down(self) -> None:
        self.process.stop()

    def up(self) -> None:
        self.process = self.launcher.start(self.dir, self.process.port)


@pytest.fixture(params=backend_params("kafka", "nats"))
def outage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Backend, Cluster]]:
    backend = Backend(request.param, tmp_path)
    cluster = Cluster(tmp_path, backend.kind, backend.connection)
    try:
        cluster.start()
        yield backend, cluster
    finally:
        cluster.stop()
        backend.process.stop()


async def test_ingress_refuses_while_the_backend_is_down_and_nothing_accepted_is_lost(
    outage: tuple[Backend, Cluster], receiver: Receiver
) -> None:
    backend, cluster = outage
    await asyncio.to_thread(cluster.apply, BROKER, trigger(receiver.url))
    accepted: list[str] = []
    refused: dict[str, int | str] = {}
    phase = {"name": "before"}
    by_phase: dict[str, list[int | str]] = {"before": [], "down": [], "after": []}
    stop = asyncio.Event()

    async def produce() -> None:
        i = 0
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
            while not stop.is_set():
                event_id = f"o{i}"
                i += 1
                headers = {
                    "ce-specversion": "1.0",
                    "ce-id": event_id,
                    "ce-source": "/outage",
                    "ce-type": "outage",
                    "Content-Type": "application/json",
                }
                status: int | str
                try:
                    async with session.post(f"{cluster.ingress_url}/e2e/out", data=b"{}", headers=headers) as r:
                        await r.read()
                        status = r.status
                except (aiohttp.ClientError, TimeoutError) as exc:
                    status = type(exc).__name__
                by_phase[phase["name"]].append(status)
                if status == 202:
                    accepted.append(event_id)
                else:
                    refused[event_id] = status
                await asyncio.sleep(0.01)

    producer = asyncio.create_task(produce())
    await asyncio.sleep(2)
    # The phase changes before the shutdown starts: answers given while the server is stopping are
    # "down" answers (202 or 503), never counted as the healthy phase's.
    phase["name"] = "down"
    await asyncio.to_thread(backend.down)
    await asyncio.sleep(6)
    await asyncio.to_thread(backend.up)
    phase["name"] = "after"
    # Give the clients time to reconnect, then make sure 202s come back.
    deadline = asyncio.get_running_loop().time() + 60
    while by_phase["after"].count(202) < 50:
        assert asyncio.get_running_loop().time() < deadline, f"no 202s after the restart: {by_phase['after'][-5:]}"
        await asyncio.sleep(0.2)
    stop.set()
    await producer

    assert by_phase["before"] and all(s == 202 for s in by_phase["before"])
    down = by_phase["down"]
    assert down, "no request was made while the backend was down"
    assert 503 in down, f"expected 503 while {backend.kind} was down, got {set(map(str, down))}"
    assert all(s in (202, 503) for s in down), f"unexpected answers while down: {set(map(str, down))}"
    deadline = asyncio.get_running_loop().time() + 120
    while not set(accepted) <= set(receiver.ids):
        missing = set(accepted) - set(receiver.ids)
        assert asyncio.get_running_loop().time() < deadline, (
            f"{len(missing)} accepted events lost: {sorted(missing)[:5]}"
        )
        await asyncio.sleep(0.2)
    print(
        f"\n[{backend.kind}] outage: accepted={len(accepted)} refused={len(refused)} "
        f"(503 while down: {down.count(503)}, 202 while down: {down.count(202)}) "
        f"duplicates={len(receiver.ids) - len(set(receiver.ids))}"
    )
