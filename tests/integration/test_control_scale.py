"""A contract change touches only what changed: control with many Triggers on one Broker, in process
(SQLite store, memory backend), through ControlService.apply as `nerve apply` reaches it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from channels.registry import BackendPool
from control.api.admission import AdmissionSettings
from control.reconcilers.controller import Reconciler
from control.service import ControlService
from control.settings import ControlSettings
from control.store.sqlite import SqliteStore
from core.contract import Contract
from tests.support import manifests

N = 300


@pytest.fixture
async def control(tmp_path: Path) -> AsyncIterator[tuple[ControlService, list[Contract]]]:
    store = SqliteStore(tmp_path / "nerve.db")
    published: list[Contract] = []

    async def sink(contract: Contract) -> None:
        published.append(contract)

    pool = BackendPool()
    reconciler = Reconciler(store, pool, ControlSettings(state_dir=tmp_path), sink)
    service = ControlService(store, reconciler, AdmissionSettings("MTChannelBasedBroker"))
    await reconciler.reconcile()
    try:
        yield service, published
    finally:
        await reconciler.stop()
        await pool.stop()
        await store.close()


def trigger(i: int, **spec: Any) -> dict[str, Any]:
    return manifests.trigger(f"t-{i:04d}", f"http://127.0.0.1:9/t/{i}", namespace="big",
                             filter={"attributes": {"type": f"type-{i}"}}, **spec)


def egresses(contract: Contract) -> dict[str, str]:
    return {e.reference.name: e.destination for r in contract.resources for e in r.egresses}


async def test_one_more_trigger_builds_only_that_one_and_the_contract_holds_all(
    control: tuple[ControlService, list[Contract]],
) -> None:
    service, published = control
    builds = service.reconciler.triggers
    await service.apply([manifests.broker("b", "big"), *(trigger(i, broker="b") for i in range(N))])
    assert len(egresses(published[-1])) == N
    before, generation = builds.builds, published[-1].generation
    await service.reconciler.reconcile()  # a resync with nothing changed
    assert builds.builds == before and published[-1].generation == generation
    await service.apply([trigger(N, broker="b")])
    assert builds.builds == before + 1
    assert len(egresses(published[-1])) == N + 1 and published[-1].generation == generation + 1
    # A changed Trigger is built again, and what it says reaches the contract.
    changed = trigger(7, broker="b")
    changed["spec"]["subscriber"]["uri"] = "http://127.0.0.1:9/moved"
    await service.apply([changed])
    assert builds.builds == before + 2
    assert egresses(published[-1])["t-0007"] == "http://127.0.0.1:9/moved"


async def test_a_broker_change_rebuilds_its_triggers_and_a_ref_subscriber_is_never_kept(
    control: tuple[ControlService, list[Contract]],
) -> None:
    service, published = control
    builds = service.reconciler.triggers
    by_ref = manifests.trigger("by-ref", "", namespace="big", broker="b")
    by_ref["spec"]["subscriber"] = {"ref": {"apiVersion": "v1", "kind": "Service", "name": "display"}}
    display = {"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "display", "namespace": "big", "annotations": {"nerve.dev/url": "http://a:1/"}}}
    await service.apply([manifests.broker("b", "big"), display, by_ref, *(trigger(i, broker="b") for i in range(3))])
    assert egresses(published[-1])["by-ref"] == "http://a:1/"
    before = builds.builds
    display["metadata"]["annotations"]["nerve.dev/url"] = "http://b:2/"
    await service.apply([display])
    assert egresses(published[-1])["by-ref"] == "http://b:2/"  # what the ref resolves to moved: followed
    assert builds.builds == before + 1  # only the Trigger whose subscriber is a ref was built again
    await service.apply([{**manifests.broker("b", "big"), "spec": {"delivery": {"retry": 7}}}])
    assert {e.egress_config.retry for r in published[-1].resources for e in r.egresses} == {7}
