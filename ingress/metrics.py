"""Ingress metrics, named as Knative's MT broker ingress names them (Prometheus adds `_total` to counters).

Storing an event in the backend is the ingress's dispatch: one `kn_eventing_dispatch_duration_seconds`
observation per event (core/observability.py), `messaging_destination_name` the resource's topic and
`url_scheme` its backend (memory, kafka, nats), where Knative's names the channel URL it posts to. The older
family (`mt_broker_ingress_event_count`, `..._event_dispatch_latencies`) is recorded with --legacy-metrics.
Only resources the contract knows are labelled (a 404 or a bad path is counted in REFUSED by reason, never
under the path it named), and each one's `event_type` values are capped (core/metric_labels.py). An
accepted event's updates go through core/tally.py, as a delivery's do.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from core import observability
from core.tally import CounterTally, HistogramTally

LABELS = ("namespace_name", "broker_name", "event_type", "response_code", "response_code_class")
MS_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)

EVENT_COUNT = observability.legacy(Counter("mt_broker_ingress_event_count", "Number of events received by a Broker",
                                           LABELS))
REFUSED = Counter("nerve_ingress_refused", "Requests refused before their events were stored, by reason "
                  "(the error named in the response)", ("reason",))
DISPATCH_LATENCY = observability.legacy(Histogram(
    "mt_broker_ingress_event_dispatch_latencies",
    "Time spent storing an event in the Broker's backend, in milliseconds",
    LABELS,
    buckets=MS_BUCKETS,
))


_children: dict[tuple[str, str, str, int], tuple[CounterTally, HistogramTally]] = {}
_kn_children: dict[tuple[str, str, str, str, str, str, int], HistogramTally] = {}
_MAX_CHILDREN = 10_000  # label lookups cost microseconds per event; cache them, but never without bound


def forget(kind: str, namespace: str, name: str) -> None:
    """The Broker or channel is gone: its series (and its Triggers' or Subscriptions') leave /metrics, and
    the cached children go too, so one made again under the same name is counted afresh."""
    for key in [k for k in _kn_children if k[:3] == (kind, namespace, name)]:
        del _kn_children[key]
    for key4 in [k for k in _children if k[:2] == (namespace, name)]:
        del _children[key4]
    prefix = "kn_channel" if kind == "Channel" else "kn_broker"
    observability.forget(**{f"{prefix}_name": name, f"{prefix}_namespace": namespace})
    if kind != "Channel":
        observability.forget(namespace_name=namespace, broker_name=name)


def observe(namespace: str, broker: str, event_type: str, status: int, millis: float | None, *,
            kind: str = "Broker", topic: str = "", backend: str = "") -> None:
    """One event the ingress answered `status`; `millis` is how long storing it took, when it was tried.
    `kind` is Broker or Channel (then `broker` is the channel's name)."""
    if millis is not None:
        key = (kind, namespace, broker, topic, backend, event_type, status)
        child = _kn_children.get(key)
        if child is None:
            labels = observability.owner_labels(kind, namespace, broker, broker, destination=topic)
            child = HistogramTally(observability.DISPATCH_DURATION.labels(*labels, event_type, backend, str(status)))
            if len(_kn_children) < _MAX_CHILDREN:
                _kn_children[key] = child
        child.observe(millis / 1000)
    if not observability.LEGACY_METRICS:
        return
    key4 = (namespace, broker, event_type, status)
    children = _children.get(key4)
    if children is None:
        labels4 = (namespace, broker, event_type, str(status), f"{status // 100}xx")
        children = (CounterTally(EVENT_COUNT.labels(*labels4)), HistogramTally(DISPATCH_LATENCY.labels(*labels4)))
        if len(_children) < _MAX_CHILDREN:
            _children[key4] = children
    children[0].inc()
    if millis is not None:
        children[1].observe(millis)
