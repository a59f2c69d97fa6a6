"""The ingress's HTTP server alone: CPU per request of aiohttp's server and of granian (RSGI and ASGI).

Each server runs in its own process tree with the same handler work the ingress does before publishing
(read the body, parse the CloudEvent with core.events.from_http, answer 202); the load comes from this
process (Nerve's own keep-alive client, core/delivery/http1.py, C requests in flight), so the figure to
compare is the server tree's CPU per request (psutil, user + system of every process of the tree). No
backend is involved: this isolates the server framework, the part granian would replace.

    .venv/bin/python bench/bench_ingress_server.py                       # needs `pip install granian`
    .venv/bin/python bench/bench_ingress_server.py --servers aiohttp --requests 50000
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

from core.delivery.http1 import Http1Pool
from core.events import from_http

HEADERS = {"ce-specversion": "1.0", "ce-id": "x", "ce-source": "/bench", "ce-type": "bench.event",
           "Content-Type": "application/json"}
BODY = b'{"hello": "nerve", "n": 12345}'


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


def server_command(name: str, port: int) -> list[str]:
    if name == "aiohttp":
        return [sys.executable, __file__, "--serve", "aiohttp", "--port", str(port)]
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


def measure(name: str, requests: int, concurrency: int) -> None:
    import uvloop

    port = free_port()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]))
    server = subprocess.Popen(server_command(name, port), env=env, cwd=Path(__file__).parent)
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
        print(f"{name:13} {requests / wall:8.0f} req/s  server cpu/request={cpu / requests * 1e6:6.1f} us  "
              f"statuses={statuses}  load={os.getloadavg()[0]:.1f}", flush=True)
    finally:
        server.terminate()
        server.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--servers", default="aiohttp,granian-rsgi,granian-asgi")
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve_aiohttp(args.port)
        return
    names = args.servers.split(",")
    if any(n.startswith("granian") for n in names) and importlib.util.find_spec("granian") is None:
        print("granian is not installed (not a dependency of Nerve): `.venv/bin/pip install granian` to compare it")
        names = [n for n in names if not n.startswith("granian")]
    for _ in range(args.rounds):
        for name in names:
            measure(name, args.requests, args.concurrency)


if __name__ == "__main__":
    main()
