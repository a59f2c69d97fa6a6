"""A contract generation touches only what changed: adding one Trigger compiles one filter and starts one
runner; the others keep their runner, their compiled filter and their place on the shared reader."""

from __future__ import annotations

from typing import Any

import pytest

import dispatcher.egress
from channels.base import TopicSpec
from channels.registry import BackendPool
from core.contract import Contract, Egress, Reference, Resource
from dispatcher.service import Dispatcher
from dispatcher.settings import DispatcherSettings

BROKER = Reference("b", "ns1", "default", "Broker")


def _trigger(n: int, **spec: Any) -> Egress:
    return Egress(uid=f"t{n}", reference=Reference(f"t{n}", "ns1", f"t{n}", "Trigger"), consumer_group=f"g-t{n}",
                  destination=f"http://127.0.0.1:9/t{n}", filter_attributes={"type": f"type-{n}"}, **spec)


def _contract(generation: int, *egresses: Egress) -> Contract:
    return Contract(generation, (Resource("b", BROKER, "memory", "topic-gen", "/ns1/default", egresses),))


async def test_a_generation_that_adds_one_trigger_compiles_and_starts_only_that_one(
        monkeypatch: pytest.MonkeyPatch) -> None:
    compiled: list[object] = []
    original = dispatcher.egress.compile_trigger_filter

    def counting(attributes: Any, filters: Any) -> Any:
        compiled.append(attributes)
        return original(attributes, filters)

    monkeypatch.setattr(dispatcher.egress, "compile_trigger_filter", counting)
    pool = BackendPool()
    backend = await pool.get("memory")
    await backend.ensure_topic(TopicSpec("topic-gen"))
    service = Dispatcher(pool, DispatcherSettings(drain_timeout_s=1.0))
    await service.start()
    try:
        await service.apply(_contract(1, *(_trigger(n) for n in range(5))))
        assert len(compiled) == 5
        runners = dict(service._runners)
        [fanout] = service._fanouts._fanouts.values() if service._fanouts else []
        fanout.index()
        builds = fanout.index_builds

        await service.apply(_contract(2, *(_trigger(n) for n in range(6))))
        assert len(compiled) == 6, "only the new Trigger's filter was compiled"
        assert all(service._runners[uid] is runner for uid, runner in runners.items()), "none restarted"
        fanout.index()
        assert fanout.index_builds == builds + 1, "the index is built once for the generation"
        assert len(fanout) == 6

        # A delivery change to one Trigger compiles no filter; a filter change compiles that one only.
        await service.apply(_contract(3, *(_trigger(n) for n in range(5)), _trigger(5, delivery_order="ordered")))
        assert len(compiled) == 6
        changed = Egress(uid="t5", reference=Reference("t5", "ns1", "t5", "Trigger"), consumer_group="g-t5",
                         destination="http://127.0.0.1:9/t5", filter_attributes={"type": "other"})
        await service.apply(_contract(4, *(_trigger(n) for n in range(5)), changed))
        assert len(compiled) == 7
        assert all(service._runners[uid] is runner for uid, runner in runners.items())
    finally:
        await service.stop()
        await pool.stop()
