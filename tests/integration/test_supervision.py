"""No silent deaths: a part of the data plane that fails is restarted, and /readyz says so meanwhile.

The failures are injected where they would happen: a backend reader whose receive raises an unexpected
error, and the dispatcher failing to apply a contract. Everything else is the real stack: HTTP ingress,
memory backend, dispatcher, real HTTP subscribers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from prometheus_client import REGISTRY

from channels.base import Message, TopicSpec
from channels.memory import _MemoryReader
from channels.registry import BackendPool
from core import observability
from core.contract import Contract, Egress, Reference, Resource, write_atomically
from core.contract_watch import ContractWatcher
from core.runtime import serve
from dispatcher.egress import EgressRunner
from dispatcher.service import Dispatcher
from dispatcher.settings import DispatcherSettings
from tests.support.receiver import Receiver
from tests.support.stack import Stack, event, eventually

BROKER_AND_TRIGGER = """
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {name: default, namespace: ns1}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {name: sturdy, namespace: ns1}
spec: {broker: default, subscriber: {uri: "URL"}}
"""


async def _readyz(session: aiohttp.ClientSession, base: str) -> tuple[int, dict[str, Any]]:
    async with session.get(f"{base}/readyz") as response:
        return response.status, await response.json()


def _restarts(part: str) -> float:
    return REGISTRY.get_sample_value("nerve_supervised_restarts_total", {"part": part}) or 0.0


async def test_a_reader_that_raises_is_restarted_delivery_resumes_and_readyz_said_why(
    stack: Stack, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = asyncio.Event()
    original = _MemoryReader.receive

    async def receive(self: _MemoryReader, max_records: int) -> Sequence[Message]:
        if broken.is_set():
            raise RuntimeError("reader broke")
        return await original(self, max_records)

    monkeypatch.setattr(_MemoryReader, "receive", receive)
    # The Broker's topic is read once for all its Triggers: the part that broke is the Broker's reader.
    part = "Broker/ns1/default"
    before = _restarts(part)
    await stack.apply(BROKER_AND_TRIGGER.replace("URL", receiver.url))
    assert await stack.send("/ns1/default", event("before")) == 202
    await receiver.wait_for(1)
    broken.set()
    assert await stack.send("/ns1/default", event("wakes-the-reader")) == 202

    down: dict[str, Any] = {}

    async def reported_down() -> bool:
        status, body = await _readyz(stack.session, stack.api)
        down.update(body.get("down") or {})
        return status == 503 and part in down

    await eventually(reported_down)
    assert down[part] == "RuntimeError: reader broke"
    status, body = await _readyz(stack.session, stack.ingress)  # every service of the process says so
    assert status == 503
    assert part in body["down"]
    assert await stack.send("/ns1/default", event("while-down")) == 202
    broken.clear()
    await receiver.wait_for(3, timeout=30)
    assert receiver.ids == ["before", "wakes-the-reader", "while-down"]

    async def ready_again() -> bool:
        return (await _readyz(stack.session, stack.api))[0] == 200

    await eventually(ready_again)
    assert _restarts(part) > before


async def test_the_dispatcher_failing_to_apply_a_contract_is_retried_and_it_keeps_following(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As `python -m dispatcher` runs: a contract file, the watch, the dispatcher, /readyz on a port."""
    first, second = Receiver(), Receiver()
    await first.start()
    await second.start()
    failures: list[str] = []
    original = EgressRunner.start

    async def start(self: EgressRunner) -> None:
        if not failures:
            failures.append(self.egress.reference.name)
            raise RuntimeError("injected apply failure")
        await original(self)

    monkeypatch.setattr(EgressRunner, "start", start)
    pool = BackendPool()
    backend = await pool.get("memory")
    await backend.ensure_topic(TopicSpec("topic-a"))
    dispatcher = Dispatcher(pool, DispatcherSettings(drain_timeout_s=1.0))
    await dispatcher.start()
    path = tmp_path / "contract.json"
    broker = Reference("b", "ns1", "default", "Broker")

    def trigger(name: str, url: str) -> Egress:
        return Egress(uid=name, reference=Reference(name, "ns1", name, "Trigger"), consumer_group=f"g-{name}",
                      destination=url)

    def contract(generation: int, *egresses: Egress) -> Contract:
        return Contract(generation, (Resource("b", broker, "memory", "topic-a", "/ns1/default", egresses),))

    write_atomically(path, contract(1, trigger("one", first.url)))
    watcher = ContractWatcher(path, [dispatcher.apply], interval_s=0.05, restart_initial_s=0.3)
    await watcher.start()
    app = web.Application()
    observability.add_routes(app, generation=lambda: dispatcher.generation)
    runner, port = await serve(app, "127.0.0.1", 0)
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            status, body = await _readyz(session, base)
            assert status == 503
            assert "injected apply failure" in body["down"]["contract-watch"]

            async def applied(generation: int) -> bool:
                status, body = await _readyz(session, base)
                return status == 200 and body["generation"] == generation

            await eventually(lambda: applied(1))
            await backend.publish("topic-a", event("e1"))
            await first.wait_for(1)
            write_atomically(path, contract(2, trigger("one", first.url), trigger("two", second.url)))
            await eventually(lambda: applied(2))
            await backend.publish("topic-a", event("e2"))
            await second.wait_for(1)
            await first.wait_for(2)
    finally:
        await runner.cleanup()
        await watcher.stop()
        await dispatcher.stop()
        await pool.stop()
        await first.stop()
        await second.stop()
    assert failures == ["one"]
    assert second.ids == ["e2"]
