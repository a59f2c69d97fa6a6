"""What a Nerve HTTP server allows a connection: idle and header time, body time, how many at once.

Both servers keep these limits: aiohttp's (ConnectionGuard, every service but the ingress) and Nerve's own
HTTP/1.1 server of the ingress (core/http_server.py), which share the counting and the 503 here (Closings,
busy_refusal). On aiohttp, its keep-alive timer starts when a connection opens and is reset only when a request has been
answered, so `idle_timeout_s` bounds both an idle connection and one that trickles its headers
(slowloris). A request whose body has not fully arrived `body_timeout_s` after its headers is closed.

At `max_connections`, a new connection first makes room by closing the oldest connection that has no
request in progress (idle, or still sending headers): held sockets cannot lock producers out. Only when
every connection is busy is the new one refused, with a 503 and `Connection: close`. Each closing is
counted in `nerve_server_connections_closed_total{server, reason}` and logged at most once per
LOG_EVERY_S seconds, so an attack cannot flood the log.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from prometheus_client import Counter

log = logging.getLogger("nerve.server")

CLOSED = Counter("nerve_server_connections_closed", "HTTP connections a Nerve server closed or refused",
                 ["server", "reason"])
EVICTED, REFUSED, BODY_TIMEOUT = "evicted_idle", "refused_busy", "body_timeout"
LOG_EVERY_S = 10.0

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class ServerLimits:
    idle_timeout_s: float = 30.0
    """Closes a connection that sends no complete request headers for this long (idle or trickling)."""
    body_timeout_s: float = 60.0
    """Closes a connection whose request body has not fully arrived this long after its headers."""
    max_connections: int = 1000
    """Connections open at once; past it the oldest idle one is closed, or the new one refused."""


def busy_refusal(limits: ServerLimits) -> bytes:
    """The whole answer to a connection past the cap when every open one is busy: 503, then closed."""
    body = orjson.dumps({"reason": f"too many connections: this server keeps at most "
                                   f"{limits.max_connections} open and all are busy"})
    return (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
            b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))


class Closings:
    """Counts each connection a server closed or refused, by reason, and logs them at most once per
    LOG_EVERY_S seconds (a flood of held sockets must not flood the log too)."""

    def __init__(self, name: str, limits: ServerLimits) -> None:
        self.name = name
        self.limits = limits
        self._last_log = 0.0
        self._unlogged = 0

    def closed(self, reason: str) -> None:
        CLOSED.labels(self.name, reason).inc()
        self._unlogged += 1
        now = time.monotonic()
        if now - self._last_log >= LOG_EVERY_S:
            log.warning("%s: closed %d connection(s) (last: %s; limits: %d connections, %.0f s idle, %.0f s body)",
                        self.name, self._unlogged, reason, self.limits.max_connections,
                        self.limits.idle_timeout_s, self.limits.body_timeout_s)
            self._last_log, self._unlogged = now, 0


class ConnectionGuard:
    """Enforces ServerLimits' connection count and body deadline on one aiohttp server."""

    def __init__(self, name: str, limits: ServerLimits) -> None:
        self.name = name
        self.limits = limits
        self._busy: set[Any] = set()
        self._closings = Closings(name, limits)

    def attach(self, server: web.Server) -> None:
        """Check each new connection against the limit (aiohttp's server calls this hook per connection)."""
        made = server.connection_made

        def connection_made(handler: RequestHandler, transport: asyncio.Transport) -> None:
            made(handler, transport)
            self._admit(server, handler, transport)

        server.connection_made = connection_made  # type: ignore[method-assign]

    def _admit(self, server: web.Server, handler: RequestHandler, transport: asyncio.Transport) -> None:
        connections = server.connections  # oldest first
        if len(connections) <= self.limits.max_connections:
            return
        idle = next((c for c in connections if c is not handler and c not in self._busy), None)
        if idle is not None:
            idle.force_close()
            self._closed(EVICTED)
            return
        transport.write(busy_refusal(self.limits))
        handler.force_close()  # closing flushes the 503 first
        self._closed(REFUSED)

    def enter(self, request: web.BaseRequest) -> asyncio.TimerHandle | None:
        """A request goes in: its connection is busy (never evicted), and its body gets a deadline if it is
        still on its way. Returns the deadline, for `leave`."""
        self._busy.add(request.protocol)
        if request.body_exists and not request.content.is_eof():
            return asyncio.get_running_loop().call_later(self.limits.body_timeout_s, self._body_late, request)
        return None

    def leave(self, protocol: object, deadline: asyncio.TimerHandle | None) -> None:
        self._busy.discard(protocol)
        if deadline is not None:
            deadline.cancel()

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        protocol = request.protocol
        deadline = self.enter(request)
        try:
            return await handler(request)
        finally:
            self.leave(protocol, deadline)

    def _body_late(self, request: web.BaseRequest) -> None:
        if not request.content.is_eof():
            request.protocol.force_close()  # the handler's read fails: nothing of the request was taken
            self._closed(BODY_TIMEOUT)

    def _closed(self, reason: str) -> None:
        self._closings.closed(reason)
