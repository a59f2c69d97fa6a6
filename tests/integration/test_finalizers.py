"""Deleting as Kubernetes does: finalizers clean the backend, also across a restart of control, and
owned objects go with their owner."""

from __future__ import annotations

import asyncio
import sys
import uuid
from pathlib import Path
from typing import Any

import nats
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from channels.nats import stream_name
from control.store.sqlite import SqliteStore
from tests.support.launchers import nats_launcher
from tests.support.manifests import BROKER, trigger
from tests.support.receiver import Receiver
from tests.support.stack import Stack, event, eventually, running_stack

CLEANUP = "nerve.dev/backend-cleanup"


def _ready(obj: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in obj["status"]["conditions"] if c["type"] == "Ready")


async def _status(stack: Stack, kind: str, namespace: str, name: str) -> int:
    async with stack.session.get(f"{stack.api}/api/v1/resources/{kind}/{namespace}/{name}") as r:
        await r.read()
        return r.status


async def test_reconciled_objects_carry_the_backend_cleanup_finalizer(stack: Stack, receiver: Receiver) -> None:
    await stack.apply(BROKER, trigger("t1", receiver.url))
    for kind, name in (("broker", "default"), ("trigger", "t1")):
        assert (await stack.get(kind, "ns1", name))["metadata"]["finalizers"] == [CLEANUP]
    # Re-applying the manifests (which name no finalizer) keeps it: it is the controller's.
    assert [r["outcome"] for r in await stack.apply(BROKER, trigger("t1", receiver.url))] == ["unchanged"] * 2
    changed = await stack.apply(trigger("t1", receiver.url, delivery={"retry": 2}))
    assert changed[0]["outcome"] == "configured"
    assert (await stack.get("trigger", "ns1", "t1"))["metadata"]["finalizers"] == [CLEANUP]


async def test_owned_objects_are_deleted_with_their_owner(stack: Stack, receiver: Receiver) -> None:
    await stack.apply(BROKER)
    owner = await stack.get("broker", "ns1", "default")
    ref = {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "name": "default",
           "uid": owner["metadata"]["uid"], "controller": True}
    owned_config = {"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "generated", "namespace": "ns1", "ownerReferences": [ref]},
                    "data": {"k": "v"}}
    owned_trigger = trigger("generated", receiver.url)
    owned_trigger["metadata"]["ownerReferences"] = [ref]
    not_owned = trigger("mine", receiver.url)
    await stack.apply(owned_config, owned_trigger, not_owned)
    assert _ready(await stack.get("trigger", "ns1", "generated"))["status"] == "True"
    await stack.delete("broker", "ns1", "default")
    assert await _status(stack, "broker", "ns1", "default") == 404
    assert await _status(stack, "configmap", "ns1", "generated") == 404
    assert await _status(stack, "trigger", "ns1", "generated") == 404
    assert _ready(await stack.get("trigger", "ns1", "mine"))["reason"] == "BrokerDoesNotExist"


async def test_applying_an_object_that_is_being_deleted_is_a_conflict(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        await stack.apply(BROKER)
    store = SqliteStore(tmp_path / "nerve.db")
    try:
        broker = await store.get("Broker", "ns1", "default")
        assert broker is not None
        # Another finalizer nobody removes keeps the Broker in its deleting state.
        broker["metadata"]["finalizers"] = ["example.dev/keep", CLEANUP]
        await store.update(broker)
        await store.delete("Broker", "ns1", "default")
    finally:
        await store.close()
    async with running_stack(tmp_path) as stack:
        deleting = await stack.get("broker", "ns1", "default")
        assert deleting["metadata"]["deletionTimestamp"]
        assert deleting["metadata"]["finalizers"] == ["example.dev/keep"]  # ours is done
        assert await stack.send("/ns1/default", event(1)) == 404
        async with stack.session.post(f"{stack.api}/api/v1/apply", json={"items": [BROKER]}) as r:
            assert r.status == 409
            assert "is being deleted" in (await r.json())["reason"]


def _backend_stack(backend: str, connection: str, tmp_path: Path, tag: str) -> Any:
    where = {"kafka_bootstrap": connection} if backend == "kafka" else {"nats_url": connection}
    return running_stack(tmp_path, backend=backend, topic_template=f"fin-{tag}-{{namespace}}-{{name}}",
                         consumer_group_template=f"fin-{tag}-{{namespace}}-{{name}}", **where)


async def _kafka_topics_and_groups(bootstrap: str) -> tuple[set[str], set[str]]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        topics = set(await admin.list_topics())
        groups = {g[0] for g in await admin.list_consumer_groups()}
    finally:
        await admin.close()
    return topics, groups


async def _nats_streams(url: str) -> set[str]:
    nc = await nats.connect(url)
    try:
        return {info.config.name or "" for info in await nc.jetstream().streams_info()}
    finally:
        await nc.close()


async def _backend_names(backend: str, connection: str) -> set[str]:
    if backend == "kafka":
        topics, groups = await _kafka_topics_and_groups(connection)
        return topics | groups
    return await _nats_streams(connection)


@pytest.mark.parametrize("backend", [pytest.param("kafka", marks=pytest.mark.kafka),
                                     pytest.param("nats", marks=pytest.mark.nats)])
async def test_a_broker_deleted_while_control_is_down_loses_its_topic_at_restart(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path, receiver: Receiver
) -> None:
    connection = str(request.getfixturevalue("kafka_bootstrap" if backend == "kafka" else "nats_url"))
    tag = uuid.uuid4().hex[:8]
    topic = f"fin-{tag}-ns1-default"
    async with _backend_stack(backend, connection, tmp_path, tag) as stack:
        await stack.apply(BROKER, trigger("t1", receiver.url))
        assert _ready(await stack.get("trigger", "ns1", "t1"))["status"] == "True"
        assert await stack.send("/ns1/default", event(1)) == 202
        await receiver.wait_for(1)
    names = await _backend_names(backend, connection)
    assert (topic if backend == "kafka" else stream_name(topic)) in names, names
    if backend == "kafka":
        assert f"fin-{tag}-ns1-t1" in names  # the Trigger's consumer group
    # While control is down, the objects are deleted in its store, as `kubectl delete` would against an
    # API server while the controller is away: they are only marked, their finalizer still pending.
    store = SqliteStore(tmp_path / "nerve.db")
    try:
        for kind, name in (("Trigger", "t1"), ("Broker", "default")):
            marked = await store.delete(kind, "ns1", name)
            assert marked is not None and marked["metadata"]["finalizers"] == [CLEANUP]
    finally:
        await store.close()
    assert (topic if backend == "kafka" else stream_name(topic)) in await _backend_names(backend, connection)
    async with _backend_stack(backend, connection, tmp_path, tag) as stack:
        assert await _status(stack, "broker", "ns1", "default") == 404
        assert await _status(stack, "trigger", "ns1", "t1") == 404
        assert await stack.send("/ns1/default", event(2)) == 404
    assert not any(tag in n for n in await _backend_names(backend, connection))


async def _nerve_get(stack: Stack, *args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).with_name("nerve")), "get", *args,
        env=stack.cli_env, stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    return out.decode()


