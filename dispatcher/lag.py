"""`nerve_dispatcher_consumer_lag`: per Trigger and Subscription, events stored that its group has not acked.

Read at scrape time from what each reader already knows (channels.base.Lagging): on Kafka, each assigned
partition's end offset minus one past the last contiguous ack; on NATS JetStream, the messages held unacked
plus the newest delivery's `num_pending`. A reader that cannot tell yet (nothing fetched) and the memory
backend have no series. Labelled like the delivery counters: (namespace_name, broker_name, trigger_name).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from core.delivery.metrics import TRIGGER

NAME = "nerve_dispatcher_consumer_lag"
HELP = "Events stored on the Broker's or channel's topic that this Trigger's or Subscription's group has not acked yet"


class Lags(Protocol):
    @property
    def lag_labels(self) -> tuple[str, str, str]: ...

    def lag(self) -> int | None: ...


class _LagCollector(Collector):
    def __init__(self) -> None:
        self._runners: dict[int, Lags] = {}

    def track(self, runner: Lags) -> Callable[[], None]:
        """Report `runner` until the returned callable is called (when it stops)."""
        key = id(runner)
        self._runners[key] = runner

        def untrack() -> None:
            self._runners.pop(key, None)

        return untrack

    def describe(self) -> Iterable[Metric]:
        return [GaugeMetricFamily(NAME, HELP, labels=TRIGGER)]

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily(NAME, HELP, labels=TRIGGER)
        for runner in list(self._runners.values()):
            lag = runner.lag()
            if lag is not None:
                family.add_metric(list(runner.lag_labels), lag)
        return [family]


LAGS = _LagCollector()
REGISTRY.register(LAGS)
