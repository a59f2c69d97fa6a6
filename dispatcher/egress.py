"""One Trigger (or Subscription): consume its group, filter, deliver with retries, reply, dead-letter, ack.

Unordered egresses deliver up to `max_inflight` events at once. Ordered egresses (Knative's
`kafka.eventing.knative.dev/delivery.order: ordered`) keep one lane per ordering key (a Kafka
partition, a partition key) and deliver a lane's events one after the other, retries included, while
other lanes go on. An event is acked only once it was delivered (2xx), filtered out, or handed to the
dead-letter sink; a delivery abandoned by shutdown is never acked, so durable backends bring it back.

A contract change that alters only delivery settings or filters is applied with `update()` between
events; in-flight deliveries finish with the settings they started with.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
from collections import deque
from collections.abc import Coroutine, Mapping
from datetime import datetime
from typing import Any

from channels.base import Backend, Message, Reader, RecordBackend
from core.contract import Egress, Resource
from core.errors import BackendError, InvalidEvent, TTLExhausted
from core.events import Event, from_http, is_cloudevent_response
from core.filters import EventFilter, compile_trigger_filter
from core.filters.cesql import CesqlError
from core.headers import is_pass_through
from core.hops import ARRIVAL_TIME, enter_broker, inherit_ttl, leave_broker
from dispatcher import metrics
from dispatcher.delivery import Attempt, Sender
from dispatcher.retry import RetryPolicy, is_success, should_retry
from dispatcher.settings import DispatcherSettings

log = logging.getLogger("nerve.dispatcher")

ERROR_DATA_MAX = 1024


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


class _Config:
    """Everything compiled from one generation of an egress; swapped whole by update()."""

    __slots__ = ("_children", "_processing", "egress", "filter", "filtered_out", "inflight", "labels", "policy")

    def __init__(self, egress: Egress, resource: Resource, settings: DispatcherSettings) -> None:
        self.egress = egress
        self.filter: EventFilter = _compile_filter(egress)
        self.policy = RetryPolicy.from_config(egress.egress_config, default_timeout_s=settings.default_timeout_s)
        ref = egress.reference
        self.labels = (ref.namespace, resource.reference.name, ref.name)
        self._children: dict[tuple[str, int], tuple[Any, Any]] = {}
        self._processing: dict[str, Any] = {}
        self.inflight = metrics.INFLIGHT.labels(*self.labels)
        self.filtered_out = metrics.FILTERED_OUT.labels(*self.labels)

    def processing_metric(self, event_type: str) -> Any:
        child = self._processing.get(event_type)
        if child is None:
            child = metrics.PROCESSING_LATENCY.labels(*self.labels, event_type)
            if len(self._processing) < 1024:
                self._processing[event_type] = child
        return child

    def dispatch_metrics(self, event_type: str, status: int) -> tuple[Any, Any]:
        """The counter and histogram children for one (type, status): label lookups cost microseconds."""
        key = (event_type, status)
        children = self._children.get(key)
        if children is None:
            labels = (*self.labels, event_type, str(status), f"{status // 100}xx")
            children = (metrics.EVENT_COUNT.labels(*labels), metrics.DISPATCH_LATENCY.labels(*labels))
            if len(self._children) < 1024:
                self._children[key] = children
        return children


class EgressRunner:
    def __init__(
        self, egress: Egress, resource: Resource, channel: Backend, sender: Sender, settings: DispatcherSettings
    ) -> None:
        self.resource = resource
        self._channel = channel
        self._sender = sender
        self._settings = settings
        self._config = _Config(egress, resource, settings)
        self._subscription: Reader | None = None
        self._task: asyncio.Task[None] | None = None
        self._workers: set[asyncio.Task[None]] = set()
        self._inflight = 0
        self._slot_free = asyncio.Event()
        self._lanes: dict[str, deque[Message]] = {}
        self._stopping = False

    @property
    def egress(self) -> Egress:
        return self._config.egress

    def update(self, egress: Egress, resource: Resource) -> None:
        self.resource = resource
        self._config = _Config(egress, resource, self._settings)

    async def start(self) -> None:
        """Subscribe (positioned, so later events are seen) and start consuming."""
        self._subscription = self._subscribe()
        await self._subscription.start()
        self._task = asyncio.create_task(self._consume(), name=f"egress-{self.egress.consumer_group}")

    async def stop(self) -> None:
        self._stopping = True
        self._slot_free.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._workers:
            _, pending = await asyncio.wait(self._workers, timeout=self._settings.drain_timeout_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._subscription is not None:
            await self._subscription.stop()

    def _subscribe(self) -> Reader:
        resource, group = self.resource, self.egress.consumer_group
        if resource.kind != "KafkaSource":
            return self._channel.open_reader(resource.topic, group)
        if not isinstance(self._channel, RecordBackend):
            raise BackendError(f"the {self._channel.name} backend cannot read raw records for a KafkaSource")
        config = resource.backend_config
        overrides = {k.removeprefix("ceoverride."): v for k, v in config.items() if k.startswith("ceoverride.")}
        return self._channel.open_record_reader(
            resource.topic,
            group,
            from_start=config.get("initialOffset") == "earliest",
            source=config.get("source", ""),
            overrides=overrides,
        )

    # ------------------------------------------------------------------------------------ consuming

    async def _consume(self) -> None:
        assert self._subscription is not None
        window = self._settings.max_inflight
        while not self._stopping:
            while self._inflight >= window:
                self._slot_free.clear()
                await self._slot_free.wait()
            try:
                batch = await self._subscription.receive(window - self._inflight)
            except BackendError as exc:
                log.warning("%s: receive failed, retrying: %s", self.egress.consumer_group, exc)
                await asyncio.sleep(1.0)
                continue
            if not batch:
                continue  # stopped, or a spurious wake-up: the loop condition decides
            config = self._config
            ordered = config.egress.delivery_order == "ordered"
            for delivery in batch:
                # Most events match few of a Broker's Triggers: decide here, without a task, and ack at
                # once. Acking out of turn is safe: no delivery is made for it, and Kafka still commits
                # only up to the first unacked record.
                if not config.filter.matches(delivery.event.attributes):
                    config.filtered_out.inc()
                    await delivery.ack()
                    continue
                self._inflight += 1
                config.inflight.inc()
                if ordered:
                    key = delivery.ordering_key
                    lane = self._lanes.get(key)
                    if lane is not None:
                        lane.append(delivery)
                        continue
                    self._lanes[key] = deque([delivery])
                    self._spawn(self._run_lane(key))
                else:
                    self._spawn(self._one(delivery))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._workers.add(task)
        task.add_done_callback(self._workers.discard)

    async def _run_lane(self, key: str) -> None:
        lane = self._lanes[key]
        try:
            while lane:
                await self._one(lane[0])
                lane.popleft()
        finally:
            self._lanes.pop(key, None)

    async def _one(self, delivery: Message) -> None:
        config = self._config
        try:
            await self._process(delivery.event, config)
            await delivery.ack()
        except asyncio.CancelledError:
            raise
        except Exception:  # one bad event must never stop the Trigger; it is logged and acked
            log.exception("%s: unexpected error delivering %s", config.egress.consumer_group, delivery.event.id)
            await delivery.ack()
        finally:
            self._inflight -= 1
            config.inflight.dec()
            self._slot_free.set()

    # ------------------------------------------------------------------------------------ delivering

    async def _process(self, stored: Event, config: _Config) -> None:
        """Deliver one event that passed the filter (the consume loop filters)."""
        event = stored.copy()
        ttl = leave_broker(event)
        self._observe_processing(event, config)
        failure = await self._deliver_with_retries(event, ttl, config)
        if failure is None:
            return
        destination, attempt = failure
        await self._dead_letter(event, destination, attempt, config)

    def _observe_processing(self, event: Event, config: _Config) -> None:
        arrival = event.attributes.get(ARRIVAL_TIME)
        if isinstance(arrival, str):
            with contextlib.suppress(ValueError):
                waited = time.time() - datetime.fromisoformat(arrival).timestamp()
                config.processing_metric(event.type).observe(max(waited, 0.0) * 1000)

    async def _deliver_with_retries(self, event: Event, ttl: int | None, config: _Config) -> tuple[str, Attempt] | None:
        """Deliver, and route the reply; returns the failing destination and last attempt, or None."""
        egress, policy = config.egress, config.policy
        headers = {"Prefer": "reply", "Kn-Namespace": egress.reference.namespace}
        structured = egress.format == "json"
        destination = egress.destination
        attempt = Attempt(None)
        for number in range(policy.attempts):
            if number:
                metrics.RETRIES.labels(*config.labels).inc()
            started = time.perf_counter()
            attempt = await self._sender.send(
                destination, event, structured=structured, headers=headers, timeout_s=policy.timeout_s
            )
            self._observe_dispatch(event, attempt, started, config)
            if is_success(attempt.status):
                reply_failure = await self._route_reply(attempt, ttl, config)
                if reply_failure is None:
                    return None
                destination, attempt = reply_failure
                if destination != egress.destination:
                    return reply_failure
            if number + 1 >= policy.attempts or not should_retry(attempt.status):
                break
            await asyncio.sleep(policy.wait_s(number + 1, attempt.status, attempt.headers.get("Retry-After")))
            destination = egress.destination
        return destination, attempt

    async def _route_reply(self, attempt: Attempt, ttl: int | None, config: _Config) -> tuple[str, Attempt] | None:
        """Send a reply on; a failure is returned as (destination, attempt) to retry or dead-letter."""
        egress = config.egress
        # A 202 is never a reply, even when it looks like a CloudEvent (Knative data-plane spec).
        if attempt.status != 200 or not is_cloudevent_response(attempt.content_type, attempt.headers):
            return None
        try:
            [reply] = from_http(attempt.content_type, attempt.headers.items(), attempt.body)
        except (InvalidEvent, ValueError) as exc:
            # A malformed reply fails the delivery like a 502 from the subscriber, and is retried.
            return egress.destination, Attempt(502, f"invalid reply event: {exc}".encode())
        reply.headers = {k.lower(): v for k, v in attempt.headers.items() if is_pass_through(k)}
        metrics.REPLIES.labels(*config.labels).inc()
        if egress.reply_to_original_topic:
            inherit_ttl(reply, ttl)
            try:
                enter_broker(reply, max_ttl=self._settings.max_ttl)
                await self._channel.publish(self.resource.topic, reply)
            except TTLExhausted as exc:
                log.warning("%s: reply %s dropped: %s", egress.consumer_group, reply.id, exc.reason)
            except BackendError as exc:
                # Storing the reply failed: the whole delivery fails and is retried (Knative spec).
                return egress.destination, Attempt(503, exc.reason.encode())
            return None
        if egress.reply_url:
            sent = await self._post_with_retries(egress.reply_url, reply, config)
            if not is_success(sent.status):
                return egress.reply_url, sent
        return None

    async def _post_with_retries(self, url: str, event: Event, config: _Config) -> Attempt:
        """POST to a reply URL or dead-letter sink with the egress's retry policy; the last attempt."""
        policy, egress = config.policy, config.egress
        sent = Attempt(None)
        for number in range(policy.attempts):
            sent = await self._sender.send(
                url,
                event,
                structured=egress.format == "json",
                headers={"Kn-Namespace": egress.reference.namespace},
                timeout_s=policy.timeout_s,
            )
            if is_success(sent.status) or number + 1 >= policy.attempts or not should_retry(sent.status):
                break
            await asyncio.sleep(policy.wait_s(number + 1, sent.status, sent.headers.get("Retry-After")))
        return sent

    async def _dead_letter(self, event: Event, destination: str, attempt: Attempt, config: _Config) -> None:
        egress, policy = config.egress, config.policy
        sink = egress.egress_config.dead_letter
        if not sink:
            metrics.DROPPED.labels(*config.labels).inc()
            log.warning(
                "%s: event %s dropped after %d attempts (last status %s), no dead-letter sink",
                egress.consumer_group,
                event.id,
                policy.attempts,
                attempt.status,
            )
            return
        dead = event.copy()
        dead.attributes["knativeerrordest"] = destination
        dead.attributes["knativeerrorcode"] = str(attempt.status if attempt.status is not None else 500)
        if attempt.body:
            dead.attributes["knativeerrordata"] = base64.b64encode(attempt.body).decode()[:ERROR_DATA_MAX]
        sent = await self._post_with_retries(sink, dead, config)
        if is_success(sent.status):
            metrics.DEAD_LETTERED.labels(*config.labels).inc()
            return
        metrics.DROPPED.labels(*config.labels).inc()
        log.error("%s: event %s lost: the dead-letter sink %s failed too", egress.consumer_group, event.id, sink)

    @staticmethod
    def _observe_dispatch(event: Event, attempt: Attempt, started: float, config: _Config) -> None:
        status = attempt.status if attempt.status is not None else 500
        count, latency = config.dispatch_metrics(event.type, status)
        count.inc()
        latency.observe((time.perf_counter() - started) * 1000)
