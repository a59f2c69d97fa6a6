"""Topic, stream and consumer-group names are injective (issue 9, defect 6).

`a/b-c` and `a-b/c` used to share `knative-broker-a-b-c`: events crossed between the namespaces and
deleting one Broker deleted the other's topic. Through the control API and the ingress, on each backend.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import nats
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from channels.nats import stream_name
from tests.support.launchers import backend_params
from tests.support.manifests import broker, trigger
from tests.support.receiver import Receiver
from tests.support.stack import Stack, event, running_stack

PAIR = (("a", "b-c"), ("a-b", "c"))


def _connection(request: pytest.FixtureRequest, backend: str) -> str:
    if backend == "memory":
        return ""
    return str(request.getfixturevalue("kafka_bootstrap" if backend == "kafka" else "nats_url"))


@asynccontextmanager
async def _stack(backend: str, connection: str, tmp_path: Path, template: str | None) -> AsyncIterator[Stack]:
    """A stack on `backend`; `template` None keeps the default topic and consumer-group templates."""
    templates = {} if template is None else {
        "topic_template": template, "consumer_group_template": template.replace("{namespace}", "g-{namespace}", 1)}
    async with running_stack(
        tmp_path, backend=backend, kafka_bootstrap=connection if backend == "kafka" else "",
        nats_url=connection if backend == "nats" else "", **templates,
    ) as s:
        yield s


def _condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in obj["status"]["conditions"] if c["type"] == kind)


async def _topics(backend: str, connection: str) -> set[str]:
    if backend == "kafka":
        admin = AIOKafkaAdminClient(bootstrap_servers=connection)
        await admin.start()
        try:
            return set(await admin.list_topics())
        finally:
            await admin.close()
    nc = await nats.connect(connection)
    try:
        return {info.config.name or "" for info in await nc.jetstream().streams_info()}
    finally:
        await nc.close()


async def _delete_topic(backend: str, connection: str, topic: str) -> None:
    if backend == "kafka":
        admin = AIOKafkaAdminClient(bootstrap_servers=connection)
        await admin.start()
        try:
            await admin.delete_topics([topic])
        finally:
            await admin.close()
        return
    nc = await nats.connect(connection)
    try:
        await nc.jetstream().delete_stream(stream_name(topic))
    finally:
        await nc.close()


@pytest.mark.parametrize("backend", backend_params("memory", "kafka"))
async def test_brokers_whose_names_join_alike_keep_their_events_and_topics_apart(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path,
) -> None:
    connection = _connection(request, backend)
    receivers = [Receiver(), Receiver()]
    urls = [await r.start() for r in receivers]
    try:
        # The default templates: they are what must be injective.
        async with _stack(backend, connection, tmp_path, None) as stack:
            for (ns, name), url in zip(PAIR, urls, strict=True):
                await stack.apply(broker(name, ns), trigger("t", url, namespace=ns, broker=name))
            topics = [(await stack.get("brokers", ns, name))["status"]["annotations"]["nerve.dev/topic"]
                      for ns, name in PAIR]
            assert topics[0] != topics[1]
            for ns, name in PAIR:
                assert await stack.send(f"/{ns}/{name}", event(f"to-{ns}")) == 202
            for i, (ns, _) in enumerate(PAIR):
                assert [e.attributes["id"] for e in await receivers[i].wait_for(1)] == [f"to-{ns}"]
            await stack.delete("broker", *PAIR[0])
            if backend == "kafka":
                remaining = await _topics(backend, connection)
                assert topics[1] in remaining and topics[0] not in remaining
            assert await stack.send(f"/{PAIR[1][0]}/{PAIR[1][1]}", event("after")) == 202
            await receivers[1].wait_for(2)
            assert [e.attributes["id"] for e in receivers[1].events] == ["to-a-b", "after"]
            assert [e.attributes["id"] for e in receivers[0].events] == ["to-a"]
    finally:
        for r in receivers:
            await r.stop()


async def test_a_template_that_joins_alike_leaves_the_second_broker_not_ready(
    tmp_path: Path, receiver: Receiver,
) -> None:
    async with _stack("memory", "", tmp_path, "{namespace}-{name}") as stack:
        await stack.apply(broker(*reversed(PAIR[0])), trigger("t", receiver.url, namespace="a", broker="b-c"))
        await stack.apply(broker(*reversed(PAIR[1])))
        first, second = [await stack.get("brokers", ns, name) for ns, name in PAIR]
        assert _condition(first, "Ready")["status"] == "True"
        ready = _condition(second, "Ready")
        assert (ready["status"], ready["reason"]) == ("False", "TopicConflict")
        assert "Broker a/b-c" in ready["message"]
        assert await stack.send("/a-b/c", event("stray")) != 202  # it never reaches a/b-c's Trigger
        # Deleting the Broker that does not hold the topic keeps the other's.
        await stack.delete("broker", "a-b", "c")
        assert await stack.send("/a/b-c", event("kept")) == 202
        assert [e.attributes["id"] for e in await receiver.wait_for(1)] == ["kept"]


async def test_a_group_template_that_joins_alike_leaves_the_second_trigger_not_ready(
    tmp_path: Path, receiver: Receiver,
) -> None:
    async with running_stack(tmp_path, consumer_group_template="{namespace}-{name}") as stack:
        await stack.apply(broker("default", "a"), broker("default", "a-b"),
                          trigger("b-c", receiver.url, namespace="a"))
        await stack.apply(trigger("c", receiver.url, namespace="a-b"))
        assert _condition(await stack.get("triggers", "a", "b-c"), "Ready")["status"] == "True"
        ready = _condition(await stack.get("triggers", "a-b", "c"), "Ready")
        assert (ready["status"], ready["reason"]) == ("False", "ConsumerGroupConflict")


@pytest.mark.parametrize("backend", [pytest.param("kafka", marks=pytest.mark.kafka),
                                     pytest.param("nats", marks=pytest.mark.nats)])
async def test_a_broker_whose_topic_vanished_never_answers_202_for_an_event_it_drops(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path, receiver: Receiver,
) -> None:
    connection = _connection(request, backend)
    template = f"t{uuid.uuid4().hex[:8]}.{{namespace}}.{{name}}"
    async with _stack(backend, connection, tmp_path, template) as stack:
        await stack.apply(broker("default", "ns1"), trigger("t", receiver.url))
        topic = (await stack.get("brokers", "ns1", "default"))["status"]["annotations"]["nerve.dev/topic"]
        await _delete_topic(backend, connection, topic)
        status = await stack.send("/ns1/default", event("after-delete"))
        if status != 503:  # a 202 is a promise: the event must then arrive (on a topic made again)
            assert status == 202
            assert [e.attributes["id"] for e in await receiver.wait_for(1, timeout=15)] == ["after-delete"]
