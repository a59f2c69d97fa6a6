"""Sequence and Parallel on every backend, through the control API and the HTTP ingress, with real HTTP
steps, filters and sinks (tests/support/functions.py).

The flows name no channelTemplate: the default follows the backend Nerve runs on (InMemoryChannel,
KafkaChannel, NatsJetStreamChannel), so each flow lands on the backend under test.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import nats
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from core.events import Event
from tests.support import functions
from tests.support.receiver import Answer, Receiver, Script
from tests.support.stack import Stack, event, eventually

FLOWS = "flows.knative.dev/v1"


class Receivers:
    def __init__(self) -> None:
        self.started: list[Receiver] = []

    async def __call__(self, script: Script | None = None) -> Receiver:
        receiver = Receiver(script)
        await receiver.start()
        self.started.append(receiver)
        return receiver


@pytest.fixture
async def receivers() -> AsyncIterator[Receivers]:
    r = Receivers()
    yield r
    for receiver in r.started:
        await receiver.stop()


@pytest.fixture
def namespace() -> str:
    """A namespace of the test's own: Kafka and NATS outlive a test, and topic names carry the namespace."""
    return f"flows{uuid.uuid4().hex[:8]}"


def sequence(name: str, namespace: str, steps: list[str], reply: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"steps": [{"uri": url} for url in steps]}
    if reply is not None:
        spec["reply"] = {"uri": reply}
    return {"apiVersion": FLOWS, "kind": "Sequence", "metadata": {"name": name, "namespace": namespace}, "spec": spec}


async def ready(stack: Stack, kind: str, namespace: str, name: str, timeout: float = 30.0) -> dict[str, Any]:
    found: dict[str, Any] = {}

    async def is_ready() -> bool:
        found.clear()
        found.update(await stack.get(kind, namespace, name))
        return any(c.get("type") == "Ready" and c.get("status") == "True"
                   for c in found.get("status", {}).get("conditions", []))

    try:
        await eventually(is_ready, timeout=timeout)
    except AssertionError:
        raise AssertionError(f"{kind} {namespace}/{name} not Ready: {found.get('status')}") from None
    return found


async def send(stack: Stack, url: str, e: Event) -> None:
    path = url.removeprefix(stack.ingress)
    assert path != url, f"{url} is not on the ingress {stack.ingress}"
    assert await stack.send(path, e) == 202


def data(text: str) -> bytes:
    return json.dumps({"message": text}).encode()


async def test_a_sequence_of_three_appenders_reaches_its_reply_once_with_the_original_type(
        stack: Stack, receivers: Receivers, namespace: str) -> None:
    steps = [await receivers(functions.appender(f"-step{i}")) for i in (1, 2, 3)]
    sink = await receivers()
    await stack.apply(sequence("seq", namespace, [s.url for s in steps], sink.url))
    seq = await ready(stack, "sequences", namespace, "seq")
    assert [s["channel"]["name"] for s in seq["status"]["channelStatuses"]] == [
        "seq-kn-sequence-0", "seq-kn-sequence-1", "seq-kn-sequence-2"]
    assert seq["status"]["address"]["url"].endswith(f"/channels/{namespace}/seq-kn-sequence-0")

    await send(stack, seq["status"]["address"]["url"], event("e1", type_="dev.nerve.flow", data=data("start")))
    [got] = await sink.wait_for(1)
    await sink.settle()
    assert len(sink.events) == 1
    assert json.loads(got.data or b"") == {"message": "start-step1-step2-step3"}
    assert (got.type, got.source, got.id) == ("dev.nerve.flow", "/test", "e1")
    # Each step saw the event once, as the step before it had answered.
    assert [json.loads(s.events[0].data or b"")["message"] for s in steps] == ["start", "start-step1",
                                                                                "start-step1-step2"]
    assert [len(s.events) for s in steps] == [1, 1, 1]


async def test_a_step_answering_without_an_event_ends_the_flow(
        stack: Stack, receivers: Receivers, namespace: str) -> None:
    first = await receivers(functions.appender("-step1"))
    swallow = await receivers(lambda _, __: Answer(202))
    last = await receivers(functions.appender("-step3"))
    sink = await receivers()
    await stack.apply(sequence("ends", namespace, [first.url, swallow.url, last.url], sink.url))
    seq = await ready(stack, "sequences", namespace, "ends")
    await send(stack, seq["status"]["address"]["url"], event("e1", data=data("start")))
    await swallow.wait_for(1)
    await sink.settle(0.5)
    assert last.events == [] and sink.events == []


