"""Dispatcher metrics: Knative's broker-filter names, plus Nerve's retries, dead letters and in-flight."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

TRIGGER = ("namespace_name", "broker_name", "trigger_name")
LABELS = (*TRIGGER, "event_type", "response_code", "response_code_class")
MS_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)

EVENT_COUNT = Counter("mt_broker_filter_event_count", "Number of events delivered to a Trigger's subscriber",
                      LABELS)
DISPATCH_LATENCY = Histogram("mt_broker_filter_event_dispatch_latencies",
                             "Time spent dispatching an event to a Trigger subscriber, in milliseconds",
                             LABELS, buckets=MS_BUCKETS)
PROCESSING_LATENCY = Histogram("mt_broker_filter_event_processing_latencies",
                               "Time from the event's arrival at the Broker until its dispatch, in milliseconds",
                               (*TRIGGER, "event_type"), buckets=MS_BUCKETS)
RETRIES = Counter("nerve_dispatcher_retries", "Delivery attempts that were retries", TRIGGER)
DEAD_LETTERED = Counter("nerve_dispatcher_dead_lettered", "Events sent to a dead-letter sink", TRIGGER)
DROPPED = Counter("nerve_dispatcher_dropped",
                  "Events given up after the last retry with no dead-letter sink, or whose sink failed too",
                  TRIGGER)
FILTERED_OUT = Counter("nerve_dispatcher_filtered_out", "Events a Trigger's filter did not match", TRIGGER)
REPLIES = Counter("nerve_dispatcher_replies", "Reply events routed back into the Broker or to a reply URL",
                  TRIGGER)
INFLIGHT = Gauge("nerve_dispatcher_inflight", "Events being delivered right now", TRIGGER)
