"""Ingress metrics, named as Knative's MT broker ingress names them (Prometheus adds `_total` to counters).

Only resources the contract knows are labelled (a 404 or a bad path is counted in REFUSED by reason, never
under the path it named), and each one's `event_type` values are capped (core/metric_labels.py).
"""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter, Histogram

LABELS = ("namespace_name", "broker_name", "event_type", "response_code", "response_code_class")
MS_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)

EVENT_COUNT = Counter("mt_broker_ingress_event_count", "Number of events received by a Broker", LABELS)
REFUSED = Counter("nerve_ingress_refused", "Requests refused before their events were stored, by reason "
                  "(the error named in the response)", ("reason",))
DISPATCH_LATENCY = Histogram(
    "mt_broker_ingress_event_dispatch_latencies",
    "Time spent storing an event in the Broker's backend, in milliseconds",
    LABELS,
    buckets=MS_BUCKETS,
)


_children: dict[tuple[str, str, str, int], tuple[Any, Any]] = {}
_MAX_CHILDREN = 10_000  # label lookups cost microseconds per event; cache them, but never without bound


def observe(namespace: str, broker: str, event_type: str, status: int, millis: float | None) -> None:
    key = (namespace, broker, event_type, status)
    children = _children.get(key)
    if children is None:
        labels = (namespace, broker, event_type, str(status), f"{status // 100}xx")
        children = (EVENT_COUNT.labels(*labels), DISPATCH_LATENCY.labels(*labels))
        if len(_children) < _MAX_CHILDREN:
            _children[key] = children
    children[0].inc()
    if millis is not None:
        children[1].observe(millis)
