"""One trace across the backend, as a collector receives it: the producer's traceparent goes in, the
subscriber gets one with the same trace id, and a real OTLP/HTTP receiver (protobuf off the wire) holds
`broker:` -> `trigger:` -> `send <url>` in that trace, on memory, Kafka and NATS.

Nerve's exporter is the SDK's OTLPSpanExporter, configured as a user configures it: OTEL_EXPORTER_OTLP_ENDPOINT.
"""

from __future__ import annotations

import asyncio

import pytest

from core import tracing
from tests.support.manifests import broker, trigger
from tests.support.otlp import OtlpReceiver
from tests.support.receiver import Receiver
from tests.support.stack import Stack, event

PRODUCER_TRACE = "0af7651916cd43dd8448eb211c80319c"
PRODUCER_SPAN = "b7ad6b7169203331"


async def test_the_producers_trace_reaches_the_subscriber_and_the_collector(
        stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    collector = OtlpReceiver()
    subscriber = Receiver()
    await collector.start()
    await subscriber.start()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url)
    monkeypatch.setenv("OTEL_SERVICE_NAME", "nerve-under-test")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
    assert tracing.setup("nerve")
    try:
        await stack.apply(broker("default", "otel"), trigger("display", subscriber.url, namespace="otel"))
        status = await stack.send("/otel/default", event("traced-1", type_="greeting"),
                                  {"traceparent": f"00-{PRODUCER_TRACE}-{PRODUCER_SPAN}-01"})
        assert status == 202
        [received] = [r for r in await subscriber.wait_for(1)]
        assert received.id == "traced-1"
        got = subscriber.received[0].headers["traceparent"].split("-")
        assert got[1] == PRODUCER_TRACE

        def whole() -> bool:
            names = {s.name for s in collector.in_trace(PRODUCER_TRACE)}
            return {"broker:default.otel", "trigger:display.otel", f"send {subscriber.url}"} <= names

        await collector.wait_for(whole)
    finally:
        # The exporter posts from the calling thread at shutdown; this loop serves the receiver.
        await asyncio.to_thread(tracing.shutdown)
        await subscriber.stop()
        await collector.stop()

    spans = {s.name: s for s in collector.in_trace(PRODUCER_TRACE)}
    ingress, delivery, send = (spans["broker:default.otel"], spans["trigger:display.otel"],
                               spans[f"send {subscriber.url}"])
    assert ingress.parent_span_id == PRODUCER_SPAN
    assert delivery.parent_span_id == ingress.span_id  # across the backend
    assert send.parent_span_id == delivery.span_id
    assert got[2] == send.span_id  # the subscriber continues the send span
    assert ingress.service == "nerve-under-test"
    assert ingress.attributes["messaging.system"] == "knative"
    assert ingress.attributes["cloudevents.type"] == "greeting"
    assert delivery.attributes["messaging.destination.name"] == "trigger:display.otel"
    assert send.attributes["http.response.status_code"] == 202
