"""Registration by sources, as a user sees it: a PingSource whose sink is a Broker registers a Ready
EventType referencing that Broker (Knative's `SendsEventsWithEventTypes`, behaviour 68), owned by the
source; switching the sink to a URI or deleting the source removes it."""

from __future__ import annotations

from typing import Any

import yaml

from tests.integration.test_cli import nerve
from tests.support.receiver import Receiver
from tests.support.stack import Stack, eventually

BROKER = {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "metadata": {"name": "default",
                                                                                  "namespace": "default"}}


def _ping(sink: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "sources.knative.dev/v1", "kind": "PingSource",
            "metadata": {"name": "heartbeat", "namespace": "default"},
            "spec": {"schedule": "* * * * * *", "data": '{"message": "hello"}', "contentType": "application/json",
                     "sink": sink}}


async def _eventtypes(stack: Stack) -> list[dict[str, Any]]:
    async with stack.session.get(f"{stack.api}/api/v1/resources/eventtypes", params={"namespace": "default"}) as r:
        items: list[dict[str, Any]] = (await r.json())["items"]
        return items


def _ready(et: dict[str, Any]) -> str:
    return next((c["status"] for c in (et.get("status") or {}).get("conditions", []) if c["type"] == "Ready"), "")


async def test_a_pingsource_to_a_broker_registers_a_ready_eventtype_owned_by_it(
        stack: Stack, receiver: Receiver) -> None:
    to_broker = {"ref": {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "name": "default"}}
    await stack.apply(BROKER, _ping(to_broker))
    source = await stack.get("pingsources", "default", "heartbeat")

    async def registered() -> bool:
        items = await _eventtypes(stack)
        return len(items) == 1 and _ready(items[0]) == "True"

    await eventually(registered, timeout=10)
    [et] = await _eventtypes(stack)
    attributes = {a["name"]: a.get("value") for a in et["spec"]["attributes"]}
    assert attributes["type"] == "dev.knative.sources.ping"
    assert attributes["source"] == "/apis/v1/namespaces/default/pingsources/heartbeat"
    assert et["spec"]["reference"] == {**to_broker["ref"], "namespace": "default"}
    assert et["metadata"]["labels"]["eventing.knative.dev/sourceName"] == "heartbeat"
    assert et["metadata"]["ownerReferences"][0]["uid"] == source["metadata"]["uid"]
    assert len(et["metadata"]["name"]) == 32

    # From the registry to a Trigger: the one `nerve describe` prints receives the source's ticks.
    code, out, err = await nerve(stack, "describe", "eventtype", et["metadata"]["name"])
    assert code == 0, err
    trigger = yaml.safe_load(out[out.index("\n---\n") + 5:])
    trigger["spec"]["subscriber"] = {"uri": receiver.url}
    await stack.apply(trigger)
    await eventually(lambda: len(receiver.received) >= 1, timeout=10)
    assert receiver.events[0].type == "dev.knative.sources.ping"

    # The sink becomes a URI: nothing to consume at in the registry any more.
    await stack.apply(_ping({"uri": receiver.url}))
    await eventually(lambda: _none(stack), timeout=10)
    # Back to the Broker, then the source goes: its EventType goes with it.
    await stack.apply(_ping(to_broker))
    await eventually(registered, timeout=10)
    await stack.delete("pingsources", "default", "heartbeat")
    await eventually(lambda: _none(stack), timeout=10)


async def _none(stack: Stack) -> bool:
    return await _eventtypes(stack) == []


async def test_an_apiserversource_to_a_broker_registers_its_three_types(stack: Stack) -> None:
    await stack.apply(BROKER, {
        "apiVersion": "sources.knative.dev/v1", "kind": "ApiServerSource",
        "metadata": {"name": "watcher", "namespace": "default"},
        "spec": {"mode": "Reference", "resources": [{"apiVersion": "v1", "kind": "ConfigMap"}],
                 "sink": {"ref": {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "name": "default"}}}})

    async def registered() -> bool:
        items = await _eventtypes(stack)
        return len(items) == 3 and all(_ready(et) == "True" for et in items)

    await eventually(registered, timeout=10)
    types = sorted(next(a["value"] for a in et["spec"]["attributes"] if a["name"] == "type")
                   for et in await _eventtypes(stack))
    assert types == ["dev.knative.apiserver.ref.add", "dev.knative.apiserver.ref.delete",
                     "dev.knative.apiserver.ref.update"]
    assert {et["spec"]["reference"]["name"] for et in await _eventtypes(stack)} == {"default"}
    await stack.delete("apiserversources", "default", "watcher")
    await eventually(lambda: _none(stack), timeout=10)
