"""One Trigger or Subscription: take its events (from the topic's shared reader, or its own), deliver, ack.

A Trigger's events come from a Broker (TTL stripped before delivery, replies back into the Broker);
a Subscription's from a channel (attributes untouched, replies to the Subscription's reply URL, no
filter: its egress has none, so everything matches).

An event is acked only once it was delivered (2xx), filtered out, dead-lettered or dropped with a
reason (core/delivery/deliver.py); a delivery abandoned by shutdown is never acked, so durable
backends bring it back. The window and ordered lanes are core.delivery.Consumer's.

A contract change that alters only delivery settings or filters is applied with `update()` between
events; in-flight deliveries finish with the settings they started with. Its filter is compiled again
only when its filter fields changed, its delivery target only when the egress did.

Fed by the shared reader, its filter runs there (through the index, dispatcher/fanout.py) and every
event it gets is a match. Too slow for the shared reader (its backlog past `--fanout-backlog`), it
drains what is in flight, commits, and reads on alone from that position with its own consumer, then
comes back once its lag stayed within one window for a few seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from channels.base import Backend, Cursor, Lagging, Reader, TypeFilteredBackend
from core import tracing
from core.bounded import finish_within, told_if_slow
from core.contract import Egress, Resource
from core.delivery import Consumer, Deliverer, Inbound, Target, metrics
from core.delivery.metrics import TargetMetrics
from core.delivery.reply import ReplyPublisher
from core.errors import BackendError
from core.events import Event
from core.filters import EventFilter, compile_trigger_filter
from core.filters.cesql import CesqlError
from core.filters.exact import required_type
from core.filters.index import exact_requirements
from core.hops import enter_broker, for_subscriber, inherit_ttl
from dispatcher.fanout import Fanout, Fanouts, Inbox
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

    __slots__ = ("egress", "filter", "labels", "requirements", "target")
    filter: EventFilter
    requirements: dict[str, str]
    target: Target

    def __init__(self, egress: Egress, resource: Resource, settings: DispatcherSettings,
                 previous: _Config | None = None) -> None:
        self.egress = egress
        self.labels = (egress.reference.namespace, resource.reference.name, egress.reference.name)
        if previous is not None and _filter_fields(previous.egress) == _filter_fields(egress):
            # Compiled filters are cached per Trigger and filter spec: a generation that changes anything
            # else (or nothing of this Trigger) compiles nothing again.
            self.filter, self.requirements = previous.filter, previous.requirements
        else:
            self.filter = _compile_filter(egress)
            self.requirements = exact_requirements(egress.filter_attributes, egress.filters)
        if previous is not None and previous.egress == egress and previous.labels == self.labels:
            self.target = previous.target
        else:
            self.target = Target.compile(egress, self.labels, default_timeout_s=settings.default_timeout_s)


def _filter_fields(egress: Egress) -> tuple[object, ...]:
    return egress.filter_attributes, egress.filters


REJOIN_CHECK_S = 1.0
STOP_GRACE_S = 10.0
"""Beyond the drain timeout, how long rejoining waits for the Trigger's own reader to stop."""
SWITCH_SLOW_S = 5.0
"""Starting its own reader or attaching to the shared one takes a few Kafka round trips: longer than this
is logged with where it waits (once, in a CI run, a Trigger back from reading alone got nothing more)."""
REJOIN_CALM_CHECKS = 3
"""A Trigger that read on alone rejoins the shared reader once its lag stayed low this many checks."""


