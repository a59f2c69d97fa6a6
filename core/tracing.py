"""Traces: OpenTelemetry spans for the ingress, each delivery and each attempt; W3C trace context on events.

Configured the standard way, from the environment the OpenTelemetry SDK reads: `OTEL_EXPORTER_OTLP_ENDPOINT`
(or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`; OTLP over HTTP/protobuf), `OTEL_SERVICE_NAME`,
`OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG`, `OTEL_BSP_*` (batching).
Tracing is on only when an exporter is configured: an OTLP endpoint is set, or `OTEL_TRACES_EXPORTER` names
`otlp` or `console`; `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none` keeps it off. Off, `ENABLED` is
False, the SDK is never imported, and every call site skips tracing after one attribute check.

Spans, named as Knative names them (ev:pkg/tracing, ev:pkg/observability):

    broker:<name>.<ns>, channel:<name>.<ns>     the ingress (SERVER), child of the producer's traceparent;
                                                a reply entering its Broker from the dispatcher (PRODUCER)
    trigger:<name>.<ns>, subscription:<name>.<ns>, <kind>:<name>.<ns> (a source)
                                                one delivery (CONSUMER), child of the event's traceparent
    send <url>                                  one HTTP attempt (CLIENT): subscriber, reply URL or
                                                dead-letter sink; the destination gets its context

The ingress writes its span's context into each event's headers (`traceparent`, `tracestate`) before the
event is stored; every backend keeps an event's headers (Kafka record headers, NATS message headers), so
the dispatcher's delivery span continues the producer's trace. A delivery span is the current span of its
task while it runs, which is how `send` spans, replies and JSON log lines find it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from core.events import Event, attr_to_string

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider

log = logging.getLogger("nerve.tracing")

ENABLED: bool = False
"""Whether spans are made; read at every call site before anything else is done."""

TRACEPARENT: Final = "traceparent"
TRACESTATE: Final = "tracestate"
_PROPAGATOR: Final = TraceContextTextMapPropagator()
_tracer: trace.Tracer = trace.NoOpTracer()
_provider: TracerProvider | None = None

Span = trace.Span


def configured(environ: Mapping[str, str]) -> bool:
    """Whether the environment configures a trace exporter (see the module docstring)."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporters = _exporters(environ)
    if "none" in exporters:
        return False
    if exporters:
        return True
    return bool(environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"))


def _exporters(environ: Mapping[str, str]) -> list[str]:
    return [name.strip() for name in environ.get("OTEL_TRACES_EXPORTER", "").lower().split(",") if name.strip()]


def setup(service: str, environ: Mapping[str, str] = os.environ) -> bool:
    """Turn tracing on when the environment configures an exporter; `service` names the process when
    OTEL_SERVICE_NAME does not. Returns whether tracing is on."""
    if not configured(environ):
        return False
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

    exporters: list[SpanExporter] = []
    for name in _exporters(environ) or ["otlp"]:
        if name == "otlp":
            exporters.append(OTLPSpanExporter())
        elif name == "console":
            exporters.append(ConsoleSpanExporter())
        else:
            log.warning("OTEL_TRACES_EXPORTER %r is not one Nerve has (otlp, console, none); ignored", name)
    if not exporters:
        return False
    install([BatchSpanProcessor(exporter) for exporter in exporters], service=service)
    return True


def install(processors: Iterable[SpanProcessor], *, service: str = "nerve") -> TracerProvider:
    """Trace into these span processors (tests pass the SDK's in-memory exporter behind a simple one).

    The provider is Nerve's own, not the global one: one process (a test run) may install several in turn."""
    global ENABLED, _tracer, _provider
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider

    shutdown()
    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: service}))
    provider = TracerProvider(resource=resource)  # the sampler from OTEL_TRACES_SAMPLER, as the SDK reads it
    for processor in processors:
        provider.add_span_processor(processor)
    _provider, _tracer, ENABLED = provider, provider.get_tracer("nerve"), True
    return provider


def shutdown() -> None:
    """Export what is batched and turn tracing off."""
    global ENABLED, _tracer, _provider
    provider, _provider = _provider, None
    ENABLED, _tracer = False, trace.NoOpTracer()
    if provider is not None:
        provider.shutdown()


# ------------------------------------------------------------------------------------------ attributes


def event_attributes(event: Event) -> dict[str, str]:
    """Knative's span attributes of a CloudEvent (cloudevents.id, type, source, specversion, ...)."""
    attributes = event.attributes
    found = {f"cloudevents.{name}": attr_to_string(attributes[name])
             for name in ("id", "type", "source", "specversion", "subject", "datacontenttype")
             if name in attributes}
    return found


