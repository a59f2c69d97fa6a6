"""The EventType registry as a user meets it: the registry seed's YAML through `nerve apply` / `nerve get
eventtypes` / `nerve describe eventtype`, and EventType auto-create on and off with real events and a real
subscriber (a reply from a Trigger's subscriber)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.events import to_binary
from core.eventtypes import EventTypeSettings
from tests.integration.test_cli import nerve
from tests.support.receiver import Answer, Receiver
from tests.support.stack import Stack, event, eventually, running_stack

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "eventtype-registry"

# Two of the seed's EventTypes exactly as the seed prints them, `owner:` placeholder included.
SEED_AS_WRITTEN = """
apiVersion: eventing.knative.dev/v1alpha1
kind: EventType
metadata:
  generateName: dev.knative.source.github.push-
  namespace: default
  owner: # Owned by github-source-sample
spec:
  type: dev.knative.source.github.push
  source: github.com
  broker: default
"""
V1BETA3_WITHOUT_ID = """
apiVersion: eventing.knative.dev/v1beta3
kind: EventType
metadata: {name: no-id, namespace: default}
spec:
  reference: {apiVersion: eventing.knative.dev/v1, kind: Broker, name: default}
  attributes:
  - {name: type, value: com.example.x, required: true}
  - {name: source, value: /x, required: true}
  - {name: specversion, required: true}
"""
DEV_BROKER = """
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata:
  name: dev
  namespace: default
  annotations: {eventing.knative.dev/broker.class: %s}
