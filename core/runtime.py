"""Running asyncio services: uvloop where present, servers through AppRunner (`serve_handler`, aiohttp's
low-level server, is what the ingress ran on before core/http_server.py; the bench still measures it),
stop on SIGINT/SIGTERM, and the loop every contract-following data-plane
service (dispatcher, sources) runs."""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import Any, Protocol

from aiohttp import hdrs, web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http import HttpVersion11, RawRequestMessage
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler

from core import gc_tuning, log_lines, observability, tracing
from core.connections import ConnectionGuard, Handler, ServerLimits
from core.contract import Contract
from core.contract_watch import ContractFeed, ContractWatcher
from core.http_server import HttpServer

DRAIN_TIMEOUT_S = 8.0
"""How long a stopping server waits for the requests in flight (`--drain-timeout` of the services)."""


def run(main: Callable[[asyncio.Event], Coroutine[Any, Any, None]], *,
        telemetry: observability.TelemetrySettings | None = None, service: str = "nerve") -> None:
    """Run `main(stop)` on the best loop; `stop` is set by SIGINT or SIGTERM for a graceful shutdown.

    Logs, metrics and traces are set up first: `telemetry` (the --log-format and --legacy-metrics flags),
    and tracing from the OTEL_* environment, `service` naming the process unless OTEL_SERVICE_NAME does;
    batched spans are exported when `main` returns."""
    telemetry = telemetry or observability.TelemetrySettings()
    log_lines.configure(logging.INFO, format=telemetry.log_format)
    observability.configure_metrics(legacy_metrics=telemetry.legacy_metrics)
    if tracing.setup(service):
        logging.getLogger("nerve").info("tracing on: spans exported as OTEL_* configures")
    gc_tuning.tune()
    try:
        run_until_signal(main)
    finally:
        tracing.shutdown()


def run_until_signal(main: Callable[[asyncio.Event], Coroutine[Any, Any, None]]) -> None:
    """`main(stop)` on uvloop (asyncio's loop without it), `stop` set by SIGINT or SIGTERM; no telemetry."""

    async def wrapper() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await main(stop)

    try:
        import uvloop
    except ImportError:
        asyncio.run(wrapper())
    else:
        uvloop.run(wrapper())


class _Drain:
    """The graceful half of a server's shutdown, which aiohttp's own does not cover.

    aiohttp's `cleanup()` marks every connection closing at once, and a closing connection drops the
    bytes that still arrive (aio-libs/aiohttp#2298): a request whose body is on its way when SIGTERM
    comes never completes and is cut off after the shutdown timeout, unanswered. So the drain runs
    first: the listener is closed, connections not in the app are told to close once they are done, the
    requests in flight are left to read their bodies and be answered (each answer with
    `Connection: close`), and only what is still running after `timeout` goes to aiohttp's shutdown.
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.draining = False
        self._busy: dict[object, int] = {}
        """Connections (their protocol) with a request in the app now, and how many."""
        self._idle = asyncio.Event()
        self._idle.set()

    def enter(self, protocol: object) -> None:
        self._busy[protocol] = self._busy.get(protocol, 0) + 1
        self._idle.clear()

    def leave(self, protocol: object) -> None:
        left = self._busy.pop(protocol) - 1
        if left:
            self._busy[protocol] = left
        if not self._busy:
            self._idle.set()

    async def answer(self, protocol: object, answering: Awaitable[web.StreamResponse]) -> web.StreamResponse:
        """`answering`, counted as work in progress on `protocol`'s connection until it has its answer."""
        self.enter(protocol)
        try:
            response = await answering
            if self.draining:
                response.force_close()  # answered, then closed: the client sends nothing more here
            return response
        finally:
            self.leave(protocol)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        return await self.answer(request.protocol, handler(request))

    async def run(self, runner: web.BaseRunner, server: web.Server | None) -> None:
        self.draining = True
        for site in list(runner.sites):
            await site.stop()
        if server is None:
            return
        for connection in server.connections:
            if connection not in self._busy:
                # close(), never force_close(): a connection can look idle while a request it just read
                # is about to enter the app (or its answer is still being written); close() lets that
                # request through and answers it, then closes. One that never sent a request stays
                # open until the drain ends, and is closed with the rest.
                connection.close()
        try:
            await asyncio.wait_for(self._idle.wait(), self.timeout)
        except TimeoutError:
            logging.getLogger("nerve").warning("%d request(s) still unanswered after the %.0f s drain; "
                                               "cancelling them", sum(self._busy.values()), self.timeout)


