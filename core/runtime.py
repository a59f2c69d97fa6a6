"""Running asyncio services: uvloop where present, servers through AppRunner, stop on SIGINT/SIGTERM,
and the loop every contract-following data-plane service (dispatcher, sources) runs."""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol

from aiohttp import web

from core import log_lines, observability, tracing
from core.connections import ConnectionGuard, Handler, ServerLimits
from core.contract import Contract
from core.contract_watch import ContractFeed, ContractWatcher

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
    try:
        _run(main)
    finally:
        tracing.shutdown()


def _run(main: Callable[[asyncio.Event], Coroutine[Any, Any, None]]) -> None:

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

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        protocol = request.protocol
        self._busy[protocol] = self._busy.get(protocol, 0) + 1
        self._idle.clear()
        try:
            response = await handler(request)
            if self.draining:
                response.force_close()  # answered, then closed: the client sends nothing more here
            return response
        finally:
            left = self._busy.pop(protocol) - 1
            if left:
                self._busy[protocol] = left
            if not self._busy:
                self._idle.set()

    async def run(self, runner: web.AppRunner, server: web.Server | None) -> None:
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


async def add_site(runner: web.AppRunner, host: str, port: int, *,
                   ssl_context: ssl.SSLContext | None = None, reuse_port: bool = False) -> int:
    """Another listener for the runner's app (same limits, same drain); returns its bound port."""
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