async def test_a_parallel_delivers_only_what_a_filter_lets_through(
        stack: Stack, receivers: Receivers, namespace: str) -> None:
    echo = await receivers(functions.passes(lambda _: True))
    block = await receivers(functions.passes(lambda _: False))
    branch1 = await receivers(functions.transformer({"message": "from branch 1"}))
    branch2 = await receivers(functions.transformer({"message": "from branch 2"}))
    sink = await receivers()
    await stack.apply({
        "apiVersion": FLOWS, "kind": "Parallel", "metadata": {"name": "par", "namespace": namespace},
        "spec": {
            "branches": [{"filter": {"uri": echo.url}, "subscriber": {"uri": branch1.url}},
                         {"filter": {"uri": block.url}, "subscriber": {"uri": branch2.url}}],
            "reply": {"uri": sink.url},
        },
    })
    par = await ready(stack, "parallels", namespace, "par")
    assert par["status"]["ingressChannelStatus"]["channel"]["name"] == "par-kn-parallel"
    assert [b["subscriberSubscriptionStatus"]["ready"]["status"] for b in par["status"]["branchStatuses"]] == [
        "True", "True"]

    await send(stack, par["status"]["address"]["url"], event("e1", type_="dev.nerve.parallel", data=data("in")))
    [got] = await sink.wait_for(1)
    await block.wait_for(1)
    await sink.settle(0.5)
    assert len(sink.events) == 1
    assert json.loads(got.data or b"") == {"message": "from branch 1"}
    assert (got.id, got.type) == ("e1", "dev.nerve.parallel")
    assert branch2.events == []


async def test_a_branch_without_filter_takes_every_event_and_its_own_reply_wins(
        stack: Stack, receivers: Receivers, namespace: str) -> None:
    plain = await receivers(functions.transformer({"message": "plain"}))
    own_reply, shared_reply = await receivers(), await receivers()
    await stack.apply({
        "apiVersion": FLOWS, "kind": "Parallel", "metadata": {"name": "nofilter", "namespace": namespace},
        "spec": {"branches": [{"subscriber": {"uri": plain.url}, "reply": {"uri": own_reply.url}}],
                 "reply": {"uri": shared_reply.url}},
    })
    par = await ready(stack, "parallels", namespace, "nofilter")
    for i in range(3):
        await send(stack, par["status"]["address"]["url"], event(f"e{i}", data=data("in")))
    await own_reply.wait_for(3)
    await own_reply.settle()
    assert sorted(own_reply.ids) == ["e0", "e1", "e2"]
    assert {json.loads(e.data or b"")["message"] for e in own_reply.events} == {"plain"}
    assert shared_reply.events == []


async def _topics(stack: Stack) -> set[str]:
    settings = stack.nerve.settings
    if settings.backend == "kafka":
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
        await admin.start()
        try:
            return set(await admin.list_topics())
        finally:
            await admin.close()
    if settings.backend == "nats":
        nc = await nats.connect(settings.nats_url)
        try:
            return {info.config.name or "" for info in await nc.jetstream().streams_info()}
        finally:
            await nc.close()
    return set()


