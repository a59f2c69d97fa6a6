"""The ingress edge: HTTP in, status codes out. Decisions about status codes are made here only.

Order of checks, as Knative's MT broker ingress does them: `Allow: POST, OPTIONS` on every answer;
OPTIONS 200; other non-POST 405; `/` 404; a path that fits no addressable kind's pattern
(ingress/routes.py; a Broker's is `/<namespace>/<name>`) 400; a body over the limit 413; not a valid
CloudEvent (bad header bytes included) 400; unknown resource 404; TTL exhausted 400; backend did not
take the event 503; stored 202.
"""

from __future__ import annotations

import logging
import time

import orjson
from aiohttp import web

from channels.registry import BackendPool
from core import observability
from core.contract import Contract, Resource
from core.errors import NerveError, PayloadTooLarge
from core.events import Event, from_http
from core.headers import pass_through
from ingress import metrics
from ingress.receive import receive
from ingress.routes import ROUTES, Target
from ingress.settings import IngressSettings

log = logging.getLogger("nerve.ingress")

ALLOW = "POST, OPTIONS"


class Ingress:
    """Routes requests to the Broker or Channel the contract names for their path."""

    def __init__(self, pool: BackendPool, settings: IngressSettings) -> None:
        self._pool = pool
        self.settings = settings
        self._routes: dict[str, Resource] = {}
        self.generation = 0

    async def apply(self, contract: Contract) -> None:
        # One assignment swaps the whole table: a request sees either the old or the new contract.
        self._routes = contract.by_path()
        self.generation = contract.generation

    async def handle(self, request: web.Request) -> web.Response:
        if request.method == "OPTIONS":
            return web.Response(status=200, headers={
                "Allow": ALLOW, "WebHook-Allowed-Origin": "*", "WebHook-Allowed-Rate": "*"})
        if request.method != "POST":
            return _error(405, "MethodNotAllowed", f"{request.method} is not allowed; send events with POST")
        path = request.path
        if path == "/":
            return _error(404, "NotFound", f"no {ROUTES.kinds} at /; send to {ROUTES.usage}")
        target = ROUTES.match(path)
        if target is None:
            return _error(400, "InvalidPath", f"path {path!r} must be {ROUTES.usage}")
        started = time.perf_counter()
        events: list[Event] = []
        try:
            body = await self._read(request)
            events = from_http(request.content_type if "Content-Type" in request.headers else None,
                               request.headers.items(), body)
            resource = ROUTES.resolve(target, self._routes)
            headers = pass_through(request.headers.items())
            if headers:
                for event in events:
                    event.headers = dict(headers)
            channel = await self._pool.get(resource.backend, resource.connection)
            await receive(events, resource, channel, stamp=target.route.stamp, max_ttl=self.settings.max_ttl)
        except NerveError as exc:
            self._observe(target, events, exc.status, None)
            if exc.status >= 500:
                log.warning("refused events for %s: %s", path, exc.reason)
            return _error(exc.status, type(exc).__name__, exc.reason, exc.field)
        millis = (time.perf_counter() - started) * 1000
        self._observe(target, events, 202, millis)
        return web.Response(status=202, headers={"Allow": ALLOW})

    async def _read(self, request: web.Request) -> bytes:
        limit = self.settings.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            raise PayloadTooLarge(f"request body of {request.content_length} bytes is over the {limit}-byte limit")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise PayloadTooLarge(f"request body is over the {limit}-byte limit") from None
        if len(body) > limit:
            raise PayloadTooLarge(f"request body of {len(body)} bytes is over the {limit}-byte limit")
        return body

    @staticmethod
    def _observe(target: Target, events: list[Event], status: int, millis: float | None) -> None:
        event_type = events[0].type if events else ""
        for _ in range(max(len(events), 1)):
            metrics.observe(target.namespace, target.name, event_type, status, millis)


def _error(status: int, error: str, reason: str, field: str | None = None) -> web.Response:
    body = {"error": error, "reason": reason}
    if field:
        body["field"] = field
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json",
                        headers={"Allow": ALLOW})


def create_app(ingress: Ingress, *, with_metrics: bool = False) -> web.Application:
    # aiohttp's own limit is set just above ours so that our handler, not aiohttp, words the 413.
    app = web.Application(client_max_size=ingress.settings.max_body_bytes + 1)
    observability.add_routes(app, with_metrics=with_metrics, generation=lambda: ingress.generation)
    app.router.add_route("*", "/{tail:.*}", ingress.handle)
    return app

