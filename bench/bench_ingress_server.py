"""The ingress's HTTP server alone: CPU per request of aiohttp's server in several shapes, of granian (RSGI
and ASGI), of uvicorn, and of a minimal httptools server.

Each server runs in its own process tree with the same handler work the ingress does before publishing
(read the body, parse the CloudEvent with core.events.from_http, answer 202); the load comes from this
process (Nerve's own keep-alive client, core/delivery/http1.py, C requests in flight), so the figure to
compare is the server tree's CPU per request (psutil, user + system of every process of the tree). No
backend is involved: this isolates the server framework, the part another server would replace.

The servers (`--servers`, comma-separated):

- `aiohttp`: a bare web.Application, one catch-all route, `web.run_app`.
- `aiohttp-app-nomw`: the ingress's Application (client_max_size, /healthz, /readyz, /metrics and the
  catch-all route) on the runner core/runtime.py makes, without any middleware.
- `aiohttp-app-serve`: that app through core.runtime.serve: its drain and ConnectionGuard middlewares.
- `aiohttp-app`: the ingress's whole shape as a worker of `python -m ingress --workers N` builds it:
  serve()'s two middlewares, the SchemeGuard middleware and the `Nerve-Worker` on_response_prepare hook.
- `aiohttp-lowlevel`: aiohttp's low-level `web.Server(handler)` on `loop.create_server`: no Application,
  router, middlewares or signals.
- `aiohttp-lowlevel-guarded`: the low-level server as core.runtime.serve_handler runs it (the ingress's
  shape on the branch ingress-server): ConnectionGuard, drain, SchemeGuard and the health routes in
  one handler, no Application.
- `nerve-http1`: Nerve's own HTTP/1.1 server on httptools (core/http_server.py), as ingress.app.serve_ingress
  runs the ingress on it: limits, drain, SchemeGuard check, health routes and the `Nerve-Worker` header.
- `granian-rsgi`, `granian-asgi`: granian 2 (`pip install granian`, not a dependency of Nerve).
- `uvicorn-httptools`: uvicorn's httptools protocol with a raw ASGI app (`pip install uvicorn`, not a
  dependency).
- `httptools-protocol`: a minimal asyncio.Protocol HTTP/1.1 server on httptools.HttpRequestParser,
  written here (keep-alive, Content-Length and chunked bodies, a fixed 202): the floor of a Python server
  on uvloop, not something to run.

    .venv/bin/python bench/bench_ingress_server.py --requests 20000 --rounds 3
    .venv/bin/python bench/bench_ingress_server.py --servers aiohttp-app,aiohttp-lowlevel --requests 50000
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import socket
import statistics
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import psutil

from core.delivery.http1 import Http1Pool
from core.errors import InvalidEvent
from core.events import from_http
from core.runtime import run_until_signal

HEADERS = {"ce-specversion": "1.0", "ce-id": "x", "ce-source": "/bench", "ce-type": "bench.event",
           "Content-Type": "application/json"}
BODY = b'{"hello": "nerve", "n": 12345}'
MAX_BODY = 4 * 1024 * 1024


# ---- the servers (each started as `python bench_ingress_server.py --serve NAME --port P`)

def serve_aiohttp(port: int) -> None:
    import uvloop
    from aiohttp import web

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        from_http(request.headers.get("Content-Type"), request.headers.items(), body)
        return web.Response(status=202, headers={"Allow": "POST, OPTIONS"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    uvloop.install()
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


def serve_aiohttp_app(port: int, shape: str) -> None:
    """The ingress's Application (ingress/app.py create_app, core/runtime.py serve) with the bench's handler."""
    from aiohttp import web

    from core import observability
    from core.connections import Handler, ServerLimits
    from core.runtime import _GuardedRunner, serve
    from core.tls import SchemeGuard

    worker = str(os.getpid())

    async def worker_header(request: web.Request, response: web.StreamResponse) -> None:
        response.headers["Nerve-Worker"] = worker  # as main's ingress/app.py did for a worker (--workers)

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        from_http(request.headers.get("Content-Type"), request.headers.items(), body)
        return web.Response(status=202, headers={"Allow": "POST, OPTIONS"})

    async def main(stop: asyncio.Event) -> None:
        app = web.Application(client_max_size=MAX_BODY + 1)
        observability.add_routes(app, with_metrics=True, generation=lambda: 1)
        app.router.add_route("*", "/{tail:[\\s\\S]*}", handle)
        runner: web.AppRunner
        if shape == "nomw":
            limits = ServerLimits()
            runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0,
                                   keepalive_timeout=limits.idle_timeout_s, auto_decompress=False)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", port, reuse_address=True).start()
        else:
            if shape == "full":
                scheme = SchemeGuard()

                @web.middleware
                async def scheme_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
                    scheme.check(request)  # main's SchemeGuard.middleware
                    return await handler(request)

                app.middlewares.append(scheme_middleware)
                app.on_response_prepare.append(worker_header)
            runner, _ = await serve(app, "127.0.0.1", port, name="ingress", decompress=False)
            assert isinstance(runner, _GuardedRunner)
        await stop.wait()
        await runner.cleanup()

    run_until_signal(main)


def serve_aiohttp_lowlevel(port: int) -> None:
    """aiohttp's low-level server: the protocol, parser and BaseRequest, the handler called directly."""
    from aiohttp import web
    from aiohttp.web_protocol import RequestHandler

    async def handle(request: web.BaseRequest) -> web.Response:
        body = await request.read()
        from_http(request.headers.get("Content-Type"), request.headers.items(), body)
        return web.Response(status=202, headers={"Allow": "POST, OPTIONS"})

    async def main(stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()

        def request_factory(message: Any, payload: Any, protocol: RequestHandler, writer: Any,
                            task: asyncio.Task[None]) -> web.BaseRequest:
            return web.BaseRequest(message, payload, protocol, writer, task, loop, client_max_size=MAX_BODY + 1)

        server = web.Server(handle, request_factory=request_factory, access_log=None, keepalive_timeout=30.0,
                            auto_decompress=False)
        listener = await loop.create_server(server, "127.0.0.1", port, reuse_address=True)
        await stop.wait()
        listener.close()
        await server.shutdown(1.0)

    run_until_signal(main)


def serve_aiohttp_lowlevel_guarded(port: int) -> None:
    """The low-level server as ingress.app.serve_ingress runs it (core.runtime.serve_handler): the drain, the
    ConnectionGuard, the SchemeGuard check, the health routes and the `Nerve-Worker` header."""
    from aiohttp import web

    from core import observability
    from core.runtime import serve_handler
    from core.tls import SchemeGuard

    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        body = await request.read()
        from_http(request.headers.get("Content-Type"), request.headers.items(), body)
        return web.Response(status=202, headers={"Allow": "POST, OPTIONS"})

    async def main(stop: asyncio.Event) -> None:
        routes = observability.routes(with_metrics=True, generation=lambda: 1)
        guard = SchemeGuard()  # the default features: http takes events
        runner, _ = await serve_handler(handle, "127.0.0.1", port, name="ingress", routes=routes,
                                        checks=[guard.check], headers={"Nerve-Worker": str(os.getpid())},
                                        decompress=False, max_body=MAX_BODY + 1)
        await stop.wait()
        await runner.cleanup()

    run_until_signal(main)


def serve_nerve_http1(port: int) -> None:
    """The ingress's server as ingress.app.serve_ingress runs it (core/http_server.py), the bench's handler."""
    from core import observability
    from core.http_request import HttpRequest, Response
    from core.http_server import serve_http
    from core.tls import SchemeGuard

    async def handle(request: HttpRequest) -> Response:
        body = await request.read()
        from_http(request.headers.get("Content-Type"), request.headers.items(), body)
        return Response(202, headers={"Allow": "POST, OPTIONS"})

    def route(answer: Any) -> Any:
        async def answered(_: HttpRequest) -> Response:
            made = answer()
            return Response(made.status, made.body, content_type=made.content_type)
        return answered

    async def main(stop: asyncio.Event) -> None:
        scheme = SchemeGuard()  # the default features: http takes events

        def check(request: HttpRequest) -> Response | None:
            text = scheme.refusal(request.path, request.secure)
            return None if text is None else Response(404, text.encode())

        answers = observability.answers(with_metrics=True, generation=lambda: 1)
        server, _ = await serve_http(handle, "127.0.0.1", port, name="ingress",
                                     routes={p: route(a) for p, a in answers.items()}, checks=[check],
                                     headers={"Nerve-Worker": str(os.getpid())}, max_body=MAX_BODY)
        await stop.wait()
        await server.cleanup()

    run_until_signal(main)


class RsgiApp:
    async def __rsgi__(self, scope: Any, protocol: Any) -> None:
        body = await protocol()
        from_http(scope.headers.get("content-type"), scope.headers.items(), body)
        protocol.response_empty(202, [("allow", "POST, OPTIONS")])


async def asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
    content_type = next((v for k, v in headers if k == "content-type"), None)
    from_http(content_type, headers, b"".join(chunks))
    await send({"type": "http.response.start", "status": 202, "headers": [(b"allow", b"POST, OPTIONS")]})
    await send({"type": "http.response.body", "body": b""})


rsgi_app = RsgiApp()


# ---- a minimal HTTP/1.1 server on httptools: the floor of a Python server

_ACCEPTED = b"HTTP/1.1 202 Accepted\r\nAllow: POST, OPTIONS\r\nContent-Length: 0\r\n\r\n"
_BAD = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class _Request:
    __slots__ = ("body", "headers", "keep_alive", "method", "url")

    def __init__(self, method: bytes, url: bytes, headers: list[tuple[str, str]], keep_alive: bool) -> None:
        self.method, self.url, self.headers, self.keep_alive = method, url, headers, keep_alive
        self.body = b""


class HttptoolsProtocol(asyncio.Protocol):
    """One connection: httptools parses (keep-alive; Content-Length and chunked bodies, decoded by llhttp),
    complete requests are queued and answered in order by one task at a time, so pipelined requests get
    their answers in the order they came. Header names are kept as sent."""

    def __init__(self) -> None:
        import httptools

        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._url = b""
        self._headers: list[tuple[str, str]] = []
        self._body: list[bytes] = []
        self._queue: deque[_Request] = deque()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not an asyncio.Transport subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        if self._task is not None:
            self._task.cancel()

    def data_received(self, data: bytes) -> None:
        import httptools

        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            assert self._transport is not None
            self._transport.write(_BAD)
            self._transport.close()
            self._closing = True

    # httptools' callbacks
    def on_message_begin(self) -> None:
        self._url, self._headers, self._body = b"", [], []

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        request = _Request(self._parser.get_method(), self._url, self._headers, self._parser.should_keep_alive())
        request.body = b"".join(self._body)
        self._queue.append(request)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._answer())
        if len(self._queue) > 8 and self._transport is not None:
            self._transport.pause_reading()  # a client pipelining without reading its answers

    async def _answer(self) -> None:
        transport = self._transport
        assert transport is not None
        try:
            while self._queue and not self._closing:
                request = self._queue.popleft()
                try:
                    await handle_plain(request)
                except InvalidEvent:  # not a CloudEvent (the bench sends none such): the ingress's 400
                    transport.write(_BAD)
                    transport.close()
                    self._closing = True
                    break
                transport.write(_ACCEPTED)
                if not request.keep_alive:
                    transport.close()
                    self._closing = True
                if len(self._queue) <= 8:
                    transport.resume_reading()
        finally:
            self._task = None


