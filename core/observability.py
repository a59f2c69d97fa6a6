"""`/healthz`, `/readyz` and `/metrics` routes that every service serves the same way, Knative's current
metric instruments, and the telemetry settings every service takes.

`/readyz` answers 503 while any supervised part of the process is down (core/supervisor.py), with a
JSON body naming each part and why, and, for services that follow the contract, until one is applied.

Metrics are Knative's current OpenTelemetry instruments, `kn.eventing.dispatch.duration` and
`kn.eventing.process.duration` (seconds, Knative's buckets), written straight into the one
prometheus_client registry under the names the OpenTelemetry-to-Prometheus translation gives them
(`kn_eventing_dispatch_duration_seconds_bucket`, attribute `messaging.destination.name` as label
`messaging_destination_name`). prometheus_client rather than the OTel metrics SDK with a Prometheus reader:
one registry, one /metrics, and a label lookup per event instead of an SDK aggregation. A series has every
label of the family; those its emitter has no value for are empty, which Prometheus stores as absent, so
queries see what the OTel exporter would give. The older OpenCensus-era family (`mt_broker_ingress_event_count`,
`..._event_dispatch_latencies`, `mt_broker_filter_*`) stays behind `--legacy-metrics` (on by default for now).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, TypeVar

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Histogram, generate_latest
from prometheus_client.registry import Collector

from core import tally
from core.metric_labels import safe_label
from core.settings import setting
from core.supervisor import HEALTH, Health


@dataclass(frozen=True, slots=True)
class TelemetrySettings:
    """Metrics and logs of every service (traces are configured by the standard OTEL_* variables)."""

    legacy_metrics: bool = setting(
        True, "--legacy-metrics", "NERVE_LEGACY_METRICS",
        "Also serve Knative's older metric family (mt_broker_ingress_event_count, "
        "mt_broker_ingress_event_dispatch_latencies, mt_broker_filter_event_count, ...) beside "
        "kn_eventing_dispatch_duration_seconds and kn_eventing_process_duration_seconds; on for now so "
        "dashboards built on it keep working.", off_flag="--no-legacy-metrics")
    log_format: str = setting("text", "--log-format", "NERVE_LOG_FORMAT",
                              "Log lines as text, or as one JSON object per line with trace_id and span_id.",
                              choices=("text", "json"))


SECONDS_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)
"""Knative's buckets of both instruments (ev:pkg/observability)."""
OWNER_LABELS: Final = ("messaging_system", "messaging_destination_name", "messaging_operation_name",
                       "kn_broker_name", "kn_broker_namespace", "kn_channel_name", "kn_channel_namespace",
                       "kn_source_name", "kn_source_namespace")
KN_LABELS: Final = (*OWNER_LABELS, "cloudevents_type", "url_scheme")

DISPATCH_DURATION = Histogram("kn_eventing_dispatch_duration", "The duration to dispatch the event",
                              (*KN_LABELS, "http_response_status_code"), unit="seconds", buckets=SECONDS_BUCKETS)
PROCESS_DURATION = Histogram("kn_eventing_process_duration",
                             "The duration of processing an event before dispatching it", KN_LABELS,
                             unit="seconds", buckets=SECONDS_BUCKETS)


def owner_labels(kind: str, namespace: str, name: str, owner: str, destination: str = "") -> tuple[str, ...]:
    """OWNER_LABELS' values for what dispatches: a Trigger (destination `trigger:<name>.<ns>`, owner its
    Broker), a Subscription (`subscription:<name>.<ns>`, owner its channel), a source (`<kind>:<name>.<ns>`),
    or a Broker's or channel's ingress (kind Broker or Channel; `destination` its backend topic, where
    Knative's names the channel URL it posts to)."""
    namespace, name, owner = safe_label(namespace), safe_label(name), safe_label(owner)
    empty = ("", "")
    broker = channel = source = empty
    if kind in ("Broker", "Trigger"):
        broker = (owner, namespace)
    elif kind in ("Channel", "Subscription"):
        channel = (owner, namespace)
    else:
        source = (name, namespace)
    destination = safe_label(destination) or f"{kind.lower()}:{name}.{namespace}"
    return ("knative", destination, "send", *broker, *channel, *source)


LEGACY_METRICS = True
"""Whether the older family is recorded (and served); `configure_metrics` sets it once at start."""
_legacy: list[Collector] = []
C = TypeVar("C", bound=Collector)


