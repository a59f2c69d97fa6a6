"""Delivery metrics: Knative's current instruments, its older broker-filter names, and Nerve's retries,
dead letters and in-flight.

Every delivery attempt is one `kn_eventing_dispatch_duration_seconds` observation (core/observability.py:
destination `trigger:<name>.<ns>`, `subscription:<name>.<ns>` or `<kind>:<name>.<ns>` for a source, with
the Broker's, channel's or source's name and namespace); each delivery's wait since the event reached its
Broker is one `kn_eventing_process_duration_seconds`. The older family (with --legacy-metrics) labels
`(namespace_name, broker_name, trigger_name)`, as do Nerve's own counters. `TargetMetrics` caches the label
children per target and caps the distinct `event_type` values each target labels (core/metric_labels.py).
What a delivery updates goes through core/tally.py (no lock, no bucket walk per update; /metrics adds it
to these children before it renders).
"""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from core import observability
from core.metric_labels import LabelCap, safe_label
from core.tally import CounterTally, HistogramTally, Level

TRIGGER = ("namespace_name", "broker_name", "trigger_name")
LABELS = (*TRIGGER, "event_type", "response_code", "response_code_class")
MS_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)

EVENT_COUNT = observability.legacy(Counter(
    "mt_broker_filter_event_count", "Number of events delivered to a Trigger's subscriber", LABELS))
DISPATCH_LATENCY = observability.legacy(Histogram(
    "mt_broker_filter_event_dispatch_latencies",
    "Time spent dispatching an event to a Trigger subscriber, in milliseconds", LABELS, buckets=MS_BUCKETS))
PROCESSING_LATENCY = observability.legacy(Histogram(
    "mt_broker_filter_event_processing_latencies",
    "Time from the event's arrival at the Broker until its dispatch, in milliseconds", (*TRIGGER, "event_type"),
    buckets=MS_BUCKETS))
RETRIES = Counter("nerve_dispatcher_retries", "Delivery attempts that were retries", TRIGGER)
DEAD_LETTERED = Counter("nerve_dispatcher_dead_lettered", "Events sent to a dead-letter sink", TRIGGER)
DROPPED = Counter("nerve_dispatcher_dropped",
                  "Events given up: retries exhausted with no dead-letter sink, the sink failed too, or an "
                  "error delivering them (reason)", (*TRIGGER, "reason"))
FILTERED_OUT = Counter("nerve_dispatcher_filtered_out", "Events a Trigger's filter did not match", TRIGGER)
REPLIES = Counter("nerve_dispatcher_replies", "Reply events routed back into the Broker or to a reply URL",
                  TRIGGER)
INFLIGHT = Gauge("nerve_dispatcher_inflight", "Events being delivered right now", TRIGGER)

# Why an event was dropped: the `reason` label of nerve_dispatcher_dropped_total.
RETRIES_EXHAUSTED = "retries_exhausted"
DEAD_LETTER_FAILED = "dead_letter_failed"
ERROR = "error"
FILTER_ERROR = "filter_error"

_CACHE_MAX = 1024


class TargetMetrics:
    """The metric children of one delivering target: label lookups cost microseconds, so they are cached."""

    __slots__ = ("_children", "_kn", "_kn_dispatch", "_kn_process", "_processing", "_scheme", "_types",
                 "dead_lettered", "filtered_out", "inflight", "labels", "replies", "retries")

    def __init__(self, labels: tuple[str, str, str], *, kind: str = "Trigger", scheme: str = "http") -> None:
        """`labels` are (namespace, owner, name); `kind` the egress's (Trigger, Subscription, a source kind),
        `scheme` its destination's."""
        self._kn = observability.owner_labels(kind, labels[0], labels[2], labels[1])
        self._scheme = scheme
        labels = (safe_label(labels[0]), safe_label(labels[1]), safe_label(labels[2]))
        self.labels = labels
        self._types = LabelCap()
        self._children: dict[tuple[str, int], tuple[CounterTally, HistogramTally]] = {}
        self._processing: dict[str, HistogramTally] = {}
        self._kn_dispatch: dict[tuple[str, int], HistogramTally] = {}
        self._kn_process: dict[str, HistogramTally] = {}
        self.inflight = Level.of(INFLIGHT.labels(*labels))
        self.filtered_out = CounterTally(FILTERED_OUT.labels(*labels))
        self.retries = CounterTally(RETRIES.labels(*labels))
        self.replies = CounterTally(REPLIES.labels(*labels))
        self.dead_lettered = CounterTally(DEAD_LETTERED.labels(*labels))

    def dropped(self, reason: str) -> Any:
        return DROPPED.labels(*self.labels, reason)

    def forget(self) -> None:
        """Remove this target's series (its Trigger or Subscription is gone); these children are not used again."""
        namespace, owner, name = self.labels
        observability.forget(namespace_name=namespace, broker_name=owner, trigger_name=name)
        observability.forget(messaging_destination_name=self._kn[1])

    def processing(self, event_type: str) -> HistogramTally:
        event_type = self._types(event_type)
        child = self._processing.get(event_type)
        if child is None:
            child = HistogramTally(PROCESSING_LATENCY.labels(*self.labels, event_type))
            if len(self._processing) < _CACHE_MAX:
                self._processing[event_type] = child
        return child

    def dispatch(self, event_type: str, status: int) -> tuple[CounterTally, HistogramTally]:
        """The counter and histogram children for one (type, status)."""
        event_type = self._types(event_type)
        key = (event_type, status)
        children = self._children.get(key)
        if children is None:
            labels = (*self.labels, event_type, str(status), f"{status // 100}xx")
            children = (CounterTally(EVENT_COUNT.labels(*labels)), HistogramTally(DISPATCH_LATENCY.labels(*labels)))
            if len(self._children) < _CACHE_MAX:
                self._children[key] = children
        return children

    def observe_dispatch(self, event_type: str, status: int, seconds: float) -> None:
        """One attempt: `kn_eventing_dispatch_duration_seconds`, and the older family when it is on."""
        event_type = self._types(event_type)
        key = (event_type, status)
        child = self._kn_dispatch.get(key)
        if child is None:
            child = HistogramTally(
                observability.DISPATCH_DURATION.labels(*self._kn, event_type, self._scheme, str(status)))
            if len(self._kn_dispatch) < _CACHE_MAX:
                self._kn_dispatch[key] = child
        child.observe(seconds)
        if observability.LEGACY_METRICS:
            count, latency = self.dispatch(event_type, status)
            count.inc()
            latency.observe(seconds * 1000)

    def observe_processing(self, event_type: str, seconds: float) -> None:
        """How long the event waited since it reached its Broker: `kn_eventing_process_duration_seconds`."""
        event_type = self._types(event_type)
        child = self._kn_process.get(event_type)
        if child is None:
            child = HistogramTally(observability.PROCESS_DURATION.labels(*self._kn, event_type, self._scheme))
            if len(self._kn_process) < _CACHE_MAX:
                self._kn_process[event_type] = child
        child.observe(seconds)
        if observability.LEGACY_METRICS:
            self.processing(event_type).observe(seconds * 1000)