"""


def _registry(out: str) -> dict[str, tuple[str, str]]:
    """`nerve get eventtypes` rows by name: (READY, REASON) — the two last columns."""
    lines = out.splitlines()
    header = lines[0]
    ready_at = header.index("READY")
    rows = {}
    for line in lines[1:]:
        ready, _, reason = line[ready_at:].partition(" ")
        rows[line.split()[0]] = (ready, reason.strip())
    return rows


async def _get_eventtypes(stack: Stack) -> str:
    code, out, err = await nerve(stack, "get", "eventtypes", "-n", "default")
    assert code == 0, err
    return out


async def test_the_registry_seed_lists_ready_and_not_ready_eventtypes(stack: Stack) -> None:
    code, out, err = await nerve(stack, "apply", "-f", str(EXAMPLES))
    assert code == 0, err
    applied = out.splitlines()
    assert "eventtype.eventing.knative.dev/com.github.pullrequest created" in applied
    assert "eventtype.eventing.knative.dev/org.bitbucket.repofork created" in applied
    generated = [line.split()[0].split("/")[1] for line in applied if "github.push-" in line or "pullrequest-" in line]
    assert len(generated) == 2 and all(len(n.rpartition("-")[2]) == 5 for n in generated), applied
    assert "trigger.eventing.knative.dev/my-service-trigger created" in applied

    out = await _get_eventtypes(stack)
    assert out.splitlines()[0].split() == ["NAME", "TYPE", "SOURCE", "SCHEMA", "REFERENCE", "DESCRIPTION", "READY",
                                           "REASON"]
    rows = _registry(out)
    assert rows["com.github.pullrequest"] == ("True", "")
    assert all(rows[name] == ("True", "") for name in generated)
    assert rows["org.bitbucket.repofork"] == ("False", "ResourceDoesNotExist")
    line = next(li for li in out.splitlines() if li.startswith("com.github.pullrequest "))
    assert line.split()[1:5] == ["com.github.pull_request", "github.com", "//github.com/schemas/pull_request",
                                 "default"]
    assert "GitHub pull request" in line

    # The Broker dev appears but is not Ready: the seed's BrokerIsNotReady; once a good one replaces it, Ready.
    code, _, err = await nerve(stack, "apply", "-f", "-", stdin=DEV_BROKER % "NoSuchBrokerClass")
    assert code == 0, err
    assert _registry(await _get_eventtypes(stack))["org.bitbucket.repofork"] == ("False", "BrokerIsNotReady")
    assert (await nerve(stack, "delete", "broker", "dev"))[0] == 0
    code, _, err = await nerve(stack, "apply", "-f", "-", stdin=DEV_BROKER % "MTChannelBasedBroker")
    assert code == 0, err
    assert _registry(await _get_eventtypes(stack))["org.bitbucket.repofork"] == ("True", "")

    # The seed's v1alpha1 Trigger is a v1 Trigger on the Broker default filtering on exactly its pair.
    trigger = await stack.get("triggers", "default", "my-service-trigger")
    assert trigger["apiVersion"] == "eventing.knative.dev/v1"
    assert trigger["spec"]["filter"] == {"attributes": {"type": "dev.knative.source.github.push",
                                                        "source": "github.com"}}


async def test_the_seeds_placeholder_owner_is_a_warning_and_the_name_is_generated(stack: Stack) -> None:
    for _ in range(2):  # each apply of a generateName creates another, as `kubectl create` does
        code, out, err = await nerve(stack, "apply", "-f", "-", stdin=SEED_AS_WRITTEN)
        assert code == 0, err
        assert out.startswith("eventtype.eventing.knative.dev/dev.knative.source.github.push-")
        assert 'unknown field "metadata.owner"' in err
    assert len((await _get_eventtypes(stack)).splitlines()) == 3


async def test_a_v1beta3_eventtype_without_id_is_refused_naming_the_field(stack: Stack) -> None:
    code, out, err = await nerve(stack, "apply", "-f", "-", stdin=V1BETA3_WITHOUT_ID)
    assert code == 2, (out, err)
    assert "spec.attributes" in err and "missing field(s): id" in err
    code, _, err = await nerve(stack, "get", "eventtypes", "-n", "default")
    assert "No resources found" in err


async def test_describe_prints_a_trigger_that_receives_exactly_that_type_and_source(
        stack: Stack, receiver: Receiver) -> None:
    code, _, err = await nerve(stack, "apply", "-f", str(EXAMPLES / "00-broker.yaml"),
                               "-f", str(EXAMPLES / "01-eventtypes.yaml"))
    assert code == 0, err
    code, out, err = await nerve(stack, "describe", "eventtype", "com.github.pullrequest", "-n", "default")
    assert code == 0, err
    assert "Kind:         EventType (eventing.knative.dev/v1beta3)" in out
    manifest = yaml.safe_load(out[out.index("\n---\n") + 5:])
    assert manifest["kind"] == "Trigger" and manifest["spec"]["broker"] == "default"
    code, _, err = await nerve(stack, "apply", "-f", "-", stdin=yaml.safe_dump(manifest))
    assert code == 2 and "spec.subscriber.ref.name" in err  # the placeholder must be filled in first
    manifest["spec"]["subscriber"] = {"uri": receiver.url}
    code, _, err = await nerve(stack, "apply", "-f", "-", stdin=yaml.safe_dump(manifest))
    assert code == 0, err
    path = "/default/default"
    sent = [("wanted", "com.github.pull_request", "github.com"), ("other-type", "com.github.push", "github.com"),
            ("other-source", "com.github.pull_request", "gitlab.com"), ("wanted-2", "com.github.pull_request",
                                                                        "github.com")]
    for id_, type_, source in sent:
        assert await stack.send(path, event(id_, type_=type_, source=source)) == 202
    await eventually(lambda: len(receiver.ids) >= 2)
    await stack.send(path, event("last", type_="com.github.pull_request", source="github.com"))
    await eventually(lambda: "last" in receiver.ids)
    assert receiver.ids == ["wanted", "wanted-2", "last"]


# ------------------------------------------------------------------------------ auto-create


@pytest.fixture
async def auto_stack(tmp_path: Path) -> AsyncIterator[Stack]:
    async with running_stack(tmp_path, eventtypes=EventTypeSettings(eventtype_auto_create=True)) as s:
        yield s


async def _eventtypes(stack: Stack, namespace: str = "default") -> list[dict[str, Any]]:
    async with stack.session.get(f"{stack.api}/api/v1/resources/eventtypes", params={"namespace": namespace}) as r:
        assert r.status == 200
        items: list[dict[str, Any]] = (await r.json())["items"]
        return items


def _attrs(et: dict[str, Any]) -> dict[str, str]:
    return {a["name"]: a.get("value", "") for a in et["spec"]["attributes"]}


BROKER = {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "metadata": {"name": "default",
                                                                                  "namespace": "default"}}
CHANNEL = {"apiVersion": "messaging.knative.dev/v1", "kind": "InMemoryChannel",
           "metadata": {"name": "orders", "namespace": "default"}}


async def test_auto_create_off_registers_nothing(stack: Stack, receiver: Receiver) -> None:
    await stack.apply(BROKER, CHANNEL)
    assert await stack.send("/default/default", event(1, type_="com.example.a", source="/a")) == 202
    assert await stack.send("/channels/default/orders", event(2, type_="com.example.b", source="/b")) == 202
    await stack.nerve.service.reconciler.reconcile()  # type: ignore[union-attr]
    assert await _eventtypes(stack) == []
    assert stack.nerve.auto_create is None


async def test_auto_create_registers_what_a_broker_and_a_channel_accept(auto_stack: Stack) -> None:
    stack = auto_stack
    await stack.apply(BROKER, CHANNEL)
    broker = await stack.get("brokers", "default", "default")
    for i in range(3):  # a repeated pair is one EventType
        assert await stack.send("/default/default", event(i, type_="com.example.a", source="/a",
                                                          dataschema="https://schemas/a")) == 202
    assert await stack.send("/channels/default/orders", event(9, type_="com.example.b", source="/b")) == 202
    await eventually(lambda: _count(stack, 2), timeout=10)
    by_ref = {et["spec"]["reference"]["kind"]: et for et in await _eventtypes(stack)}
    at_broker, at_channel = by_ref["Broker"], by_ref["InMemoryChannel"]
    assert at_broker["metadata"]["name"].startswith("et-default-") and len(at_broker["metadata"]["name"]) == 43
    assert _attrs(at_broker) == {"type": "com.example.a", "source": "/a", "schemadata": "https://schemas/a",
                                 "specversion": "1.0", "id": ""}
    assert all(a["required"] for a in at_broker["spec"]["attributes"])
    assert at_broker["spec"]["description"] == "Event Type auto-created by controller"
    assert at_broker["metadata"]["ownerReferences"][0]["uid"] == broker["metadata"]["uid"]
    assert _ready(at_broker) == "True"
    assert at_channel["spec"]["reference"]["name"] == "orders" and _attrs(at_channel)["type"] == "com.example.b"
    # Owned by the Broker: deleted with it.
    await stack.delete("brokers", "default", "default")
    await eventually(lambda: _count(stack, 1), timeout=10)


async def test_a_reply_from_a_trigger_subscriber_registers_an_eventtype_for_the_trigger(auto_stack: Stack) -> None:
    stack = auto_stack
    reply = event("r1", type_="com.example.reply", source="/replier", data=b'{"ok": true}')
    headers, body = to_binary(reply)
    replier = Receiver(lambda i, e: Answer(200, headers, body) if e.type == "com.example.asked" else Answer(202))
    await replier.start()
    try:
        await stack.apply(BROKER, {
            "apiVersion": "eventing.knative.dev/v1", "kind": "Trigger",
            "metadata": {"name": "replier", "namespace": "default"},
            "spec": {"broker": "default", "filter": {"attributes": {"type": "com.example.asked"}},
                     "subscriber": {"uri": replier.url}}})
        trigger = await stack.get("triggers", "default", "replier")
        assert await stack.send("/default/default", event(1, type_="com.example.asked", source="/asker")) == 202
        await eventually(lambda: _count(stack, 2), timeout=10)
    finally:
        await replier.stop()
    by_ref = {et["spec"]["reference"]["kind"]: et for et in await _eventtypes(stack)}
    at_trigger = by_ref["Trigger"]
    assert at_trigger["spec"]["reference"] == {"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger",
                                               "name": "replier", "namespace": "default"}
    assert _attrs(at_trigger)["type"] == "com.example.reply" and _attrs(at_trigger)["source"] == "/replier"
    assert at_trigger["metadata"]["ownerReferences"][0]["uid"] == trigger["metadata"]["uid"]
    assert at_trigger["metadata"]["name"].startswith("et-replier-")
    assert _attrs(by_ref["Broker"])["type"] == "com.example.asked"


async def _count(stack: Stack, n: int) -> bool:
    """n EventTypes, each reconciled once (with a status), are there."""
    items = await _eventtypes(stack)
    return len(items) == n and all(_ready(et) for et in items)


def _ready(et: dict[str, Any]) -> str:
    return next((c["status"] for c in (et.get("status") or {}).get("conditions", []) if c["type"] == "Ready"), "")


async def test_a_reply_from_a_subscription_subscriber_registers_an_eventtype_for_the_subscription(
        auto_stack: Stack, receiver: Receiver) -> None:
    stack = auto_stack
    headers, body = to_binary(event("r1", type_="com.example.reply", source="/replier"))
    replier = Receiver(lambda i, e: Answer(200, headers, body))
    await replier.start()
    try:
        await stack.apply(CHANNEL, {
            "apiVersion": "messaging.knative.dev/v1", "kind": "Subscription",
            "metadata": {"name": "sub", "namespace": "default"},
            "spec": {"channel": {"apiVersion": "messaging.knative.dev/v1", "kind": "InMemoryChannel",
                                 "name": "orders"},
                     "subscriber": {"uri": replier.url}, "reply": {"uri": receiver.url}}})
        subscription = await stack.get("subscriptions", "default", "sub")
        assert await stack.send("/channels/default/orders", event(1, type_="com.example.asked")) == 202
        await eventually(lambda: receiver.ids == ["r1"])
        await eventually(lambda: _count(stack, 2), timeout=10)
    finally:
        await replier.stop()
    by_ref = {et["spec"]["reference"]["kind"]: et for et in await _eventtypes(stack)}
    assert _attrs(by_ref["InMemoryChannel"])["type"] == "com.example.asked"
    at_subscription = by_ref["Subscription"]
    assert at_subscription["spec"]["reference"] == {"apiVersion": "messaging.knative.dev/v1",
                                                    "kind": "Subscription", "name": "sub", "namespace": "default"}
    assert _attrs(at_subscription)["type"] == "com.example.reply"
    assert at_subscription["metadata"]["ownerReferences"][0]["uid"] == subscription["metadata"]["uid"]
