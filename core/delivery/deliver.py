"""Deliver one event to one target: retries, back-off, timeout, Retry-After, reply, dead letter, metrics.

`Deliverer.deliver` always ends an event in exactly one `Outcome`, and never raises (but for
cancellation at shutdown, after which the caller must not ack):

    delivered       the destination answered 2xx (and its reply, if any, went where it should)
    dead-lettered   the dead-letter sink answered 2xx for the event with Knative's error extensions
    dropped         given up, with a log line naming the event and nerve_dispatcher_dropped_total{reason}

An unexpected exception while delivering (a bug, an event the HTTP client cannot encode) is one of those
too: the event goes to the dead-letter sink when there is one, and is dropped with reason `error` when
there is none or that fails as well. The caller acks after `deliver` returns, whatever the outcome.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from core import tracing
from core.contract import Egress, Reference
from core.delivery import metrics
from core.delivery.deadletter import dead_letter_event
from core.delivery.metrics import TargetMetrics
from core.delivery.reply import ReplyPublisher, reply_of
from core.delivery.retry import RetryPolicy, is_success, should_retry
from core.delivery.sender import Attempt, Sender
from core.errors import BackendError, TTLExhausted
from core.events import Event
from core.hops import ARRIVAL_TIME
from core.oidc import TokenSource, TokenUnavailable
from core.tls import context_for
from core.tracing import SpanInfo

log = logging.getLogger("nerve.delivery")

Outcome = Literal["delivered", "dead-lettered", "dropped"]
Sleep = Callable[[float], Awaitable[None]]
ReplySeen = Callable[[Event, Reference], None]
"""Told of each reply event and the egress it answered for (EventType auto-create); must not block."""


@dataclass(frozen=True, slots=True)
class Target:
    """Where and how one egress generation delivers; compiled once, swapped whole on a contract change."""

    egress: Egress
    policy: RetryPolicy
    metrics: TargetMetrics
    span: SpanInfo
    destination_ssl: ssl.SSLContext | None = None
    """How an https destination is verified (its CACerts, core/tls.py); None: the client's default."""
    reply_ssl: ssl.SSLContext | None = None
    dead_letter_ssl: ssl.SSLContext | None = None

    @classmethod
    def compile(cls, egress: Egress, labels: tuple[str, str, str], *, default_timeout_s: float) -> Target:
        """`labels` are (namespace, owner, name): the owner is a Trigger's Broker, a Subscription's channel."""
        policy = RetryPolicy.from_config(egress.egress_config, default_timeout_s=default_timeout_s)
        ref = egress.reference
        scheme = egress.destination.partition("://")[0] if "://" in egress.destination else "http"
        dead_letter = egress.egress_config.dead_letter
        return cls(egress, policy, TargetMetrics(labels, kind=ref.kind, scheme=scheme),
                   SpanInfo.delivery(ref.kind, ref.namespace, ref.name, labels[1]),
                   destination_ssl=context_for(egress.destination, egress.destination_ca_certs),
                   reply_ssl=context_for(egress.reply_url or "", egress.reply_url_ca_certs),
                   dead_letter_ssl=context_for(dead_letter or "", egress.egress_config.dead_letter_ca_certs))

    @property
    def name(self) -> str:
        """How logs name the target: its consumer group, or its kind/namespace/name for a source."""
        ref = self.egress.reference
        return self.egress.consumer_group or f"{ref.kind}/{ref.namespace}/{ref.name}"


_ARRIVALS: dict[str, float] = {}
_ARRIVALS_MAX = 4096


def _arrived_at(arrival: str) -> float | None:
    """`knativearrivaltime` as epoch seconds, None when it does not parse. Every Trigger an event matches
    delivers it with the same value, so each is parsed once (with 10 Triggers the parse was most of the
    4 % the processing-time metric cost)."""
    at = _ARRIVALS.get(arrival)
    if at is None:
        try:
            at = datetime.fromisoformat(arrival).timestamp()
        except ValueError:
            return None
        if len(_ARRIVALS) >= _ARRIVALS_MAX:
            _ARRIVALS.clear()
        _ARRIVALS[arrival] = at
    return at


