"""The ingress edge: HTTP in, status codes out. Decisions about status codes are made here only.

Order of checks, as Knative's MT broker ingress does them: `Allow: POST, OPTIONS` on every answer;
OPTIONS 200; other non-POST 405; `/` 404 (unless its Host names a channel, Knative's in-cluster form); a
path that fits no addressable kind's pattern (ingress/routes.py: `/<namespace>/<broker>`,
`/channels/<namespace>/<channel>`) 400; a body over the limit 413; not a valid
CloudEvent (bad header bytes included) 400; unknown resource 404; with OIDC on, no valid token 401 and
no EventPolicy letting the sender in 403 (ingress/auth.py); TTL exhausted 400; backend did not
take the event 503; stored 202.

A refused request is one DEBUG line (values in repr, so no producer-sent newline forges a line) and a
count in `nerve_ingress_refused_total{reason}`; malformed HTTP, which the server refuses before the handler
runs (core/http_server.py logs its DEBUG line), is counted as reason `BadHttpMessage`. Tracebacks are left
for real faults.

The handler sees the server-neutral request and answer of core/http_request.py, not a server's types.
"""

from __future__ import annotations

import functools
import logging
import os
import ssl
import time
from collections.abc import Callable

import orjson

from channels.registry import BackendPool
from core import observability, tracing
from core.contract import Contract, Resource
from core.errors import BackendError, InvalidEvent, NerveError, PayloadTooLarge, Unauthorized
from core.events import Event, from_http
from core.eventtypes import AutoCreate
from core.headers import pass_through
from core.http_request import BodyBroken, BodyTooLarge, Handler, HttpRequest, Response
from core.http_server import HttpServer, serve_http
from core.metric_labels import LabelCap, safe_label
from core.runtime import DRAIN_TIMEOUT_S
from core.tls import SchemeGuard
from ingress import metrics
from ingress.auth import Authenticator
from ingress.encoding import decode_body
from ingress.receive import receive
from ingress.routes import ROUTES, Target
from ingress.settings import IngressSettings

log = logging.getLogger("nerve.ingress")

ALLOW = "POST, OPTIONS"
_span_info = functools.lru_cache(maxsize=4096)(tracing.SpanInfo.ingress)


class BrokenBody(InvalidEvent):
    """The body could not be read to its end: the connection cannot carry another request (Connection: close)."""


class Ingress:
    """Routes requests to the Broker or Channel the contract names for their path."""

    def __init__(self, pool: BackendPool, settings: IngressSettings, *, auto_create: AutoCreate | None = None) -> None:
        self._pool = pool
        self.settings = settings
        self._auto_create = auto_create
        """Told of every accepted event (EventType auto-create, off unless enabled): a set lookup per event."""
        self._routes: dict[str, Resource] = {}
        self._types: dict[str, LabelCap] = {}
        """The `event_type` label values each resource (by path) may use."""
        self.generation = 0
        self.auth = Authenticator()
        """OIDC and EventPolicies (ingress/auth.py): 401/403 before anything is stored."""

    async def apply(self, contract: Contract) -> None:
        # One assignment swaps the whole table: a request sees either the old or the new contract.
        routes, self._routes = self._routes, contract.by_path()
        for path in routes.keys() - self._routes.keys():  # gone from the contract: so are its series
            gone = routes[path].reference
            metrics.forget(ROUTES.kind_of(routes[path]), gone.namespace, gone.name)
        self._types = {path: cap for path, cap in self._types.items() if path in self._routes}
        self.auth.apply(contract)
        self.generation = contract.generation

    async def handle(self, request: HttpRequest) -> Response:
        if request.method == "OPTIONS":
            return Response(200, headers={"Allow": ALLOW, "WebHook-Allowed-Origin": "*", "WebHook-Allowed-Rate": "*"})
        if request.method != "POST":
            return _refuse(request, 405, "MethodNotAllowed",
                           f"{request.method} is not allowed; send events with POST")
        path = request.path
        target = ROUTES.match_host(request.headers.get("Host")) if path == "/" else ROUTES.match(path)
        if path == "/" and target is None:
            return _refuse(request, 404, "NotFound", f"no {ROUTES.kinds} at /; send to {ROUTES.usage}")
        if target is None:
            return _refuse(request, 400, "InvalidPath", f"path {path!r} must be {ROUTES.usage}")
        if not tracing.ENABLED:
            return await self._receive(request, target, None)
        active = tracing.start_ingress(_span_info(target.route.kind, target.namespace, target.name), request.headers)
        status = 500
        try:
            response = await self._receive(request, target, active)
            status = response.status
            return response
        finally:
            tracing.finish(active, status)

    async def _receive(self, request: HttpRequest, target: Target, active: tracing.Active | None) -> Response:
        path = request.path
        started = time.perf_counter()
        events: list[Event] = []
        try:
            body = await self._read(request)
            # The raw header, parsed by from_http: a malformed value is the producer's 400, never a fault.
            events = from_http(request.headers.get("Content-Type"), request.headers.items(), body)
            resource = ROUTES.resolve(target, self._routes)
            self.auth.check(resource, request.headers, events)
            headers = pass_through(request.headers.items())
            if headers:
                for event in events:
                    event.headers = dict(headers)
            if active is not None:
                tracing.received(active, events)  # each event carries the ingress span's context on
            channel = await self._pool.get(resource.backend, resource.connection, resource.security)
            await receive(events, resource, channel, stamp=target.route.stamp, max_ttl=self.settings.max_ttl)
        except NerveError as exc:
            # A backend that did not take the events was dispatched to: its 503 has a duration.
            tried = (time.perf_counter() - started) * 1000 if isinstance(exc, BackendError) else None
            self._observe(target, events, exc.status, tried)
            if exc.status >= 500:
                log.warning("refused events for %r: %r", path, exc.reason)
            response = _refuse(request, exc.status, type(exc).__name__, exc.reason, exc.field)
            if isinstance(exc, BrokenBody):
                response.close = True
            elif isinstance(exc, Unauthorized):
                response.headers["WWW-Authenticate"] = exc.challenge
            return response
        millis = (time.perf_counter() - started) * 1000
        self._observe(target, events, 202, millis)
        if self._auto_create is not None:
            for event in events:
                self._auto_create.observe(event, resource.reference)
        return Response(202, headers={"Allow": ALLOW})

    async def _read(self, request: HttpRequest) -> bytes:
        limit = self.settings.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            # Before anything of the body is read (an `Expect: 100-continue` is never answered 100).
            raise PayloadTooLarge(f"request body of {request.content_length} bytes is over the {limit}-byte limit")
        try:
            # The raw bytes: the server decodes no Content-Encoding (ingress/encoding.py says why).
            body = await request.read()
        except BodyTooLarge:  # a chunked body that grew past the limit
            raise PayloadTooLarge(f"request body is over the {limit}-byte limit") from None
        except BodyBroken as exc:  # bad chunked framing, the connection lost or too slow
            raise BrokenBody(f"the request body could not be read: {exc}", field="body") from None
        if len(body) > limit:
            raise PayloadTooLarge(f"request body of {len(body)} bytes is over the {limit}-byte limit")
        return decode_body(body, request.headers.get("Content-Encoding"), limit)

    def _observe(self, target: Target, events: list[Event], status: int, millis: float | None) -> None:
        # Only a resource the contract knows gets series: a path is anyone's to invent.
        path = target.path
        resource = self._routes.get(path)
        if resource is None or not target.route.serves(resource):
            return
        cap = self._types.get(path)
        if cap is None:
            cap = self._types[path] = LabelCap()
        event_type = cap(events[0].type if events else "")
        kind = target.route.kind
        for _ in range(max(len(events), 1)):
            metrics.observe(target.namespace, target.name, event_type, status, millis, kind=kind,
                            topic=resource.topic, backend=resource.backend)


