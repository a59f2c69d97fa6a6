"""Nerve's own HTTP/1.1 server, on httptools (llhttp), for the ingress: its hot path without aiohttp.

aiohttp's Python-level protocol, request and response objects were about a third of the ingress's CPU
per event (docs/performance.md, "The ingress on aiohttp's low-level server"); this is an asyncio.Protocol
that parses with httptools.HttpRequestParser, hands a small request object (core/http_request.py) to one
handler and writes each answer as one buffer. It keeps what the aiohttp edge did:

- keep-alive; pipelined requests answered in order, one at a time, by one task per connection (reading
  pauses when a client has more than PIPELINE_DEPTH requests queued without reading its answers);
  Content-Length and chunked bodies (decoded by llhttp); HTTP/1.0 closes unless it asked for keep-alive;
  `Connection: close` from the client honoured, and sent whenever the server closes after an answer;
- ServerLimits (core/connections.py): the idle/header timeout (from the connection's open or its last
  answer until a request's headers are complete), the body timeout (from headers to body complete) and
  the connection cap, whose newcomer first evicts the oldest connection with no request in progress and
  is otherwise refused with a 503; counted and logged by the same Closings as aiohttp's ConnectionGuard.
  The timeouts are checked by one sweep per server (every TICK_S at most), not a timer per request;
- the body limit: a body growing past `max_body` fails `read()` with BodyTooLarge; the handler can answer
  a Content-Length over its limit before reading anything. An answer given before its request's body was
  complete closes the connection (the rest of the body is never read). Content-Encoding is left alone;
- malformed HTTP is answered 400 and closed, logged as one DEBUG line and reported to `malformed` (the
  ingress counts it); a body broken after its headers fails `read()` with BodyBroken instead;
- `Expect: 100-continue` (HTTP/1.1) gets the interim 100 when the handler first reads a body that has not
  arrived (so a 413 by Content-Length never invites the body); any other expectation is a 417;
- GET and HEAD on `routes` (health and metrics) before the `checks` (the SchemeGuard) and the handler;
  HEAD answers carry the Content-Length of the body they do not send; `headers` (`Nerve-Worker`) go on
  every answer, the 500 of a handler fault included (logged, no traceback in the body);
- listeners: `add_site` for http and https (an `ssl_context`) on the same server, SO_REUSEPORT for workers;
- the SIGTERM drain (`cleanup`, as core.runtime._Drain): stop listening, close the connections with no
  request, let the requests in flight read their bodies and be answered with `Connection: close`, and cancel
  what is still running after the drain timeout.

It does not do what the ingress never needed: upgrades (a request asking for one is answered, then the
connection closes), trailers beyond what llhttp drops, streaming answers, compression, access logs.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import socket
import ssl
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from http import HTTPStatus
from typing import cast

import httptools
import orjson
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from core.connections import BODY_TIMEOUT, EVICTED, REFUSED, Closings, ServerLimits, busy_refusal
from core.http_request import BodyBroken, BodyTooLarge, Check, Handler, Response

log = logging.getLogger("nerve.server")

PIPELINE_DEPTH = 8
"""Requests queued on one connection before it is read no further (a client that does not read answers)."""
TICK_S = 1.0
"""The longest gap between two checks of the timeouts (shorter when a timeout is: a fifth of it)."""
_ROUTE_METHODS = frozenset(("GET", "HEAD"))
_FAULT = b"500 Internal Server Error\n\nServer got itself in trouble"


def _status_lines() -> dict[tuple[str, int], bytes]:
    lines = {}
    for status in HTTPStatus:
        for version in ("1.0", "1.1"):
            lines[(version, status.value)] = f"HTTP/{version} {status.value} {status.phrase}\r\n".encode()
    return lines


_STATUS_LINES = _status_lines()


class _Date:
    """The Date header, formatted once a second (as aiohttp does) rather than per answer."""

    second = 0
    value = b""

    @classmethod
    def header(cls) -> bytes:
        now = int(time.time())
        if now != cls.second:
            cls.second, cls.value = now, b"Date: %s\r\n" % email.utils.formatdate(now, usegmt=True).encode()
        return cls.value


class Request:
    """One parsed request (core.http_request.HttpRequest), its body filled in by its connection as it
    arrives; the handler awaits `read()`."""

    __slots__ = ("_body", "_connection", "_continue", "_error", "_size", "_waiter", "complete",
                 "content_length", "headers", "keep_alive", "method", "path", "query_string", "secure", "version")

    def __init__(self, connection: _Connection, method: str, path: str, query_string: str, version: str,
                 headers: CIMultiDictProxy[str], keep_alive: bool, secure: bool) -> None:
        self._connection = connection
        self.method, self.path, self.query_string, self.version = method, path, query_string, version
        self.headers, self.keep_alive, self.secure = headers, keep_alive, secure
        length = headers.get("Content-Length")
        self.content_length = int(length) if length is not None else None  # llhttp checked it is digits
        self.complete = False
        self._body: list[bytes] = []
        self._size = 0
        self._error: Exception | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._continue = False
        """An `Expect: 100-continue` not answered yet: the 100 goes out on the first read."""

    async def read(self) -> bytes:
        while not self.complete and self._error is None:
            if self._continue:
                self._continue = False
                self._connection.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        if self._error is not None:
            raise self._error
        body = self._body
        return body[0] if len(body) == 1 else b"".join(body)

    # what the connection tells it
    def _received(self, chunk: bytes, limit: int) -> None:
        if self._error is not None:
            return  # past the limit: the rest is dropped, the connection closes after the answer
        self._size += len(chunk)
        if self._size > limit:
            self._body = []
            self._fail(BodyTooLarge(f"the body is over the {limit}-byte limit"))
            return
        self._body.append(chunk)

    def _completed(self) -> None:
        self.complete = True
        self._wake()

    def _fail(self, error: Exception) -> None:
        if not self.complete and self._error is None:
            self._error = error
            self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


class _Malformed:
    """In the answer queue where a request could not be parsed: answered 400 in its turn, then closed."""

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message


class _Connection(asyncio.Protocol):
    __slots__ = ("_body_deadline", "_headers", "_idle_deadline", "_parser", "_parsing", "_paused",
                 "_queue", "_request", "_secure", "_server", "_stopped", "_task", "_url", "_writable", "closing",
                 "transport")

    def __init__(self, server: HttpServer, secure: bool) -> None:
        self._server = server
        self._secure = secure
        self._parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self._url: list[bytes] = []
        self._headers: list[tuple[str, str]] = []
        self._request: Request | None = None
        """The request whose body is being received."""
        self._parsing = False
        """A request has begun and its headers are not complete yet."""
        self._queue: deque[Request | _Malformed] = deque()
        """Requests whose headers are complete, not answered yet, in order; the head is being answered."""
        self._task: asyncio.Task[None] | None = None
        self._paused = False
        self._stopped = False
        """The parser failed or an upgrade was asked for: nothing more is parsed on this connection."""
        self._writable: asyncio.Future[None] | None = None
        self.closing = False
        self._idle_deadline = 0.0
        self._body_deadline = 0.0

    # ---- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not an asyncio.Transport subclass
        self._idle_deadline = self._server.loop.time() + self._server.limits.idle_timeout_s
        self._server.admit(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self._server.forget(self)
        if self._request is not None:
            self._request._fail(BodyBroken("the connection was closed before the body was complete"))
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        if self._task is None:
            self._queue.clear()
            self._server.unbusy(self)

    def data_received(self, data: bytes) -> None:
        if self.closing or self._stopped:
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # Upgrades are not served: the request is answered, then the connection closes.
            self._stop_reading()
            if self._queue:
                last = self._queue[-1]
                if isinstance(last, Request):
                    last.keep_alive = False
        except httptools.HttpParserError as exc:
            message = str(exc) or type(exc).__name__
            self._stop_reading()
            request = self._request
            if request is not None and not request.complete:
                # The headers were good and the handler may have started: its read() says what broke.
                request._fail(BodyBroken(message))
                request.keep_alive = False
            else:
                self._enqueue(_Malformed(message))

    def pause_writing(self) -> None:
        self._writable = self._server.loop.create_future()

    def resume_writing(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        self._writable = None

    # ---- httptools' callbacks

    def on_message_begin(self) -> None:
        self._parsing = True
        self._url = []
        self._headers = []

    def on_url(self, url: bytes) -> None:
        self._url.append(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        # Names as sent (pass-through headers keep their case); values as aiohttp decoded them, so bytes
        # that are not UTF-8 reach the CloudEvents checks as surrogates and are refused there.
        self._headers.append((name.decode("latin-1"), value.decode("utf-8", "surrogateescape")))

    def on_headers_complete(self) -> None:
        self._parsing = False
        self._idle_deadline = 0.0
        parser = self._parser
        target = self._url[0] if len(self._url) == 1 else b"".join(self._url)
        path, query = _split_target(target)
        version = parser.get_http_version()
        request = Request(self, parser.get_method().decode("ascii"), path, query, version,
                          CIMultiDictProxy(CIMultiDict(self._headers)), parser.should_keep_alive(), self._secure)
        if self._server.draining:
            request.keep_alive = False
        self._request = request
        self._body_deadline = self._server.loop.time() + self._server.limits.body_timeout_s
        self._enqueue(request)

    def on_body(self, body: bytes) -> None:
        if self._request is not None:
            self._request._received(body, self._server.max_body)

    def on_message_complete(self) -> None:
        request = self._request
        self._request = None
        self._body_deadline = 0.0
        if request is not None:
            request._completed()
        if len(self._queue) > PIPELINE_DEPTH and self.transport is not None and not self._paused:
            self._paused = True
            self.transport.pause_reading()  # a client pipelining without reading its answers

    # ---- answering

    def _enqueue(self, item: Request | _Malformed) -> None:
        self._queue.append(item)
        if self._task is None:
            self._server.busy(self)
            self._task = self._server.loop.create_task(self._answer())

    async def _answer(self) -> None:
        server = self._server
        queue = self._queue
        try:
            while queue and not self.closing:
                item = queue[0]
                if isinstance(item, _Malformed):
                    server.refuse_malformed(self, item.message)
                    break
                response = await server.respond(item)
                queue.popleft()
                # (closed meanwhile: write() drops the answer and the loop ends)
                keep = (item.keep_alive and item.complete and not response.close and not server.draining)
                self.write(server.encode(response, item, keep))
                if not keep:
                    self.close()
                    break
                if self._writable is not None:
                    await self._writable  # the client reads slowly: no more answers into the buffer
                if self._paused and not self._stopped and len(queue) <= PIPELINE_DEPTH and self.transport is not None:
                    self._paused = False
                    self.transport.resume_reading()
        finally:
            self._task = None
            if self.closing:
                queue.clear()
            elif not queue:
                self._idle_deadline = server.loop.time() + server.limits.idle_timeout_s
            server.unbusy(self)

    def write(self, data: bytes) -> None:
        if not self.closing and self.transport is not None:
            self.transport.write(data)

    def close(self) -> None:
        """Closes once what was written has gone out; nothing more is read or answered."""
        self.closing = True
        self._server.forget(self)  # no longer counted against the cap, never evicted again
        if self._request is not None:
            self._request._fail(BodyBroken("the connection is closing"))
        if self.transport is not None:
            self.transport.close()

    def _stop_reading(self) -> None:
        self._stopped = True
        if self.transport is not None and not self._paused:
            self._paused = True
            self.transport.pause_reading()

    # ---- what the server checks

    @property
    def in_progress(self) -> bool:
        return self._task is not None

    @property
    def mid_request(self) -> bool:
        """Headers arriving: a drain lets this request in and answers it with Connection: close."""
        return self._parsing

    def overdue(self, now: float) -> str | None:
        """Which timeout has passed: "idle" (idle or headers), BODY_TIMEOUT, or None."""
        if self._body_deadline and now > self._body_deadline:
            return BODY_TIMEOUT
        if self._idle_deadline and now > self._idle_deadline:
            return "idle"
        return None


def _split_target(target: bytes) -> tuple[str, str]:
    """The decoded path and the raw query string of a request target (origin form, or absolute form)."""
    if target[:1] != b"/":
        if target == b"*":
            return "*", ""
        url = httptools.parse_url(target)
        raw_path, raw_query = url.path or b"/", url.query or b""
    else:
        raw_path, _, raw_query = target.partition(b"?")
        raw_path = raw_path.partition(b"#")[0]
    path = raw_path.decode("utf-8", "surrogateescape")
    if "%" in path:
        path = URL.build(path=path, encoded=True).path  # decoded as aiohttp decodes request.path
    return path, raw_query.decode("utf-8", "surrogateescape")


class HttpServer:
    """The connection table, the listeners and the drain of one server; `respond` routes one request."""

    def __init__(self, handler: Handler, *, name: str, routes: Mapping[str, Handler], checks: Sequence[Check],
                 headers: Mapping[str, str] | None, limits: ServerLimits, max_body: int, drain_timeout: float,
                 malformed: Callable[[str], None] | None) -> None:
        self.loop = asyncio.get_running_loop()
        self._handler, self._routes, self._checks = handler, dict(routes), tuple(checks)
        self._stamp = b"".join(_header_line(k, v) for k, v in (headers or {}).items())
        self.limits = limits
        self.max_body = max_body
        self.drain_timeout = drain_timeout
        self._malformed = malformed
        self._closings = Closings(name, limits)
        self.connections: dict[_Connection, None] = {}
        """Open connections, oldest first (a dict keeps insertion order; removal is O(1))."""
        self._busy: set[_Connection] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._listeners: list[asyncio.AbstractServer] = []
        self.addresses: list[tuple[str, int]] = []
        self.draining = False
        tick = min(TICK_S, limits.idle_timeout_s / 5, limits.body_timeout_s / 5)
        self._sweeper = self.loop.create_task(self._sweep(max(tick, 0.01)))

    # ---- listeners

    async def add_site(self, host: str, port: int, *, ssl_context: ssl.SSLContext | None = None,
                       reuse_port: bool = False) -> int:
        """Another listener (http, or https with `ssl_context`) on this server; returns its bound port."""
        secure = ssl_context is not None
        listener = await self.loop.create_server(lambda: _Connection(self, secure), host, port, ssl=ssl_context,
                                                 reuse_address=True, reuse_port=reuse_port or None, backlog=128)
        self._listeners.append(listener)
        bound = 0
        for sock in listener.sockets:
            address = sock.getsockname()
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                self.addresses.append((address[0], address[1]))
                bound = address[1]
        return bound

    # ---- the connection table

    def admit(self, connection: _Connection) -> None:
        connections = self.connections
        connections[connection] = None
        if len(connections) <= self.limits.max_connections:
            return
        idle = next((c for c in connections if c is not connection and c not in self._busy), None)
        if idle is not None:
            idle.close()
            self._closings.closed(EVICTED)
            return
        connection.write(busy_refusal(self.limits))
        connection.close()  # closing flushes the 503 first
        self._closings.closed(REFUSED)

    def forget(self, connection: _Connection) -> None:
        self.connections.pop(connection, None)

    def busy(self, connection: _Connection) -> None:
        self._busy.add(connection)
        self._idle.clear()

    def unbusy(self, connection: _Connection) -> None:
        self._busy.discard(connection)
        if not self._busy:
            self._idle.set()
        if self.draining and not connection.mid_request:
            connection.close()

    async def _sweep(self, tick: float) -> None:
        while True:
            await asyncio.sleep(tick)
            now = self.loop.time()
            for connection in list(self.connections):
                if connection.closing:
                    continue  # closed already, its connection_lost to come: counted once
                overdue = connection.overdue(now)
                if overdue is not None:
                    connection.close()  # nothing is answered: the handler's read fails
                    if overdue == BODY_TIMEOUT:
                        self._closings.closed(BODY_TIMEOUT)

    # ---- one request

    async def respond(self, request: Request) -> Response:
        try:
            if request.version == "1.1":
                expect = request.headers.get("Expect")
                if expect is not None:
                    if expect.lower() != "100-continue":
                        return Response(417, f"Unknown Expect: {expect}".encode(),
                                        content_type="text/plain; charset=utf-8")
                    request._continue = True
            route = self._routes.get(request.path) if request.method in _ROUTE_METHODS else None
            if route is not None:
                return await route(request)
            for check in self._checks:
                refusal = check(request)
                if refusal is not None:
                    return refusal
            return await self._handler(request)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("error handling %s %r", request.method, request.path)
            return Response(500, _FAULT, content_type="text/plain; charset=utf-8")

    def encode(self, response: Response, request: Request, keep: bool) -> bytes:
        """The answer's bytes: status line, the handler's headers, Content-Length, Date, the stamp, then
        Connection when it differs from the version's default, and the body (none for HEAD)."""
        body = response.body
        try:
            head = "".join([f"{name}: {value}\r\n" for name, value in response.headers.items()
                            if _safe(name, value)])
        except ValueError:
            log.exception("an answer to %s %r has a header that cannot be sent", request.method, request.path)
            response, body, head = Response(500, _FAULT), _FAULT, "Content-Type: text/plain; charset=utf-8\r\n"
        version = request.version if request.version == "1.0" else "1.1"
        status = _STATUS_LINES.get((version, response.status)) or f"HTTP/{version} {response.status} \r\n".encode()
        if not keep:
            connection = b"Connection: close\r\n"
        elif version == "1.0":
            connection = b"Connection: keep-alive\r\n"
        else:
            connection = b""
        return b"".join((status, head.encode("utf-8"), b"Content-Length: %d\r\n" % len(body), _Date.header(),
                         self._stamp, connection, b"\r\n", b"" if request.method == "HEAD" else body))

    def refuse_malformed(self, connection: _Connection, message: str) -> None:
        log.debug("refused a malformed HTTP request: 400 %r", message)
        if self._malformed is not None:
            self._malformed(message)
        body = orjson.dumps({"error": "BadHttpMessage", "reason": message})
        connection.write(b"".join((_STATUS_LINES[("1.1", 400)], b"Content-Type: application/json\r\n",
                                   b"Content-Length: %d\r\n" % len(body), _Date.header(), self._stamp,
                                   b"Connection: close\r\n\r\n", body)))
        connection.close()

    # ---- the drain

    async def cleanup(self) -> None:
        """Stop listening, close the connections with no request, let the requests in flight be answered
        (with Connection: close) for up to the drain timeout, then cancel what is still running."""
        self.draining = True
        for listener in self._listeners:
            listener.close()
        for connection in list(self.connections):
            if connection not in self._busy and not connection.mid_request:
                connection.close()
        try:
            await asyncio.wait_for(self._idle.wait(), self.drain_timeout)
        except TimeoutError:
            log.warning("%d request(s) still unanswered after the %.0f s drain; cancelling them",
                        len(self._busy), self.drain_timeout)
        for connection in [*self.connections, *self._busy]:  # a busy one may have lost its client already
            connection.close()
            task = connection._task
            if task is not None:
                task.cancel()
        self._sweeper.cancel()
        for listener in self._listeners:
            await listener.wait_closed()
        await asyncio.sleep(0)  # the closed transports' connection_lost


