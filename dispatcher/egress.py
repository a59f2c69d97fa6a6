"""One Trigger or Subscription: read its consumer group, filter, deliver (core.delivery), ack.

A Trigger's events come from a Broker (TTL stripped before delivery, replies back into the Broker);
a Subscription's from a channel (attributes untouched, replies to the Subscription's reply URL, no
filter: its egress has none, so everything matches).

An event is acked only once it was delivered (2xx), filtered out, dead-lettered or dropped with a
reason (core/delivery/deliver.py); a delivery abandoned by shutdown is never acked, so durable
backends bring it back. The window and ordered lanes are core.delivery.Consumer's.

A contract change that alters only delivery settings or filters is applied with `update()` between
events; in-flight deliveries finish with the settings they started with.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from channels.base import Backend, Lagging, Reader, TypeFilteredBackend
from core import tracing
from core.contract import Egress, Resource
from core.delivery import Consumer, Deliverer, Inbound, Target, metrics
from core.events import Event
from core.filters import EventFilter, compile_trigger_filter
from core.filters.cesql import CesqlError
from core.filters.exact import required_type
from core.hops import enter_broker, inherit_ttl, leave_broker
from dispatcher.lag import LAGS
from dispatcher.settings import DispatcherSettings

log = logging.getLogger("nerve.dispatcher")


class _MatchNothing:
    def matches(self, attributes: Mapping[str, Any]) -> bool:
        return False


def _compile_filter(egress: Egress) -> EventFilter:
    """The Trigger's filter; one that cannot compile delivers nothing rather than everything.

    Apply-time validation refuses such Triggers, so only a hand-edited contract gets here.
    """
    try:
        return compile_trigger_filter(egress.filter_attributes, egress.filters)
    except CesqlError as exc:
        log.error("%s: filter does not compile, the Trigger delivers nothing: %s", egress.consumer_group, exc)
        return _MatchNothing()


def _epoch(timestamp: str | None) -> float | None:
    """A creationTimestamp (RFC 3339, whole seconds) as epoch seconds; None when absent or unreadable."""
    if not timestamp:
        return None
    try:
        return datetime.fromisoformat(timestamp).timestamp()
    except ValueError:
        return None


def part_name(egress: Egress) -> str:
    """How logs, /readyz and nerve_supervised_restarts_total name this egress: Trigger/<ns>/<name>."""
    ref = egress.reference
    return f"{ref.kind or 'Egress'}/{ref.namespace}/{ref.name}"


class _Config:
    """Everything compiled from one generation of an egress; swapped whole by update()."""

    __slots__ = ("egress", "filter", "target")

    def __init__(self, egress: Egress, resource: Resource, settings: DispatcherSettings) -> None:
        self.egress = egress
        self.filter: EventFilter = _compile_filter(egress)
        labels = (egress.reference.namespace, resource.reference.name, egress.reference.name)
        self.target = Target.compile(egress, labels, default_timeout_s=settings.default_timeout_s)


class EgressRunner:
    def __init__(
        self,
        egress: Egress,
        resource: Resource,
        channel: Backend,
        deliverer: Deliverer,
        settings: DispatcherSettings,
    ) -> None:
        self.resource = resource
        self._channel = channel
        self._deliverer = deliverer
        self._settings = settings
        self._config = _Config(egress, resource, settings)
        self._reader: Reader | None = None
        self._consumer: Consumer | None = None
        self._untrack: Callable[[], None] | None = None
        self.server_type: str | None = None
        """The type the backend's server filters this group on (started by open_typed_reader), or None."""

    @property
    def egress(self) -> Egress:
        return self._config.egress

    def update(self, egress: Egress, resource: Resource) -> None:
        self.resource = resource
        self._config = _Config(egress, resource, self._settings)

    async def start(self) -> None:
        """Subscribe and start consuming. A new group is positioned at the first event stored since its
        Trigger or Subscription was made: what the ingress accepted before this dispatcher ran (started
        late, restarted, or slower to see the contract than the ingress) is delivered, not skipped."""
        self.server_type = self.wanted_server_type(self.egress)
        if self.server_type is not None and isinstance(self._channel, TypeFilteredBackend):
            self._reader = self._channel.open_typed_reader(self.resource.topic, self.egress.consumer_group,
                                                           self.server_type, since=_epoch(self.egress.created))
        else:
            self._reader = self._channel.open_reader(self.resource.topic, self.egress.consumer_group,
                                                     since=_epoch(self.egress.created))
        await self._reader.start()
        self._consumer = Consumer(
            part_name(self.egress),
            self._reader.receive,
            self._handle,
            window=self._settings.max_inflight,
            ordered=lambda: self._config.egress.delivery_order == "ordered",
            admit=self._admit,
        )
        self._consumer.start()
        self._untrack = LAGS.track(self)

    def wanted_server_type(self, egress: Egress) -> str | None:
        """The type the backend's server should filter this egress's group on (NATS subjects), or None."""
        if not isinstance(self._channel, TypeFilteredBackend):
            return None
        return required_type(egress.filter_attributes, egress.filters)

    @property
    def lag_labels(self) -> tuple[str, str, str]:
        labels: tuple[str, str, str] = self._config.target.metrics.labels
        return labels

    def lag(self) -> int | None:
        """How far this egress's group is behind (nerve_dispatcher_consumer_lag), when its backend can tell."""
        reader = self._reader
        return reader.lag() if isinstance(reader, Lagging) else None

    def forget_metrics(self) -> None:
        """Its Trigger or Subscription left the contract: its series leave /metrics (a restart keeps them)."""
        self._config.target.metrics.forget()

    async def stop(self) -> None:
        if self._untrack is not None:
            self._untrack()
            self._untrack = None
        if self._consumer is not None:
            await self._consumer.stop(self._settings.drain_timeout_s)
        if self._reader is not None:
            await self._reader.stop()

    async def _admit(self, message: Inbound) -> bool:
        """The filter: events it does not match are acked at once, without a delivery task.

        Acking out of turn is safe: no delivery is made for it, and Kafka still commits only up to the
        first unacked record. A filter that raises drops the event, counted and logged."""
        config = self._config
        try:
            matched = config.filter.matches(message.event.attributes)
        except Exception:
            log.exception("%s: filter failed on event %s, dropped", config.egress.consumer_group, message.event.id)
            config.target.metrics.dropped(metrics.FILTER_ERROR).inc()
            await message.ack()
            return False
        if not matched:
            config.target.metrics.filtered_out.inc()
            await message.ack()
            return False
        config.target.metrics.inflight.inc()
        return True

    async def _handle(self, message: Inbound) -> None:
        target = self._config.target
        try:
            event = message.event.copy()
            reply_to = None
            # The TTL is a Broker's loop guard; a channel hands every attribute on as it came, and its
            # Subscriptions send replies to their reply URL, not back into the channel.
            if self.resource.kind == "Broker":
                ttl = leave_broker(event)
                if target.egress.reply_to_original_topic:
                    reply_to = functools.partial(self._publish_reply, ttl)
            await self._deliverer.deliver(event, target, reply_to=reply_to)
            await message.ack()
        finally:
            target.metrics.inflight.dec()

    async def _publish_reply(self, ttl: int | None, reply: Event) -> None:
        """Back into the Broker: the reply inherits the TTL of the event it answers (loop prevention)."""
        inherit_ttl(reply, ttl)
        enter_broker(reply, max_ttl=self._settings.max_ttl)
        if not tracing.ENABLED:
            await self._channel.publish(self.resource.topic, reply)
            return
        # The reply enters the Broker as Knative's goes through its ingress: a broker: span the next Trigger continues.
        ref = self.resource.reference
        active = tracing.start_reentry(tracing.SpanInfo.ingress("Broker", ref.namespace, ref.name), reply)
        try:
            await self._channel.publish(self.resource.topic, reply)
        finally:
            tracing.finish(active)