async def handle_plain(request: _Request) -> None:
    content_type = next((v for k, v in request.headers if k.lower() == "content-type"), None)
    from_http(content_type, request.headers, request.body)


def serve_httptools(port: int) -> None:
    async def main(stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        listener = await loop.create_server(HttptoolsProtocol, "127.0.0.1", port, reuse_address=True)
        await stop.wait()
        listener.close()

    run_until_signal(main)


SERVE: dict[str, Callable[[int], None]] = {
    "aiohttp": serve_aiohttp,
    "aiohttp-app-nomw": lambda port: serve_aiohttp_app(port, "nomw"),
    "aiohttp-app-serve": lambda port: serve_aiohttp_app(port, "serve"),
    "aiohttp-app": lambda port: serve_aiohttp_app(port, "full"),
    "aiohttp-lowlevel": serve_aiohttp_lowlevel,
    "aiohttp-lowlevel-guarded": serve_aiohttp_lowlevel_guarded,
    "nerve-http1": serve_nerve_http1,
    "httptools-protocol": serve_httptools,
}
OPTIONAL = {"granian-rsgi": "granian", "granian-asgi": "granian", "uvicorn-httptools": "uvicorn"}


def server_command(name: str, port: int) -> list[str]:
    if name in SERVE:
        return [sys.executable, __file__, "--serve", name, "--port", str(port)]
    if name == "uvicorn-httptools":
        return [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port), "--http", "httptools",
                "--loop", "uvloop", "--interface", "asgi3", "--lifespan", "off", "--no-access-log",
                "--log-level", "warning", "bench_ingress_server:asgi_app"]
    interface, target = {"granian-rsgi": ("rsgi", "bench_ingress_server:rsgi_app"),
                         "granian-asgi": ("asgi", "bench_ingress_server:asgi_app")}[name]
    return [sys.executable, "-m", "granian", "--interface", interface, "--host", "127.0.0.1", "--port", str(port),
            "--workers", "1", "--loop", "uvloop", "--no-ws", "--log-level", "warning", target]