def _safe(name: str, value: str) -> bool:
    # As aiohttp refuses to send it: a CR or LF in a header would let a value write headers of its own.
    if "\n" in value or "\r" in value or "\n" in name or "\r" in name:
        raise ValueError(f"a newline in the header {name!r}")
    return True


def _header_line(name: str, value: str) -> bytes:
    _safe(name, value)
    return f"{name}: {value}\r\n".encode()


async def serve_http(handler: Handler, host: str, port: int, *, name: str = "http",
                     routes: Mapping[str, Handler] | None = None, checks: Sequence[Check] = (),
                     headers: Mapping[str, str] | None = None, limits: ServerLimits | None = None,
                     max_body: int = 1024**2, drain_timeout: float = 8.0,
                     malformed: Callable[[str], None] | None = None, ssl_context: ssl.SSLContext | None = None,
                     reuse_port: bool = False) -> tuple[HttpServer, int]:
    """Serve `handler` on Nerve's HTTP/1.1 server within `limits` (`name` labels its metric): GET and HEAD on
    `routes` by exact path, the rest through `checks` to `handler`, `headers` on every answer, bodies past
    `max_body` refused by `read()`, `malformed(message)` told of each malformed request. Returns the server
    (`add_site` for another listener, `cleanup` to drain and stop) and the bound port (0 picks one)."""
    server = HttpServer(handler, name=name, routes=routes or {}, checks=checks, headers=headers,
                        limits=limits or ServerLimits(), max_body=max_body, drain_timeout=drain_timeout,
                        malformed=malformed)
    bound = await server.add_site(host, port, ssl_context=ssl_context, reuse_port=reuse_port)
    return server, bound
