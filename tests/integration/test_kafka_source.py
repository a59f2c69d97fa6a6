"""KafkaSource: records written by any Kafka client reach the sink, as Knative's KafkaSource sends them.

The records are produced with a plain Kafka client (aiokafka), not through Nerve.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from tests.support.receiver import Receiver
from tests.support.stack import running_stack


def source(name: str, topic: str, bootstrap: str, sink: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "sources.knative.dev/v1beta1", "kind": "KafkaSource",
            "metadata": {"name": name, "namespace": "ns1"},
            "spec": {"bootstrapServers": [bootstrap], "topics": [topic], "sink": {"uri": sink}, **spec}}


async def _topic(bootstrap: str) -> str:
    name = f"user-topic-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()
    return name


async def test_plain_records_are_wrapped_and_cloudevents_pass_through(
    tmp_path: Path, kafka_bootstrap: str, receiver: Receiver
) -> None:
    topic = await _topic(kafka_bootstrap)
    async with running_stack(tmp_path) as stack:
        await stack.apply(source("orders", topic, kafka_bootstrap, receiver.url, initialOffset="earliest",
                                 ceOverrides={"extensions": {"team": "payments"}}))
        status = (await stack.get("kafkasource", "ns1", "orders"))["status"]
        assert status["sinkUri"] == receiver.url
        assert next(c for c in status["conditions"] if c["type"] == "Ready")["status"] == "True"
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
        await producer.start()
        try:
            plain = await (await producer.send(topic, value=b'{"total": 12}', key=b"order-7",
                                               headers=[("Content-Type", b"application/json"),
                                                        ("X-Trace-Id", b"abc")]))
            await producer.send_and_wait(topic, value=b"hello", headers=[
                ("ce_specversion", b"1.0"), ("ce_id", b"ce-1"), ("ce_source", b"/elsewhere"),
                ("ce_type", b"already.a.cloudevent"), ("content-type", b"text/plain")])
            structured = {"specversion": "1.0", "id": "ce-2", "source": "/s", "type": "structured.one",
                          "data": {"x": 1}}
            await producer.send_and_wait(topic, value=json.dumps(structured).encode(),
                                         headers=[("content-type", b"application/cloudevents+json")])
        finally:
            await producer.stop()
        await receiver.wait_for(3, timeout=30)
    by_type = {e.type: e for e in receiver.events}
    wrapped = by_type["dev.knative.kafka.event"]
    assert wrapped.attributes["source"] == f"/apis/v1/namespaces/ns1/kafkasources/orders#{topic}"
    assert wrapped.attributes["id"] == f"partition:0/offset:{plain.offset}"
    assert wrapped.attributes["subject"] == f"partition:0#{plain.offset}"
    assert wrapped.attributes["key"] == wrapped.attributes["partitionkey"] == "order-7"
    assert wrapped.attributes["kafkaheaderxtraceid"] == "abc"
    assert wrapped.attributes["datacontenttype"] == "application/json"
    assert wrapped.attributes["team"] == "payments"
    assert wrapped.data == b'{"total": 12}'
    passed = by_type["already.a.cloudevent"]
    assert {k: v for k, v in passed.attributes.items() if k != "team"} == {
        "specversion": "1.0", "id": "ce-1", "source": "/elsewhere", "type": "already.a.cloudevent",
        "datacontenttype": "text/plain"}
    assert passed.data == b"hello"
    assert json.loads(by_type["structured.one"].data or b"") == {"x": 1}


async def test_a_source_retries_and_dead_letters_like_a_trigger(tmp_path: Path, kafka_bootstrap: str) -> None:
    from tests.support.receiver import Answer

    failing, dls = Receiver(lambda i, e: Answer(500)), Receiver()
    await failing.start()
    await dls.start()
    topic = await _topic(kafka_bootstrap)
    try:
        async with running_stack(tmp_path) as stack:
            await stack.apply(source("retrying", topic, kafka_bootstrap, failing.url, delivery={
                "retry": 2, "backoffPolicy": "linear", "backoffDelay": "PT0.01S", "deadLetterSink": {"uri": dls.url}}))
            producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
            await producer.start()
            try:
                await producer.send_and_wait(topic, value=b"x")
            finally:
                await producer.stop()
            [dead] = await dls.wait_for(1, timeout=30)
        assert len(failing.received) == 3
        assert dead.attributes["knativeerrorcode"] == "500"
        assert dead.type == "dev.knative.kafka.event"
    finally:
        await failing.stop()
        await dls.stop()


async def test_nerve_get_kafkasources_shows_knatives_columns(tmp_path: Path, kafka_bootstrap: str) -> None:
    import asyncio
    import sys

    topic = await _topic(kafka_bootstrap)
    async with running_stack(tmp_path) as stack:
        await stack.apply(source("shown", topic, kafka_bootstrap, "http://127.0.0.1:9/sink"))
        proc = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).with_name("nerve")), "get", "kafkasources", "-n", "ns1",
            env=stack.cli_env, stdout=asyncio.subprocess.PIPE)
        out, _ = await proc.communicate()
    header, row = out.decode().strip().splitlines()
    assert header.split() == ["NAME", "TOPICS", "BOOTSTRAPSERVERS", "READY", "REASON", "AGE"]
    assert row.split()[:4] == ["shown", f'["{topic}"]', f'["{kafka_bootstrap}"]', "True"]