def legacy(collector: C) -> C:
    """Mark a collector as one of the older family, served only with --legacy-metrics."""
    _legacy.append(collector)
    return collector


def forget(**labels: str) -> int:
    """Remove, from every labelled family (the older ones too, served or not), each series whose labels
    include all of `labels`: what a deleted Trigger or Broker measured, so /metrics keeps only what exists.
    Returns how many series went. A family without all those label names is left alone.

    prometheus_client removes a series only by its full label values (`remove(*values)`), which no caller
    holds for every status and event type it saw; its per-family `_metrics` map (stable across its releases;
    the version is pinned) is what is filtered here, under the family's own lock."""
    removed = 0
    collectors = {*REGISTRY._collector_to_names, *_legacy}
    for collector in collectors:
        names: tuple[str, ...] = getattr(collector, "_labelnames", ())
        series = getattr(collector, "_metrics", None)
        if not names or series is None or not all(key in names for key in labels):
            continue
        where = [(names.index(key), value) for key, value in labels.items()]
        with collector._lock:  # type: ignore[attr-defined]
            gone = [values for values in series if all(values[i] == value for i, value in where)]
            for values in gone:
                del series[values]
        removed += len(gone)
    return removed


def configure_metrics(*, legacy_metrics: bool) -> None:
    global LEGACY_METRICS
    if LEGACY_METRICS and not legacy_metrics:
        for collector in _legacy:
            REGISTRY.unregister(collector)
    elif legacy_metrics and not LEGACY_METRICS:
        for collector in _legacy:
            REGISTRY.register(collector)
    LEGACY_METRICS = legacy_metrics


@dataclass(frozen=True, slots=True)
class Answer:
    """A health or metrics answer, server-neutral: aiohttp's services (`routes`, `add_routes`) and the
    ingress's own server (core/http_server.py, through `answers`) each make their response of it."""

    status: int
    body: bytes
    content_type: str


_JSON = "application/json; charset=utf-8"


def _json(body: object, status: int = 200) -> Answer:
    # json.dumps as aiohttp's json_response wrote it, so the bytes are the same on either server.
    return Answer(status, json.dumps(body).encode(), _JSON)


def healthz() -> Answer:
    return _json({"status": "ok"})


def metrics() -> Answer:
    tally.flush()  # what the delivery path counted since the last scrape (core/tally.py)
    return Answer(200, generate_latest(), CONTENT_TYPE_LATEST)


def answers(*, with_metrics: bool = True, generation: Callable[[], int] | None = None,
            health: Health = HEALTH) -> dict[str, Callable[[], Answer]]:
    """The health answers by path (served for GET and HEAD). With `generation`, /readyz answers 503 until
    a contract is applied and reports it."""

    def readyz() -> Answer:
        body: dict[str, object] = {"status": "ok"}
        ready = True
        if generation is not None:
            applied = generation()
            body["generation"] = applied
            if applied <= 0:
                ready, body["status"] = False, "waiting for a contract"
        down = health.down()
        if down:
            ready, body["status"] = False, "not ready: " + ", ".join(sorted(down))
            body["down"] = down
        return _json(body, 200 if ready else 503)

    table: dict[str, Callable[[], Answer]] = {"/healthz": healthz, "/readyz": readyz}
    if with_metrics:
        table["/metrics"] = metrics
    return table


Route = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]


def _aiohttp_route(answer: Callable[[], Answer]) -> Route:
    async def route(_: web.BaseRequest) -> web.Response:
        made = answer()
        return web.Response(status=made.status, body=made.body, headers={"Content-Type": made.content_type})

    return route


def routes(*, with_metrics: bool = True, generation: Callable[[], int] | None = None,
           health: Health = HEALTH) -> dict[str, Route]:
    """`answers` as aiohttp handlers: `add_routes` for an Application, or the `routes` of
    core.runtime.serve_handler."""
    return {path: _aiohttp_route(answer)
            for path, answer in answers(with_metrics=with_metrics, generation=generation, health=health).items()}


def add_routes(app: web.Application, *, with_metrics: bool = True,
               generation: Callable[[], int] | None = None, health: Health = HEALTH) -> None:
    """Health routes; with `generation`, /readyz answers 503 until a contract is applied and reports it."""
    for path, route in routes(with_metrics=with_metrics, generation=generation, health=health).items():
        app.router.add_get(path, route)