@pytest.mark.nats
async def test_nerve_get_shows_a_broker_being_deleted_until_its_stream_is_gone(tmp_path: Path) -> None:
    launcher = nats_launcher()
    server = await asyncio.to_thread(launcher.start, tmp_path / "nats")
    try:
        async with running_stack(tmp_path / "nerve", backend="nats", nats_url=server.url,
                                 resync_seconds=0.5) as stack:
            await stack.apply(BROKER)
            assert await _nats_streams(server.url) == {stream_name("knative-broker.ns1.default")}
            await asyncio.to_thread(server.stop)
            await stack.delete("broker", "ns1", "default")  # answers; the clean-up waits for NATS
            deleting = await stack.get("broker", "ns1", "default")
            assert deleting["metadata"]["deletionTimestamp"]
            assert (_ready(deleting)["status"], _ready(deleting)["reason"]) == ("False", "Deleting")
            assert "NATS" in _ready(deleting)["message"]
            header, row = (await _nerve_get(stack, "brokers", "-n", "ns1")).strip().splitlines()
            assert header.split()[-1] == "REASON" and row.split()[0] == "default", (header, row)
            assert row.split()[-2:] == ["False", "Deleting"], row
            assert await stack.send("/ns1/default", event(1)) == 404
            server = await asyncio.to_thread(launcher.start, tmp_path / "nats", server.port)

            async def gone() -> bool:
                return await _status(stack, "broker", "ns1", "default") == 404

            await eventually(gone, timeout=30, interval=0.2)
        assert await _nats_streams(server.url) == set()
    finally:
        await asyncio.to_thread(server.stop)


async def test_a_document_repeated_in_one_apply_updates_what_the_first_wrote(stack: Stack, receiver: Receiver) -> None:
    results = await stack.apply(BROKER, trigger("t1", receiver.url), BROKER,
                                trigger("t1", receiver.url, delivery={"retry": 4}))
    assert [r["outcome"] for r in results] == ["created", "created", "unchanged", "configured"]
    t1 = await stack.get("trigger", "ns1", "t1")
    assert t1["spec"]["delivery"]["retry"] == 4
    assert _ready(t1)["status"] == "True"


@pytest.mark.kafka
async def test_a_kafka_broker_deleted_after_its_configmap_still_loses_its_topic(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    tag = uuid.uuid4().hex[:8]
    # No default cluster: only the ConfigMap names it, as `nerve delete -f dir/` then deletes it first.
    async with running_stack(tmp_path, topic_template=f"fin-{tag}-{{namespace}}-{{name}}") as stack:
        await stack.apply(f"""
apiVersion: v1
kind: ConfigMap
metadata: {{name: kafka-broker-config, namespace: ns1}}
data: {{bootstrap.servers: "{kafka_bootstrap}"}}
---
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {{name: k, namespace: ns1, annotations: {{eventing.knative.dev/broker.class: Kafka}}}}
spec:
  config: {{apiVersion: v1, kind: ConfigMap, name: kafka-broker-config}}
""")
        assert _ready(await stack.get("broker", "ns1", "k"))["status"] == "True"
        assert f"fin-{tag}-ns1-k" in (await _kafka_topics_and_groups(kafka_bootstrap))[0]
        await stack.delete("configmap", "ns1", "kafka-broker-config")
        await stack.delete("broker", "ns1", "k")
        assert await _status(stack, "broker", "ns1", "k") == 404
    assert f"fin-{tag}-ns1-k" not in (await _kafka_topics_and_groups(kafka_bootstrap))[0]