class _GuardedRunner(web.AppRunner):
    def __init__(self, app: web.Application, guard: ConnectionGuard, drain: _Drain, *, decompress: bool) -> None:
        # aiohttp's keep-alive timer also runs from the moment a connection opens until its first
        # request's headers are complete: one timeout for idle and for slowly trickled headers.
        # After the drain, aiohttp's own shutdown gets one more second for what is still running.
        super().__init__(app, access_log=None, handle_signals=False, shutdown_timeout=1.0,
                         keepalive_timeout=guard.limits.idle_timeout_s, auto_decompress=decompress)
        self._guard = guard
        self._drain = drain

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        self._guard.attach(server)
        return server

    async def cleanup(self) -> None:
        await self._drain.run(self, self.server)
        await super().cleanup()


async def serve(app: web.Application, host: str, port: int, *, name: str = "http",
                limits: ServerLimits | None = None, decompress: bool = True,
                drain_timeout: float = DRAIN_TIMEOUT_S,
                ssl_context: ssl.SSLContext | None = None, reuse_port: bool = False) -> tuple[web.AppRunner, int]:
    """Start an aiohttp app within `limits` (core/connections.py; `name` labels its metric); returns the
    runner and the bound port (port 0 picks a free one). `decompress=False` hands request bodies over
    as they came, Content-Encoding and all (the ingress decodes them itself). `runner.cleanup()` stops
    accepting and gives the requests in flight `drain_timeout` seconds to be answered. With `ssl_context`
    the listener is https; `add_site` adds another listener (https beside http) to the same runner.
    `reuse_port` binds with SO_REUSEPORT, beside the other workers of a group (core/workers.py)."""
    guard = ConnectionGuard(name, limits or ServerLimits())
    drain = _Drain(drain_timeout)
    app.middlewares.insert(0, guard.middleware)
    app.middlewares.insert(0, drain.middleware)
    runner = _GuardedRunner(app, guard, drain, decompress=decompress)
    await runner.setup()
    bound = await add_site(runner, host, port, ssl_context=ssl_context, reuse_port=reuse_port)
    return runner, bound


Route = observability.Route
"""A handler of aiohttp's low-level server (serve_handler): any request in, its answer out."""
Check = Callable[[web.BaseRequest], None]
"""Run before the handler (not before `routes`): raises an aiohttp HTTPException to refuse the request."""

_ROUTE_METHODS = frozenset(("GET", "HEAD"))


class _Edge:
    """serve_handler's one request handler: what an Application's router and serve()'s middlewares did.

    GET or HEAD on a path of `routes` (health and metrics) goes to that route, anything else through the
    checks to the handler, as a catch-all route beside `add_get` routes does; `Expect` is answered first,
    as aiohttp's router does for every route; around both, the drain and the connection guard keep their
    books, as their middlewares do around an Application."""

    __slots__ = ("_checks", "_drain", "_guard", "_handler", "_routes")

    def __init__(self, handler: Route, routes: Mapping[str, Route], checks: Sequence[Check],
                 guard: ConnectionGuard, drain: _Drain) -> None:
        self._handler, self._routes, self._checks = handler, dict(routes), tuple(checks)
        self._guard, self._drain = guard, drain

    async def __call__(self, request: web.BaseRequest) -> web.StreamResponse:
        if request.headers.get(hdrs.EXPECT):
            await _expect(request)
        protocol = request.protocol
        deadline = self._guard.enter(request)
        try:
            return await self._drain.answer(protocol, self._answer(request))
        finally:
            self._guard.leave(protocol, deadline)

    async def _answer(self, request: web.BaseRequest) -> web.StreamResponse:
        route = self._routes.get(request.path) if request.method in _ROUTE_METHODS else None
        if route is not None:
            return await route(request)
        for check in self._checks:
            check(request)
        return await self._handler(request)


async def _expect(request: web.BaseRequest) -> None:
    # What aiohttp's router does for a request with Expect (its default expect handler): an HTTP/1.1
    # `100-continue` gets the interim 100 before the handler reads the body, any other expectation a 417.
    expect = request.headers.get(hdrs.EXPECT, "")
    if request.version != HttpVersion11:
        return
    if expect.lower() != "100-continue":
        raise web.HTTPExpectationFailed(text=f"Unknown Expect: {expect}")
    await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    request.writer.output_size = 0  # the 100 is not part of the answer's size


def _stamped(headers: Mapping[str, str]) -> type[web.BaseRequest]:
    """A request class whose every answer gets `headers`, the 500 aiohttp makes of a fault and a raised
    HTTPException too (what an Application's on_response_prepare hook does: the same hook point)."""
    stamp = dict(headers)

    class StampedRequest(web.BaseRequest):
        async def _prepare_hook(self, response: web.StreamResponse) -> None:
            response.headers.update(stamp)

    return StampedRequest