class EgressRunner:
    """One Trigger's or Subscription's deliveries. Fed by its topic's shared reader (dispatcher/fanout.py)
    when the backend has one and `--shared-reader` is on; else, and while it is detached for being too
    slow, by a Reader of its own consumer group, with its filter run here."""

    def __init__(
        self,
        egress: Egress,
        resource: Resource,
        channel: Backend,
        deliverer: Deliverer,
        settings: DispatcherSettings,
        fanouts: Fanouts | None = None,
    ) -> None:
        self.resource = resource
        self._channel = channel
        self._deliverer = deliverer
        self._settings = settings
        self._fanouts = fanouts
        self._config = _Config(egress, resource, settings)
        self._reader: Reader | None = None
        self._fanout: Fanout | None = None
        self._cursor: Cursor | None = None
        self._inbox: Inbox | None = None
        self._consumer: Consumer | None = None
        self._untrack: Callable[[], None] | None = None
        self.server_type: str | None = None
        """The type the backend's server filters this group on (started by open_typed_reader), or None."""
        self._switch: asyncio.Task[None] | None = None
        self._watch: asyncio.Task[None] | None = None
        self._stopping = False
        self._reply_to: dict[int | None, ReplyPublisher] = {}
        """`_publish_reply` for each TTL an event came with: made once, not per delivery (a partial each
        was 2 % of a 10-Trigger dispatcher's CPU), though few deliveries get a reply."""

    @property
    def egress(self) -> Egress:
        return self._config.egress

    # What dispatcher.fanout.Subscriber asks.
    @property
    def group(self) -> str:
        return self._config.egress.consumer_group

    @property
    def since(self) -> float | None:
        return _epoch(self._config.egress.created)

    @property
    def filter(self) -> EventFilter:
        return self._config.filter

    @property
    def requirements(self) -> dict[str, str]:
        return self._config.requirements

    @property
    def target_metrics(self) -> TargetMetrics:
        metrics_: TargetMetrics = self._config.target.metrics
        return metrics_

    @property
    def shared(self) -> bool:
        """Fed by the shared reader now (False: its own reader)."""
        return self._fanout is not None

    def update(self, egress: Egress, resource: Resource) -> None:
        previous = self._config
        self.resource = resource
        self._config = _Config(egress, resource, self._settings, previous)
        if self._fanout is not None and self._config.filter is not previous.filter:
            self._fanout.reindex()

    async def start(self) -> None:
        """Subscribe and start consuming. A new group is positioned at the first event stored since its
        Trigger or Subscription was made: what the ingress accepted before this dispatcher ran (started
        late, restarted, or slower to see the contract than the ingress) is delivered, not skipped."""
        if self._fanouts is not None and self._fanouts.shares(self._channel):
            await self._join()
        else:
            await self._read_alone()
        self._untrack = LAGS.track(self)

    def _make_consumer(self, receive: Callable[[int], Awaitable[Sequence[Inbound]]],
                       admit: Callable[[Inbound], Awaitable[bool]]) -> Consumer:
        return Consumer(
            part_name(self.egress),
            receive,
            self._handle,
            window=self._settings.max_inflight,
            ordered=lambda: self._config.egress.delivery_order == "ordered",
            admit=admit,
        )

    async def _join(self) -> None:
        assert self._fanouts is not None
        ref = self.resource.reference
        part = f"{ref.kind or 'Resource'}/{ref.namespace}/{ref.name}"
        fanout = self._fanouts.get(self._channel, self.resource.topic, part)
        try:
            await fanout.ready()
            cursor, inbox = await fanout.attach(self)
        except BackendError:
            self._fanouts.forget(self._channel, self.resource.topic, fanout)
            raise
        self._fanout, self._cursor, self._inbox = fanout, cursor, inbox
        self._consumer = self._make_consumer(inbox.receive, self._admit_taken)
        self._consumer.start()

    async def _read_alone(self, fanout: Fanout | None = None) -> None:
        # A backend that filters on the server (NATS subjects) reads only this group's type when its filter
        # names one exact type; the filter still runs here on what arrives.
        self.server_type = self.wanted_server_type(self.egress)
        if fanout is not None:
            # Left the shared reader for being slow: over what that reader reads in this process only.
            reader = fanout.open_alone(self.egress.consumer_group, since=self.since)
        elif self.server_type is not None and isinstance(self._channel, TypeFilteredBackend):
            reader = self._channel.open_typed_reader(self.resource.topic, self.egress.consumer_group,
                                                     self.server_type, since=self.since)
        else:
            reader = self._channel.open_reader(self.resource.topic, self.egress.consumer_group, since=self.since)
        await reader.start()
        self._reader = reader
        self._consumer = self._make_consumer(reader.receive, self._admit)
        self._consumer.start()

    async def _leave_fanout(self) -> None:
        """Out of the shared reader: what waited is dropped unacked, what is in flight finishes, then the
        group's position is committed (its first unacked record)."""
        fanout, cursor, inbox, consumer = self._fanout, self._cursor, self._inbox, self._consumer
        self._fanout = self._cursor = self._inbox = self._consumer = None
        if fanout is None or cursor is None or inbox is None:
            return
        fanout.leave(self)
        inbox.close()
        if consumer is not None:
            await consumer.stop(self._settings.drain_timeout_s)
        await fanout.release(cursor)

    async def _stop_alone(self) -> None:
        reader, consumer = self._reader, self._consumer
        self._reader = self._consumer = None
        if consumer is not None:
            await consumer.stop(self._settings.drain_timeout_s)
        if reader is not None:
            await reader.stop()

    def overflowed(self) -> None:
        if self._stopping or (self._switch is not None and not self._switch.done()):
            return
        self._switch = asyncio.create_task(self._go_alone(), name=f"detach-{self.group}")
        self._switch.add_done_callback(self._switched)

    def _switched(self, task: asyncio.Task[None]) -> None:
        # A switch that failed leaves the Trigger reading from neither reader: never silently.
        if not task.cancelled() and task.exception() is not None:
            log.error("%s: %s failed, its events wait until the dispatcher restarts", self.group, task.get_name(),
                      exc_info=task.exception())

    async def _go_alone(self) -> None:
        fanout = self._fanout
        # Bounded as rejoining is (below): out of the index at once, the rest must not keep it from reading.
        await finish_within(self._leave_fanout(), self._settings.drain_timeout_s + STOP_GRACE_S,
                            f"{self.group}: leaving the shared reader")
        delay = 1.0
        while not self._stopping:
            try:
                await told_if_slow(self._read_alone(fanout), SWITCH_SLOW_S, f"{self.group}: starting its own reader")
                break
            except BackendError as exc:
                log.warning("%s: cannot read alone yet (%s); retrying", self.group, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
        if not self._stopping:
            self._watch = asyncio.create_task(self._rejoin_when_caught_up(), name=f"rejoin-{self.group}")

    async def _rejoin_when_caught_up(self) -> None:
        calm = 0
        while calm < REJOIN_CALM_CHECKS:
            await asyncio.sleep(REJOIN_CHECK_S)
            lag = self.lag()
            calm = calm + 1 if lag is not None and lag <= self._settings.max_inflight else 0
        if not self._stopping:
            self._switch = asyncio.create_task(self._rejoin(), name=f"rejoin-{self.group}")
            self._switch.add_done_callback(self._switched)

    async def _rejoin(self) -> None:
        log.info("%s: caught up, back on the shared reader", self.group)
        # Bounded: while its own reader stops, this Trigger reads nothing. A stop that hangs (once, in a
        # comparator run, inside the Kafka client's shutdown: no LeaveGroup was ever sent) would leave it
        # out of both readers for good; late, the stop goes on in the background (core/bounded.py).
        await finish_within(self._stop_alone(), self._settings.drain_timeout_s + STOP_GRACE_S,
                            f"{self.group}: stopping its own reader")
        delay = 1.0
        while not self._stopping:
            try:
                await told_if_slow(self._join(), SWITCH_SLOW_S, f"{self.group}: attaching to the shared reader")
                return
            except BackendError as exc:
                log.warning("%s: cannot rejoin the shared reader yet (%s); retrying", self.group, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

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
        cursor = self._cursor
        if cursor is not None:
            return cursor.lag()
        reader = self._reader
        return reader.lag() if isinstance(reader, Lagging) else None

    def forget_metrics(self) -> None:
        """Its Trigger or Subscription left the contract: its series leave /metrics (a restart keeps them)."""
        self._config.target.metrics.forget()

    async def stop(self) -> None:
        self._stopping = True
        if self._untrack is not None:
            self._untrack()
            self._untrack = None
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        if self._switch is not None:
            # A switch half done would leave a reader behind: it finishes (its waits end on _stopping).
            with contextlib.suppress(Exception):
                await self._switch
        if self._fanout is not None:
            await self._leave_fanout()
        else:
            await self._stop_alone()

    async def _admit_taken(self, message: Inbound) -> bool:
        """From the shared reader: its filter already matched (dispatcher/fanout.py)."""
        self._config.target.metrics.inflight.inc()
        return True

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
            # One event object for every Trigger or Subscription that delivers it (the fan-out hands them
            # all the same record): delivering never changes it, so none is copied per delivery.
            event = message.event
            reply_to = None
            # The TTL is a Broker's loop guard; a channel hands every attribute on as it came, and its
            # Subscriptions send replies to their reply URL, not back into the channel.
            if self.resource.kind == "Broker":
                event, ttl = for_subscriber(event)
                if target.egress.reply_to_original_topic:
                    reply_to = self._reply_to.get(ttl)
                    if reply_to is None:
                        if len(self._reply_to) >= 256:  # TTLs are small counts; this bounds the unexpected
                            self._reply_to.clear()
                        reply_to = self._reply_to[ttl] = functools.partial(self._publish_reply, ttl)
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