class Deliverer:
    """Delivery over one pooled Sender; `sleep` is injectable so tests need no real waits."""

    def __init__(self, sender: Sender, *, sleep: Sleep = asyncio.sleep, on_reply: ReplySeen | None = None,
                 tokens: TokenSource | None = None) -> None:
        self._sender = sender
        self._sleep = sleep
        self._on_reply = on_reply
        self._tokens = tokens
        """OIDC (authentication-oidc): a token for the egress's identity goes to each URL that has an audience."""

    async def _send(self, url: str, event: Event, egress: Egress, headers: dict[str, str], timeout_s: float,
                    context: ssl.SSLContext | None = None) -> Attempt:
        """One attempt; with OIDC, `Authorization: Bearer <JWT>` for the egress's identity when `url` is one of
        its places with an audience. No token to be had is a failed attempt (retried like a refused connection)."""
        auth = egress.auth
        audience = auth.audience_for(url, egress) if auth is not None and self._tokens is not None else ""
        if audience and auth is not None and self._tokens is not None:
            try:
                token = await self._tokens.token(auth.subject, audience)
            except TokenUnavailable as exc:
                return Attempt(None, f"dispatch error: no OIDC token for {audience!r}: {exc}".encode())
            headers = {**headers, "Authorization": f"Bearer {token}"}
        return await self._sender.send(url, event, structured=egress.format == "json", headers=headers,
                                       timeout_s=timeout_s, ssl=context)

    async def deliver(self, event: Event, target: Target, *, reply_to: ReplyPublisher | None = None) -> Outcome:
        """Deliver `event` (already prepared for the subscriber); see the module docstring for outcomes."""
        # One coroutine for the delivery, traced or not: each frame between a delivery and its socket costs
        # a few us a delivery to enter, suspend and resume (docs/performance.md).
        # With tracing, the delivery's span is the task's current span until it ends: each attempt's `send`
        # span is its child.
        active = tracing.start_delivery(target.span, event) if tracing.ENABLED else None
        ended: Outcome | None = None  # None: cancelled by shutdown, unacked
        try:
            self._observe_processing(event, target)
            failure = await self._deliver_with_retries(event, target, reply_to)
            if failure is None:
                ended = "delivered"
            else:
                destination, attempt = failure
                ended = await self._dead_letter(event, destination, attempt, target, metrics.RETRIES_EXHAUSTED)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the invariant: an error never ends an event silently
            log.exception("%s: error delivering event %s", target.name, event.id)
            ended = await self._after_error(event, target, exc)
        finally:
            if active is not None:
                tracing.finish(active, outcome=ended or "abandoned")
        return ended

    async def _after_error(self, event: Event, target: Target, exc: Exception) -> Outcome:
        """The event that met an error on its way: to the dead-letter sink if it has one, else dropped."""
        body = f"dispatch error: {type(exc).__name__}: {exc}".encode()
        try:
            return await self._dead_letter(event, target.egress.destination, Attempt(None, body), target,
                                           metrics.ERROR)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s: event %s dropped: the dead-letter sink could not be tried either",
                          target.name, event.id)
            target.metrics.dropped(metrics.ERROR).inc()
            return "dropped"

    def _observe_processing(self, event: Event, target: Target) -> None:
        arrival = event.attributes.get(ARRIVAL_TIME)
        if isinstance(arrival, str):
            at = _arrived_at(arrival)
            if at is not None:
                target.metrics.observe_processing(event.type, max(time.time() - at, 0.0))

    async def _deliver_with_retries(
        self, event: Event, target: Target, reply_to: ReplyPublisher | None
    ) -> tuple[str, Attempt] | None:
        """Deliver, and route the reply; returns the failing destination and last attempt, or None."""
        egress, policy = target.egress, target.policy
        headers = {"Prefer": "reply", "Kn-Namespace": egress.reference.namespace}
        destination = egress.destination
        attempt = Attempt(None)
        for number in range(policy.attempts):
            if number:
                target.metrics.retries.inc()
            started = time.perf_counter()
            if egress.auth is None:  # no OIDC: straight to the sender, one coroutine frame fewer
                attempt = await self._sender.send(destination, event, structured=egress.format == "json",
                                                  headers=headers, timeout_s=policy.timeout_s,
                                                  ssl=target.destination_ssl)
            else:
                attempt = await self._send(destination, event, egress, headers, policy.timeout_s,
                                           target.destination_ssl)
            self._observe_dispatch(event, attempt, started, target)
            if is_success(attempt.status):
                reply_failure = await self._route_reply(attempt, target, reply_to)
                if reply_failure is None:
                    return None
                destination, attempt = reply_failure
                if destination != egress.destination:
                    return reply_failure
            if number + 1 >= policy.attempts or not should_retry(attempt.status):
                break
            await self._sleep(policy.wait_s(number + 1, attempt.status, attempt.headers.get("Retry-After")))
            destination = egress.destination
        return destination, attempt

    async def _route_reply(
        self, attempt: Attempt, target: Target, reply_to: ReplyPublisher | None
    ) -> tuple[str, Attempt] | None:
        """Send a reply on; a failure is returned as (destination, attempt) to retry or dead-letter."""
        egress = target.egress
        reply = reply_of(attempt)
        if reply is None:
            return None
        if isinstance(reply, Attempt):
            return egress.destination, reply
        target.metrics.replies.inc()
        if tracing.ENABLED:
            tracing.continue_current(reply.headers)
        if self._on_reply is not None:
            self._on_reply(reply, egress.reference)
        if egress.reply_to_original_topic:
            if reply_to is None:
                return None
            try:
                await reply_to(reply)
            except TTLExhausted as exc:
                log.warning("%s: reply %s dropped: %s", target.name, reply.id, exc.reason)
            except BackendError as exc:
                # Storing the reply failed: the whole delivery fails and is retried (Knative spec).
                return egress.destination, Attempt(503, exc.reason.encode())
            return None
        if egress.reply_url:
            sent = await self._post_with_retries(egress.reply_url, reply, target, target.reply_ssl)
            if not is_success(sent.status):
                return egress.reply_url, sent
        return None

    async def _post_with_retries(self, url: str, event: Event, target: Target,
                                 context: ssl.SSLContext | None = None) -> Attempt:
        """POST to a reply URL or dead-letter sink with the target's retry policy; the last attempt."""
        policy, egress = target.policy, target.egress
        headers = {"Kn-Namespace": egress.reference.namespace}
        sent = Attempt(None)
        for number in range(policy.attempts):
            sent = await self._send(url, event, egress, headers, policy.timeout_s, context)
            if is_success(sent.status) or number + 1 >= policy.attempts or not should_retry(sent.status):
                break
            await self._sleep(policy.wait_s(number + 1, sent.status, sent.headers.get("Retry-After")))
        return sent

    async def _dead_letter(
        self, event: Event, destination: str, attempt: Attempt, target: Target, reason: str
    ) -> Outcome:
        egress, policy = target.egress, target.policy
        sink = egress.egress_config.dead_letter
        if not sink:
            target.metrics.dropped(reason).inc()
            if reason == metrics.ERROR:
                log.error("%s: event %s dropped, no dead-letter sink: %s", target.name, event.id,
                          attempt.body.decode(errors="replace"))
            else:
                log.warning("%s: event %s dropped after %d attempts (last status %s), no dead-letter sink",
                            target.name, event.id, policy.attempts, attempt.status)
            return "dropped"
        sent = await self._post_with_retries(sink, dead_letter_event(event, destination, attempt.status,
                                                                     attempt.body), target, target.dead_letter_ssl)
        if is_success(sent.status):
            target.metrics.dead_lettered.inc()
            return "dead-lettered"
        target.metrics.dropped(metrics.DEAD_LETTER_FAILED).inc()
        log.error("%s: event %s lost: the dead-letter sink %s failed too (status %s)", target.name, event.id,
                  sink, sent.status)
        return "dropped"

    @staticmethod
    def _observe_dispatch(event: Event, attempt: Attempt, started: float, target: Target) -> None:
        status = attempt.status if attempt.status is not None else 500
        target.metrics.observe_dispatch(event.type, status, time.perf_counter() - started)