class _GuardedServerRunner(web.ServerRunner):
    def __init__(self, server: web.Server, drain: _Drain) -> None:
        # After the drain, aiohttp's own shutdown gets one more second for what is still running.
        super().__init__(server, handle_signals=False, shutdown_timeout=1.0)
        self._drain = drain

    async def cleanup(self) -> None:
        await self._drain.run(self, self.server)
        await super().cleanup()


async def serve_handler(handler: Route, host: str, port: int, *, name: str = "http",
                        routes: Mapping[str, Route] | None = None, checks: Sequence[Check] = (),
                        headers: Mapping[str, str] | None = None, limits: ServerLimits | None = None,
                        decompress: bool = True, max_body: int = 1024**2, drain_timeout: float = DRAIN_TIMEOUT_S,
                        ssl_context: ssl.SSLContext | None = None,
                        reuse_port: bool = False) -> tuple[web.BaseRunner, int]:
    """`serve` for one handler on aiohttp's low-level server (web.Server: no Application, router,
    middlewares or signals, about a sixth of the server's CPU per request, docs/performance.md):
    the same limits, drain, listeners (`add_site`) and arguments, and instead of an app's routes and
    middlewares, `routes` (GET and HEAD by exact path; the rest goes to `handler`), `checks` (each may
    refuse by raising an HTTPException before `handler` runs) and `headers` put on every answer.
    `max_body` is aiohttp's cap on what `request.read()` takes (an Application's client_max_size)."""
    guard = ConnectionGuard(name, limits or ServerLimits())
    drain = _Drain(drain_timeout)
    loop = asyncio.get_running_loop()
    request_class = _stamped(headers) if headers else web.BaseRequest

    def request_factory(message: RawRequestMessage, payload: StreamReader, protocol: RequestHandler,
                        writer: AbstractStreamWriter, task: asyncio.Task[None]) -> web.BaseRequest:
        return request_class(message, payload, protocol, writer, task, loop, client_max_size=max_body)

    # As _GuardedRunner: one aiohttp keep-alive timer for idle connections and trickled headers.
    server = web.Server(_Edge(handler, routes or {}, checks, guard, drain), request_factory=request_factory,
                        access_log=None, keepalive_timeout=guard.limits.idle_timeout_s, auto_decompress=decompress)
    guard.attach(server)
    runner = _GuardedServerRunner(server, drain)
    await runner.setup()
    bound = await add_site(runner, host, port, ssl_context=ssl_context, reuse_port=reuse_port)
    return runner, bound


async def add_site(runner: web.BaseRunner | HttpServer, host: str, port: int, *,
                   ssl_context: ssl.SSLContext | None = None, reuse_port: bool = False) -> int:
    """Another listener for the runner's app, or for the ingress's own server (same limits, same drain);
    returns its bound port."""
    if isinstance(runner, HttpServer):
        return await runner.add_site(host, port, ssl_context=ssl_context, reuse_port=reuse_port)
    before = list(runner.addresses)
    site = web.TCPSite(runner, host, port, reuse_address=True, ssl_context=ssl_context,
                       reuse_port=reuse_port or None)
    await site.start()
    added = [a for a in runner.addresses if a not in before]
    bound: int = added[0][1] if added else port
    return bound


async def stop_all(*closers: Callable[[], Awaitable[None]]) -> None:
    for close in closers:
        try:
            await close()
        except Exception:  # shutting down: log and keep closing the rest
            logging.getLogger("nerve").exception("error during shutdown")


class ContractFollower(Protocol):
    """A data-plane part that brings itself in line with each new contract generation."""

    @property
    def generation(self) -> int: ...

    async def start(self) -> None: ...

    async def apply(self, contract: Contract) -> None: ...

    async def stop(self) -> None: ...


async def follow_contract(stop: asyncio.Event, part: ContractFollower, *, contract: ContractFeed, host: str,
                          port: int, reuse_port: bool = False, on_ready: Callable[[], None] | None = None) -> None:
    """Start `part`, feed it every generation of the contract (core/contract_watch.py), serve its health and metrics on
    `port` until `stop`, then shut down in reverse order: `part.stop()` drains its own work in flight
    (a dispatcher's deliveries get their drain timeout, then are cancelled unacked)."""
    await part.start()
    watcher = ContractWatcher(contract, [part.apply])
    await watcher.start()
    app = web.Application()
    observability.add_routes(app, generation=lambda: part.generation)
    runner, _ = await serve(app, host, port, reuse_port=reuse_port)
    if on_ready is not None:
        on_ready()
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        await watcher.stop()
        await part.stop()