# ---- the load

async def load(url: str, requests: int, concurrency: int) -> dict[int, int]:
    pool = Http1Pool(per_destination=concurrency)
    counter = iter(range(requests))
    statuses: dict[int, int] = {}

    async def worker() -> None:
        for _ in counter:
            answer = await pool.post(url, HEADERS, BODY, timeout_s=30, max_body=1 << 16)
            statuses[answer.status] = statuses.get(answer.status, 0) + 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    pool.close()
    return statuses


def tree_cpu(root: psutil.Process) -> float:
    total = 0.0
    for proc in (root, *root.children(recursive=True)):
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            pass
    return total


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def measure(name: str, requests: int, concurrency: int) -> float:
    """One run of `name`: prints its line, returns its server CPU per request in microseconds."""
    import uvloop

    port = free_port()
    here = Path(__file__).parent
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(here), str(here.parent), os.environ.get("PYTHONPATH", "")]))
    server = subprocess.Popen(server_command(name, port), env=env, cwd=here)
    url = f"http://127.0.0.1:{port}/ns/broker"
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        uvloop.run(load(url, 500, 8))  # warm
        tree = psutil.Process(server.pid)
        cpu0, wall0 = tree_cpu(tree), time.perf_counter()
        statuses = uvloop.run(load(url, requests, concurrency))
        cpu, wall = tree_cpu(tree) - cpu0, time.perf_counter() - wall0
        print(f"{name:24} {requests / wall:6.0f} req/s  server cpu/request={cpu / requests * 1e6:6.1f} us  "
              f"statuses={statuses}  load={os.getloadavg()[0]:.1f}", flush=True)
        return cpu / requests * 1e6
    finally:
        server.terminate()
        server.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--servers", default="aiohttp,aiohttp-app-nomw,aiohttp-app-serve,aiohttp-app,"
                                             "aiohttp-lowlevel,aiohttp-lowlevel-guarded,nerve-http1,granian-rsgi,granian-asgi,"
                                             "uvicorn-httptools,httptools-protocol")
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        SERVE[args.serve](args.port)
        return
    names = args.servers.split(",")
    unknown = [n for n in names if n not in SERVE and n not in OPTIONAL]
    if unknown:
        parser.error(f"unknown --servers {','.join(unknown)}; known: {','.join([*SERVE, *OPTIONAL])}")
    for module in sorted({OPTIONAL[n] for n in names if n in OPTIONAL}):
        if importlib.util.find_spec(module) is None:
            print(f"{module} is not installed (not a dependency of Nerve): `.venv/bin/pip install {module}` "
                  f"to compare it")
            names = [n for n in names if OPTIONAL.get(n) != module]
    runs: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(args.rounds):
        for name in names:
            runs[name].append(measure(name, args.requests, args.concurrency))
    if args.rounds > 1:
        print(f"server cpu/request over {args.rounds} rounds (us): median, min, max", flush=True)
        for name, values in runs.items():
            print(f"{name:24} {statistics.median(values):6.1f} {min(values):6.1f} {max(values):6.1f}")


if __name__ == "__main__":
    main()