@dataclass(frozen=True, slots=True)
class SpanInfo:
    """The name and fixed attributes of the spans one ingress resource or delivering target makes."""

    name: str
    attributes: Mapping[str, str]

    @classmethod
    def ingress(cls, kind: str, namespace: str, name: str) -> SpanInfo:
        """A Broker's (`broker:<name>.<ns>`) or a channel's (`channel:<name>.<ns>`) ingress span."""
        prefix = "broker" if kind == "Broker" else "channel"
        span = f"{prefix}:{name}.{namespace}"
        owner = "kn.broker" if kind == "Broker" else "kn.channel"
        return cls(span, {"messaging.system": "knative", "messaging.destination.name": span,
                          "messaging.operation.name": "send", f"{owner}.name": name,
                          f"{owner}.namespace": namespace})

    @classmethod
    def delivery(cls, kind: str, namespace: str, name: str, owner: str) -> SpanInfo:
        """A Trigger's (`trigger:<name>.<ns>`, owner: its Broker), a Subscription's (owner: its channel) or a
        source's (`<kind>:<name>.<ns>`) delivery span."""
        span = f"{kind.lower() or 'egress'}:{name}.{namespace}"
        attributes = {"messaging.system": "knative", "messaging.destination.name": span,
                      "messaging.operation.name": "send"}
        if kind == "Trigger":
            attributes |= {"kn.broker.name": owner, "kn.broker.namespace": namespace}
        elif kind == "Subscription":
            attributes |= {"kn.channel.name": owner, "kn.channel.namespace": namespace}
        else:
            attributes |= {"kn.source.name": name, "kn.source.namespace": namespace, "kn.source.kind": kind}
        return cls(span, attributes)


# ------------------------------------------------------------------------------------------ spans


@dataclass(slots=True)
class Active:
    """A span that is the current one of its task until `finish`."""

    span: Span
    token: object


def _start(info: SpanInfo, carrier: Mapping[str, str], kind: SpanKind, event: Event | None) -> Active:
    parent = _PROPAGATOR.extract(carrier)
    span = _tracer.start_span(info.name, context=parent, kind=kind, attributes=info.attributes)
    if event is not None and span.is_recording():  # a span sampled out is not described: it costs less
        span.set_attributes(event_attributes(event))
    return Active(span, otel_context.attach(trace.set_span_in_context(span)))


def start_ingress(info: SpanInfo, headers: Mapping[str, str]) -> Active:
    """The ingress span, continuing the producer's `traceparent` when it sent one."""
    return _start(info, headers, SpanKind.SERVER, None)


def start_delivery(info: SpanInfo, event: Event) -> Active:
    """One delivery's span, continuing the trace stored with the event."""
    return _start(info, event.headers, SpanKind.CONSUMER, event)


def start_reentry(info: SpanInfo, event: Event) -> Active:
    """A reply entering its Broker from the dispatcher (PRODUCER): a child of the trace the reply carries,
    written back into it so the next Trigger's span is this one's child."""
    active = _start(info, event.headers, SpanKind.PRODUCER, event)
    inject(active.span, event.headers)
    return active


def received(active: Active, events: Iterable[Event]) -> None:
    """The ingress read these events: the span describes the first, and each carries the span's context on."""
    first = active.span.is_recording()
    for event in events:
        if first:
            active.span.set_attributes(event_attributes(event))
            first = False
        inject(active.span, event.headers)


def inject(span: Span, carrier: MutableMapping[str, str]) -> None:
    """`span`'s W3C context as `traceparent` (and `tracestate`) in `carrier`, replacing what was there."""
    carrier.pop(TRACEPARENT, None)
    carrier.pop(TRACESTATE, None)
    _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(span))


def continue_current(carrier: MutableMapping[str, str]) -> None:
    """A reply without a trace context of its own continues the delivery that got it."""
    if TRACEPARENT not in carrier:
        span = trace.get_current_span()
        if span.get_span_context().is_valid:
            inject(span, carrier)


def finish(active: Active, status: int | None = None, *, outcome: str | None = None) -> None:
    """End the span with the HTTP status the request was answered (ingress) or the delivery's outcome."""
    span = active.span
    if status is not None:
        span.set_attribute("http.response.status_code", status)
        if status >= 500:
            span.set_status(Status(StatusCode.ERROR))
    if outcome is not None:
        span.set_attribute("nerve.outcome", outcome)
        if outcome != "delivered":
            span.set_status(Status(StatusCode.ERROR, outcome))
    span.end()
    otel_context.detach(active.token)  # type: ignore[arg-type]


def start_send(url: str) -> Span:
    """One attempt's `send <url>` span, a child of the task's current (delivery) span."""
    scheme = url.partition(":")[0]
    return _tracer.start_span(f"send {url}", kind=SpanKind.CLIENT,
                              attributes={"url.full": url, "url.scheme": scheme, "messaging.system": "knative",
                                          "messaging.operation.name": "send"})


def end_send(span: Span, status: int | None, error: bytes = b"") -> None:
    if status is None:
        span.set_status(Status(StatusCode.ERROR, error.decode(errors="replace")[:256]))
    else:
        span.set_attribute("http.response.status_code", status)
        if status >= 400:
            span.set_status(Status(StatusCode.ERROR))
    span.end()


def headers_of(span: Span) -> dict[str, str]:
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(span))
    return carrier


def current_ids() -> tuple[str, str] | None:
    """The (trace id, span id) of the task's current span in hex, or None (for log lines)."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


def trace_id_of(headers: Mapping[str, Any]) -> str | None:
    """The trace id a `traceparent` header names (`00-<trace id>-<span id>-<flags>`), or None."""
    value = headers.get(TRACEPARENT)
    if not isinstance(value, str):
        return None
    parts = value.split("-")
    return parts[1] if len(parts) == 4 and len(parts[1]) == 32 else None
