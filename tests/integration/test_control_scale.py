"""A contract change touches only what changed: control with many Triggers on one Broker, in process
(SQLite store, memory backend), through ControlService.apply as `nerve apply` reaches it."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from channels.registry import BackendPool
from control.api.admission import AdmissionSettings
from control.api.broker import CLASS_ANNOTATION
from control.reconcilers.controller import Reconciler
from control.reconcilers.finalizers import BACKEND_CLEANUP
from control.service import ControlService
from control.settings import ControlSettings
from control.store.sqlite import SqliteStore
from core.contract import Contract
from core.errors import InvalidResource
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


async def revision(service: ControlService) -> int:
    return int((await service.store.list("Trigger")).resource_version)


async def test_a_new_trigger_is_two_writes_its_finalizer_there_from_the_first(
    control: tuple[ControlService, list[Contract]],
) -> None:
    service, published = control
    await service.apply([manifests.broker("b", "big"), *(trigger(i, broker="b") for i in range(3))])
    before = await revision(service)
    watch = service.store.watch("Trigger", "big", resource_version=str(before))
    try:
        await service.apply([trigger(3, broker="b")])
        assert await revision(service) == before + 2  # its creation, then its status
        added, modified = await anext(watch), await anext(watch)
    finally:
        await watch.aclose()
    # A watcher (an ApiServerSource, a controller) sees it created with the clean-up finalizer, then Ready.
    assert added.type == "ADDED" and added.object["metadata"]["finalizers"] == [BACKEND_CLEANUP]
    assert modified.type == "MODIFIED" and modified.object["metadata"]["finalizers"] == [BACKEND_CLEANUP]
    ready = [c for c in modified.object["status"]["conditions"] if c["type"] == "Ready"]
    assert ready[0]["status"] == "True"
    assert modified.object == await service.store.get("Trigger", "big", "t-0003")
    assert "t-0003" in egresses(published[-1])
    # Deleted, it is cleaned up and gone, as before.
    await service.delete("trigger", "big", "t-0003")
    assert await service.store.get("Trigger", "big", "t-0003") is None
    assert "t-0003" not in egresses(published[-1])


async def test_a_trigger_another_controller_serves_gets_no_finalizer_of_nerves(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "nerve.db")

    async def sink(contract: Contract) -> None:
        pass

    pool = BackendPool()
    # Next to Knative: Nerve serves only its NATS class, so a Trigger on an MTChannelBasedBroker is not its own.
    settings = ControlSettings(state_dir=tmp_path, broker_classes="NatsJetStreamBroker")
    reconciler = Reconciler(store, pool, settings, sink)
    service = ControlService(store, reconciler, AdmissionSettings("MTChannelBasedBroker"))
    try:
        await service.apply([manifests.broker("theirs", "big", **{CLASS_ANNOTATION: "MTChannelBasedBroker"}),
                             trigger(1, broker="theirs")])
        theirs = await store.get("Trigger", "big", "t-0001")
        assert theirs is not None and not theirs["metadata"].get("finalizers") and not theirs["status"]
        await service.delete("trigger", "big", "t-0001")
        assert await store.get("Trigger", "big", "t-0001") is None  # nothing holds it
    finally:
        await reconciler.stop()
        await pool.stop()
        await store.close()


async def test_the_garbage_collector_runs_again_after_an_apply_and_after_a_refused_one(
    control: tuple[ControlService, list[Contract]],
) -> None:
    service, _ = control
    await service.apply([manifests.broker("b", "big"), trigger(1, broker="b")])
    assert gc.isenabled()
    with pytest.raises(InvalidResource):
        await service.apply([{**trigger(2, broker="b"), "spec": {"broker": "b"}}])  # no subscriber
    assert gc.isenabled()


async def test_what_a_pass_shares_between_siblings_does_not_carry_one_triggers_change_to_another(
    control: tuple[ControlService, list[Contract]],
) -> None:
    # A pass builds the conditions of its plain Triggers once and hands each a copy, and gives the egresses of
    # one delivery one EgressConfig (resources/trigger.py `Shared`); the apply's creates return the objects
    # written. A later change to one Trigger (its status, a new generation, a deletion) stays its own.
    service, published = control
    await service.apply([manifests.broker("b", "big"), *(trigger(i, broker="b") for i in range(5))])

    async def listed() -> dict[str, dict[str, Any]]:
        return {t["metadata"]["name"]: t for t in await service.list_resources("triggers", "big")}

    def untimed(t: dict[str, Any]) -> list[dict[str, Any]]:
        return [{k: v for k, v in c.items() if k != "lastTransitionTime"} for c in t["status"]["conditions"]]

    before = await listed()
    assert all(untimed(t) == untimed(before["t-0000"]) for t in before.values())
    # Its status: written by someone else (as through the status subresource), then put back by the next pass.
    one = dict(before["t-0001"])
    one["status"] = {**one["status"], "conditions": [{"type": "Ready", "status": "False", "reason": "Poked"}]}
    await service.store.update_status(one)
    # A new generation: another subscriber and a delivery of its own.
    changed = trigger(2, broker="b", delivery={"retry": 9})
    changed["spec"]["subscriber"]["uri"] = "http://127.0.0.1:9/moved"
    await service.apply([changed])
    # A deletion.
    await service.delete("triggers", "big", "t-0003")
    await service.reconciler.reconcile()
    after = await listed()
    assert "t-0003" not in after or after["t-0003"]["metadata"].get("deletionTimestamp")
    for name in ("t-0000", "t-0004"):
        assert after[name]["status"] == before[name]["status"]
        assert after[name]["metadata"]["resourceVersion"] == before[name]["metadata"]["resourceVersion"]
    # Put back, stamped anew (its Ready went False and back): the same conditions but for their times.
    assert untimed(after["t-0001"]) == untimed(before["t-0001"])
    assert after["t-0001"]["status"]["conditions"] != before["t-0001"]["status"]["conditions"]
    assert after["t-0002"]["metadata"]["generation"] == 2
    assert after["t-0002"]["status"]["observedGeneration"] == 2
    assert after["t-0002"]["status"]["subscriberUri"] == "http://127.0.0.1:9/moved"
    by_name = {e.reference.name: e for r in published[-1].resources for e in r.egresses}
    assert by_name["t-0002"].egress_config.retry == 9
    assert {by_name[n].egress_config for n in ("t-0000", "t-0001", "t-0004")} == {by_name["t-0000"].egress_config}
    assert by_name["t-0000"].egress_config.retry != 9
    assert by_name["t-0000"].destination == "http://127.0.0.1:9/t/0"
