"""Traces as an operator sees them in their backend: one trace from the producer through the ingress, the
Trigger and each attempt to the subscriber, on through a reply and a dead-letter sink.

The spans are collected by the OpenTelemetry SDK's in-memory exporter; the events travel through a real
embedded Nerve (HTTP ingress, memory backend, dispatcher) to real HTTP subscribers.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from control.reconcilers.resources.source import contract_source
from core import tracing
from core.delivery import Deliverer, Sender, pooled_session
from sources.emit import Emitter
from tests.support.manifests import broker, channel, quick_dead_letter, subscription, trigger
from tests.support.receiver import Answer, Receiver
from tests.support.stack import event, eventually, running_stack

PRODUCER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PRODUCER_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{PRODUCER_TRACE}-{PRODUCER_SPAN}-01"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracing.install([SimpleSpanProcessor(exporter)], service="nerve-test")
    yield exporter
    tracing.shutdown()


def _hex(value: int, width: int) -> str:
    return format(value, f"0{width}x")


def _by_name(exporter: InMemorySpanExporter) -> dict[str, list[ReadableSpan]]:
    found: dict[str, list[ReadableSpan]] = {}
    for span in exporter.get_finished_spans():
        found.setdefault(span.name, []).append(span)
    return found


def _has(span: ReadableSpan, expected: dict[str, object]) -> bool:
    attributes = dict(span.attributes or {})
    assert {k: attributes.get(k) for k in expected} == expected, attributes
    return True


def _parent(span: ReadableSpan) -> str:
    return _hex(span.parent.span_id, 16) if span.parent is not None else ""


def _id(span: ReadableSpan) -> str:
    assert span.context is not None
    return _hex(span.context.span_id, 16)


def _trace(span: ReadableSpan) -> str:
    assert span.context is not None
    return _hex(span.context.trace_id, 32)


async def _started(script: object = None) -> Receiver:
    receiver = Receiver(script)  # type: ignore[arg-type]
    await receiver.start()
    return receiver


async def test_one_trace_from_producer_to_subscriber_reply_and_dead_letter(
        tmp_path: Path, spans: InMemorySpanExporter) -> None:
    replying = await _started(lambda i, e: Answer(
        200, {"ce-specversion": "1.0", "ce-id": f"r{i}", "ce-source": "/echo", "ce-type": "reply"}) if
        e.type == "greeting" else Answer(202))
    answer_sink = await _started()
    failing = await _started(lambda i, e: Answer(500))
    dls = await _started()
    try:
        async with running_stack(tmp_path) as stack:
            await stack.apply(
                broker("default", "tr"),
                trigger("t1", replying.url, namespace="tr", filter={"attributes": {"type": "greeting"}}),
                trigger("t2", answer_sink.url, namespace="tr", filter={"attributes": {"type": "reply"}}),
                trigger("t3", failing.url, namespace="tr", filter={"attributes": {"type": "greeting"}},
                        delivery={**quick_dead_letter(dls.url), "retry": 1}))
            status = await stack.send("/tr/default", event("e1", type_="greeting", subject="hello"),
                                      {"traceparent": TRACEPARENT, "tracestate": "vendor=x"})
            assert status == 202
            await replying.wait_for(1)
            await answer_sink.wait_for(1)
            await dls.wait_for(1)
            await eventually(lambda: len(_by_name(spans).get("trigger:t3.tr", [])) == 1
                             and len(_by_name(spans).get("trigger:t2.tr", [])) == 1)
    finally:
        for r in (replying, answer_sink, failing, dls):
            await r.stop()

    named = _by_name(spans)
    [ingress] = [s for s in named["broker:default.tr"] if s.kind == SpanKind.SERVER]
    assert _trace(ingress) == PRODUCER_TRACE and _parent(ingress) == PRODUCER_SPAN
    assert _has(ingress, {
        "messaging.system": "knative", "messaging.destination.name": "broker:default.tr",
        "kn.broker.name": "default", "kn.broker.namespace": "tr", "cloudevents.id": "e1",
        "cloudevents.type": "greeting", "cloudevents.source": "/test", "cloudevents.specversion": "1.0",
        "cloudevents.subject": "hello", "cloudevents.datacontenttype": "application/json",
        "http.response.status_code": 202})

    [t1] = named["trigger:t1.tr"]
    assert t1.kind == SpanKind.CONSUMER
    assert _trace(t1) == PRODUCER_TRACE and _parent(t1) == _id(ingress)
    assert _has(t1, {
        "messaging.system": "knative", "messaging.destination.name": "trigger:t1.tr",
        "messaging.operation.name": "send", "kn.broker.name": "default", "kn.broker.namespace": "tr",
        "cloudevents.type": "greeting", "nerve.outcome": "delivered"})
    [send1] = named[f"send {replying.url}"]
    assert send1.kind == SpanKind.CLIENT and _parent(send1) == _id(t1)
    assert _has(send1, {"url.scheme": "http", "http.response.status_code": 200})
    # The subscriber was handed the send span's context, and the producer's tracestate with it.
    got = replying.received[0].headers
    assert got["traceparent"] == f"00-{PRODUCER_TRACE}-{_id(send1)}-01"
    assert got["tracestate"] == "vendor=x"

    # The reply went back into the Broker (a broker: span under t1, as Knative's reply passes its ingress)
    # and on to t2 in the same trace.
    reentry = next(s for s in named["broker:default.tr"] if s is not ingress)
    assert reentry.kind == SpanKind.PRODUCER and _parent(reentry) == _id(t1)
    assert _has(reentry, {"cloudevents.type": "reply", "kn.broker.name": "default"})
    [t2] = named["trigger:t2.tr"]
    assert _trace(t2) == PRODUCER_TRACE and _parent(t2) == _id(reentry)
    assert answer_sink.received[0].headers["traceparent"].split("-")[1] == PRODUCER_TRACE

    # t3: two failed attempts, then the dead-letter sink, each a `send` under the Trigger's span.
    [t3] = named["trigger:t3.tr"]
    assert dict(t3.attributes or {})["nerve.outcome"] == "dead-lettered"
    failed = named[f"send {failing.url}"]
    assert len(failed) == 2 and {_parent(s) for s in failed} == {_id(t3)}
    assert {dict(s.attributes or {})["http.response.status_code"] for s in failed} == {500}
    [to_dls] = named[f"send {dls.url}"]
    assert _parent(to_dls) == _id(t3)
    assert dls.received[0].headers["traceparent"] == f"00-{PRODUCER_TRACE}-{_id(to_dls)}-01"


async def test_a_channel_and_its_subscription_continue_the_trace(tmp_path: Path, spans: InMemorySpanExporter) -> None:
    sink = await _started()
    try:
        async with running_stack(tmp_path) as stack:
            await stack.apply(channel("ch", "tr"), subscription("s1", sink.url, channel="ch", namespace="tr"))
            assert await stack.send("/channels/tr/ch", event("c1"), {"traceparent": TRACEPARENT}) == 202
            await sink.wait_for(1)
            await eventually(lambda: "subscription:s1.tr" in _by_name(spans))
    finally:
        await sink.stop()
    named = _by_name(spans)
    [ingress] = named["channel:ch.tr"]
    assert _has(ingress, {"kn.channel.name": "ch", "kn.channel.namespace": "tr"})
    [sub] = named["subscription:s1.tr"]
    assert _parent(sub) == _id(ingress) and _trace(sub) == PRODUCER_TRACE
    assert _has(sub, {"kn.channel.name": "ch", "messaging.destination.name": "subscription:s1.tr"})
    assert sink.received[0].headers["traceparent"].split("-")[1] == PRODUCER_TRACE


async def test_without_a_producer_trace_the_ingress_starts_one(tmp_path: Path, spans: InMemorySpanExporter) -> None:
    sink = await _started()
    try:
        async with running_stack(tmp_path) as stack:
            await stack.apply(broker("default", "tr"), trigger("t1", sink.url, namespace="tr"))
            assert await stack.send("/tr/default", event("n1")) == 202
            await sink.wait_for(1)
            await eventually(lambda: "trigger:t1.tr" in _by_name(spans))
    finally:
        await sink.stop()
    named = _by_name(spans)
    [ingress] = named["broker:default.tr"]
    assert ingress.parent is None
    assert sink.received[0].headers["traceparent"].split("-")[1] == _trace(ingress)


async def test_a_source_starts_a_trace_its_sink_continues(spans: InMemorySpanExporter) -> None:
    sink = await _started()
    session = pooled_session(per_destination=4)
    try:
        obj = {"kind": "PingSource", "metadata": {"namespace": "ns1", "name": "every-second", "uid": "u1",
                                                  "generation": 1}, "spec": {"sink": {"uri": sink.url}}}
        emitter = Emitter(contract_source(obj, sink.url, {}), Deliverer(Sender(session, max_response_bytes=1024)),
                          default_timeout_s=5)
        event = emitter.event("dev.knative.sources.ping", "/apis/v1/namespaces/ns1/pingsources/every-second")
        assert await emitter.send(event) == "delivered"
    finally:
        await session.close()
        await sink.stop()
    named = _by_name(spans)
    [source] = named["pingsource:every-second.ns1"]
    assert source.parent is None
    assert _has(source, {"kn.source.name": "every-second", "kn.source.namespace": "ns1",
                         "cloudevents.type": "dev.knative.sources.ping", "nerve.outcome": "delivered"})
    [send] = named[f"send {sink.url}"]
    assert _parent(send) == _id(source)
    # The flags may carry W3C level 2's "random trace id" bit beside "sampled" for a trace Nerve started.
    version, trace_id, parent_id, flags = sink.received[0].headers["traceparent"].split("-")
    assert (version, trace_id, parent_id) == ("00", _trace(source), _id(send)) and int(flags, 16) & 1


async def test_a_kafkasource_continues_the_trace_of_an_instrumented_producer(
        tmp_path: Path, kafka_bootstrap: str, spans: InMemorySpanExporter) -> None:
    topic = f"traced-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()
    sink = await _started()
    try:
        async with running_stack(tmp_path) as stack:
            await stack.apply({"apiVersion": "sources.knative.dev/v1beta1", "kind": "KafkaSource",
                               "metadata": {"name": "orders", "namespace": "tr"},
                               "spec": {"bootstrapServers": [kafka_bootstrap], "topics": [topic],
                                        "initialOffset": "earliest", "sink": {"uri": sink.url}}})
            producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
            await producer.start()
            try:
                await producer.send_and_wait(topic, value=b'{"total": 12}', headers=[
                    ("content-type", b"application/json"), ("traceparent", TRACEPARENT.encode())])
            finally:
                await producer.stop()
            await sink.wait_for(1)
            await eventually(lambda: "kafkasource:orders.tr" in _by_name(spans))
    finally:
        await sink.stop()
    [source] = _by_name(spans)["kafkasource:orders.tr"]
    assert _trace(source) == PRODUCER_TRACE and _parent(source) == PRODUCER_SPAN
    assert sink.received[0].headers["traceparent"].split("-")[1] == PRODUCER_TRACE