async def _children(stack: Stack, namespace: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for kind in ("subscriptions", "inmemorychannels", "kafkachannels", "natsjetstreamchannels"):
        url = f"{stack.api}/api/v1/resources/{kind}"
        async with stack.session.get(url, params={"namespace": namespace}) as response:
            items = (await response.json()).get("items", [])
        if items:
            found[kind] = sorted(i["metadata"]["name"] for i in items)
    return found


async def test_removing_and_adding_steps_and_deleting_the_sequence_keep_its_children_and_topics_in_step(
        stack: Stack, receivers: Receivers, namespace: str) -> None:
    steps = [await receivers(functions.appender(f"-{i}")) for i in range(3)]
    sink = await receivers()
    await stack.apply(sequence("gone", namespace, [s.url for s in steps], sink.url))
    await ready(stack, "sequences", namespace, "gone")
    children = await _children(stack, namespace)
    [channel_kind] = [k for k in children if k != "subscriptions"]
    names = [f"gone-kn-sequence-{i}" for i in range(3)]
    assert children == {"subscriptions": names, channel_kind: names}
    topics = {t for t in await _topics(stack) if namespace in t}
    if stack.nerve.settings.backend != "memory":
        assert len(topics) == 3, topics

    # Two steps now: the third channel and Subscription go, the second step replies to the sink.
    await stack.apply(sequence("gone", namespace, [s.url for s in steps[:2]], sink.url))
    await eventually(lambda: _fewer(stack, namespace, channel_kind), timeout=30)
    seq = await ready(stack, "sequences", namespace, "gone")
    assert len(seq["status"]["subscriptionStatuses"]) == 2
    await send(stack, seq["status"]["address"]["url"], event("e1", data=data("s")))
    [got] = await sink.wait_for(1)
    assert json.loads(got.data or b"") == {"message": "s-0-1"}

    # A step added back: the second step now replies to the new channel, the third to the sink.
    await stack.apply(sequence("gone", namespace, [s.url for s in steps], sink.url))
    seq = await ready(stack, "sequences", namespace, "gone")
    assert len(seq["status"]["channelStatuses"]) == 3
    await send(stack, seq["status"]["address"]["url"], event("e2", data=data("s")))
    await sink.wait_for(2)
    assert json.loads(sink.events[1].data or b"") == {"message": "s-0-1-2"}

    await stack.delete("sequences", namespace, "gone")

    async def all_gone() -> bool:
        return await _children(stack, namespace) == {} and \
            not {t for t in await _topics(stack) if namespace in t}

    await eventually(all_gone, timeout=30)


async def _fewer(stack: Stack, namespace: str, channel_kind: str) -> bool:
    names = [f"gone-kn-sequence-{i}" for i in range(2)]
    return await _children(stack, namespace) == {"subscriptions": names, channel_kind: names}


async def test_a_child_name_held_by_another_object_is_reported_and_left_alone(
        stack: Stack, receivers: Receivers, namespace: str) -> None:
    sink = await receivers()
    theirs = {"apiVersion": "messaging.knative.dev/v1", "kind": "InMemoryChannel",
              "metadata": {"name": "taken-kn-sequence-0", "namespace": namespace}}
    manifest = sequence("taken", namespace, [sink.url])
    manifest["spec"]["channelTemplate"] = {"apiVersion": "messaging.knative.dev/v1", "kind": "InMemoryChannel"}
    await stack.apply(theirs, manifest)

    async def reported() -> bool:
        seq = await stack.get("sequences", namespace, "taken")
        return any(c["type"] == "Ready" and c.get("reason") == "NotOwned"
                   for c in seq.get("status", {}).get("conditions", []))

    await eventually(reported, timeout=20)
    seq = await stack.get("sequences", namespace, "taken")
    ready_condition = next(c for c in seq["status"]["conditions"] if c["type"] == "Ready")
    assert ready_condition["status"] == "False"
    assert ready_condition["message"] == (f"InMemoryChannel {namespace}/taken-kn-sequence-0 already exists and is "
                                          "not owned by Sequence taken; delete it or rename the Sequence")
    channel = await stack.get("inmemorychannels", namespace, "taken-kn-sequence-0")
    assert "ownerReferences" not in channel["metadata"]


async def test_a_new_channel_template_replaces_the_channels_and_the_flow_still_runs(
        stack: Stack, receivers: Receivers, namespace: str) -> None:
    step = await receivers(functions.appender("-a"))
    sink = await receivers()
    manifest = sequence("moves", namespace, [step.url], sink.url)
    manifest["spec"]["channelTemplate"] = {"apiVersion": "messaging.knative.dev/v1", "kind": "InMemoryChannel"}
    await stack.apply(manifest)
    await ready(stack, "sequences", namespace, "moves")
    # Without a template the Sequence gets the backend's channel kind (for Kafka and NATS another kind):
    # the Subscription's channel is immutable, so it is re-created on the new channel.
    del manifest["spec"]["channelTemplate"]
    await stack.apply(manifest)
    kind = (await stack.get("sequences", namespace, "moves"))["spec"]["channelTemplate"]["kind"]

    async def moved() -> bool:
        seq = await stack.get("sequences", namespace, "moves")
        statuses = seq.get("status", {}).get("channelStatuses", [])
        sub = await stack.get("subscriptions", namespace, "moves-kn-sequence-0")
        return [s["channel"]["kind"] for s in statuses] == [kind] and \
            sub.get("spec", {}).get("channel", {}).get("kind") == kind and \
            (await _children(stack, namespace)).keys() == {"subscriptions", f"{kind.lower()}s"}

    await eventually(moved, timeout=30)
    seq = await ready(stack, "sequences", namespace, "moves")
    await send(stack, seq["status"]["address"]["url"], event("e1", data=data("x")))
    [got] = await sink.wait_for(1)
    assert json.loads(got.data or b"") == {"message": "x-a"}
