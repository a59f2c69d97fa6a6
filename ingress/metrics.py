"""Ingress metrics, named as Knative's MT broker ingress names them (Prometheus adds `_total` to counters)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

LABELS = ("namespace_name", "broker_name", "event_type", "response_code", "response_code_class")
MS_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)

EVENT_COUNT = Counter("mt_broker_ingress_event_count", "Number of events received by a Broker", LABELS)
DISPATCH_LATENCY = Histogram(
    "mt_broker_ingress_event_dispatch_latencies",
    "Time spent storing an event in the Broker's backend, in milliseconds",
    LABELS,
    buckets=MS_BUCKETS,
)


def observe(namespace: str, broker: str, event_type: str, status: int, millis: float | None) -> None:
    labels = (namespace, broker, event_type, str(status), f"{status // 100}xx")
    EVENT_COUNT.labels(*labels).inc()
    if millis is not None:
        DISPATCH_LATENCY.labels(*labels).observe(millis)
