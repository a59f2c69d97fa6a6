"""The HTTP client of a delivery, alone: CPU per POST of each candidate client against one sink.

The sink runs in its own process (a bare asyncio server answering `202` with keep-alive), so this
process's CPU time is the client's own. Each candidate sends the same binary-mode CloudEvent POSTs,
C in flight, and the line says requests/s and CPU µs per request (process time / requests: the figure
to compare on a shared machine; wall-clock rates move with the neighbours' load).

    .venv/bin/python bench/bench_sender.py                     # every client, 20,000 POSTs each
    .venv/bin/python bench/bench_sender.py --clients sender,aiohttp --requests 50000

Candidates:
- `aiohttp`: core/delivery/sender.py before this change (a ClientTimeout per request, auto headers);
- `aiohttp-tuned`: one ClientSession, cached ClientTimeout, skip_auto_headers, headers pre-built;
- `pyreqwest`: the Rust (reqwest/hyper) client, when installed (no dependency of Nerve);
- `sender`: the Sender as it is now (core/delivery/http1.py, httptools over asyncio protocols);
- `deliverer`: a whole first-attempt delivery as the dispatcher makes it, `Deliverer.deliver` of a
  Trigger's Target (its metrics, the retry loop, the Sender): what a delivery costs above the consumer.
  Run it from another checkout (`cd <tree> && PYTHONPATH=. <this venv>/bin/python <this file>`) to pair.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import multiprocessing
import os
import socket
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta

import aiohttp

from core.delivery.sender import Sender, pooled_session
from core.events import Event, to_binary

ANSWER = b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n"


class _SinkProtocol(asyncio.Protocol):
    """Answers every request with 202 as soon as its headers and body are in (Content-Length only)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no asyncio.Transport subclass
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].lower()
            at = head.find(b"content-length:")
            length = int(head[at + 15:].split(b"\r\n", 1)[0]) if at >= 0 else 0
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length:]
            self.transport.write(ANSWER)


def _sink(sock: socket.socket) -> None:
    import uvloop

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(_SinkProtocol, sock=sock)
        await server.serve_forever()

    uvloop.run(main())


def event(i: int) -> Event:
    return Event({"specversion": "1.0", "id": f"e-{i}", "source": "/bench", "type": "bench.event",
                  "datacontenttype": "application/json"}, b'{"hello": "nerve", "n": 12345}')


Send = Callable[[str, int], Awaitable[int]]


async def _aiohttp(tuned: bool) -> tuple[Send, Callable[[], Awaitable[None]]]:
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, limit_per_host=100),
                                    auto_decompress=False)
    timeout = aiohttp.ClientTimeout(total=30)
    skip = ("User-Agent", "Accept", "Accept-Encoding")

    async def send(url: str, i: int) -> int:
        headers, body = to_binary(event(i))
        if tuned:
            cm = session.post(url, data=body, headers=headers, skip_auto_headers=skip, timeout=timeout,
                              allow_redirects=False)
        else:
            cm = session.post(url, data=body, headers=headers, timeout=aiohttp.ClientTimeout(total=30),
                              allow_redirects=False)
        async with cm as response:
            await response.content.read(4 * 1024 * 1024)
            return response.status

    return send, session.close


async def _pyreqwest() -> tuple[Send, Callable[[], Awaitable[None]]]:
    from pyreqwest.client import ClientBuilder

    client = ClientBuilder().max_connections(100).http1_only().timeout(timedelta(seconds=30)).build()
    await client.__aenter__()

    async def send(url: str, i: int) -> int:
        headers, body = to_binary(event(i))
        response = await client.post(url).headers(headers).body_bytes(body).build().send()
        await response.bytes()
        return int(response.status)

    async def close() -> None:
        await client.__aexit__(None, None, None)

    return send, close


async def _sender() -> tuple[Send, Callable[[], Awaitable[None]]]:
    session = pooled_session(per_destination=100)
    sender = Sender(session, max_response_bytes=4 * 1024 * 1024)

    async def send(url: str, i: int) -> int:
        attempt = await sender.send(url, event(i), structured=False, headers={}, timeout_s=30)
        return attempt.status or 0

    return send, session.close


async def _deliverer() -> tuple[Send, Callable[[], Awaitable[None]]]:
    from core.contract import Egress, Reference
    from core.delivery.deliver import Deliverer, Target
    from core.hops import for_subscriber

    session = pooled_session(per_destination=100)
    deliverer = Deliverer(Sender(session, max_response_bytes=4 * 1024 * 1024))
    targets: dict[str, Target] = {}
    statuses = {"delivered": 202}

    async def send(url: str, i: int) -> int:
        target = targets.get(url)
        if target is None:
            egress = Egress(uid="t0", reference=Reference("t0", "bench", "t0", "Trigger"), consumer_group="g-t0",
                            destination=url)
            target = targets[url] = Target.compile(egress, ("bench", "default", "t0"), default_timeout_s=30)
        subscriber_copy, _ = for_subscriber(event(i))
        return statuses.get(await deliverer.deliver(subscriber_copy, target), 0)

    return send, session.close


CLIENTS = {"aiohttp": lambda: _aiohttp(False), "aiohttp-tuned": lambda: _aiohttp(True),
           "pyreqwest": _pyreqwest, "sender": _sender, "deliverer": _deliverer}


async def run(name: str, url: str, requests: int, concurrency: int) -> None:
    send, close = await CLIENTS[name]()
    for i in range(200):  # warm: connections open, caches filled
        await send(url, i)
    counter = iter(range(requests))
    statuses: dict[int, int] = {}

    async def worker() -> None:
        for i in counter:
            status = await send(url, i)
            statuses[status] = statuses.get(status, 0) + 1

    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    await close()
    print(f"{name:14} {requests / wall:8.0f} req/s  cpu/request={cpu / requests * 1e6:6.1f} us  "
          f"statuses={statuses}  load={os.getloadavg()[0]:.1f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", default=",".join(CLIENTS))
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=1, help="each client this many times, interleaved")
    args = parser.parse_args()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    sink = multiprocessing.get_context("fork").Process(target=_sink, args=(sock,), daemon=True)
    sink.start()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/t0"
    import uvloop

    names = args.clients.split(",")
    if "pyreqwest" in names and importlib.util.find_spec("pyreqwest") is None:
        print("pyreqwest is not installed (not a dependency of Nerve): `.venv/bin/pip install pyreqwest` to compare it")
        names.remove("pyreqwest")
    try:
        for _ in range(args.rounds):
            for name in names:
                uvloop.run(run(name, url, args.requests, args.concurrency))
    finally:
        sink.terminate()
        sink.join()


if __name__ == "__main__":
    main()