def _refuse(request: HttpRequest, status: int, error: str, reason: str, field: str | None = None) -> Response:
    metrics.REFUSED.labels(error).inc()
    if log.isEnabledFor(logging.DEBUG):
        log.debug("refused %s %r (ce-id %r): %d %s: %r", request.method, request.path,
                  request.headers.get("ce-id"), status, error, reason)
    return _error(status, error, reason, field)


def _error(status: int, error: str, reason: str, field: str | None = None) -> Response:
    # safe_label: a reason quoting a producer's value must still be encodable JSON (no lone surrogate).
    body = {"error": error, "reason": safe_label(reason)}
    if field:
        body["field"] = safe_label(field)
    return Response(status, orjson.dumps(body), headers={"Allow": ALLOW, "Content-Type": "application/json"})


def _count_malformed(_: str) -> None:
    metrics.REFUSED.labels("BadHttpMessage").inc()


def _route(answer: Callable[[], observability.Answer]) -> Handler:
    async def route(_: HttpRequest) -> Response:
        made = answer()
        return Response(made.status, made.body, content_type=made.content_type)

    return route


async def serve_ingress(ingress: Ingress, host: str, port: int, *, scheme: SchemeGuard, with_metrics: bool = False,
                        worker: bool = False, drain_timeout: float = DRAIN_TIMEOUT_S,
                        ssl_context: ssl.SSLContext | None = None,
                        reuse_port: bool = False) -> tuple[HttpServer, int]:
    """Serve the ingress on Nerve's HTTP/1.1 server (core/http_server.py): /healthz, /readyz (and /metrics)
    beside every other request going to `ingress.handle`, after `scheme` (which listener takes events,
    core/tls.py). A `worker` of `--workers N` says on every answer which process gave it:
    `Nerve-Worker: <pid>`. Returns the server (`add_site` adds the https listener, `cleanup` drains it)
    and the bound port."""
    settings = ingress.settings

    def scheme_check(request: HttpRequest) -> Response | None:
        text = scheme.refusal(request.path, request.secure)
        return None if text is None else Response(404, text.encode(), content_type="text/plain; charset=utf-8")

    answers = observability.answers(with_metrics=with_metrics, generation=lambda: ingress.generation)
    return await serve_http(
        ingress.handle, host, port, name="ingress", routes={path: _route(a) for path, a in answers.items()},
        checks=[scheme_check], headers={"Nerve-Worker": str(os.getpid())} if worker else None,
        limits=settings.limits, max_body=settings.max_body_bytes, drain_timeout=drain_timeout,
        malformed=_count_malformed, ssl_context=ssl_context, reuse_port=reuse_port)
