"""The drain of every Nerve HTTP server (core/runtime.py `serve`), without a backend: what SIGTERM's
`runner.cleanup()` does to requests in flight, idle connections and new connections."""

from __future__ import annotations

import asyncio
import time

from aiohttp import web

from core.runtime import serve
from tests.support.drain import drain_with_a_request_half_sent

REQUEST = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n"


async def echo_length(request: web.Request) -> web.Response:
    return web.Response(status=202, text=str(len(await request.read())))


async def never_answers(request: web.Request) -> web.Response:
    await asyncio.sleep(3600)
    raise AssertionError("unreachable")


async def started(handler: web.Handler, drain: float) -> tuple[web.AppRunner, int]:
    app = web.Application()
    app.router.add_post("/", handler)
    return await serve(app, "127.0.0.1", 0, drain_timeout=drain)


async def test_a_request_whose_body_is_still_arriving_is_answered_across_the_shutdown() -> None:
    runner, port = await started(echo_length, drain=5.0)
    answer = await drain_with_a_request_half_sent(port, b"POST / HTTP/1.1\r\nHost: x\r\n", runner.cleanup)
    assert answer.startswith(b"HTTP/1.1 202"), answer
    assert b"Connection: close" in answer and answer.endswith(b"\r\n\r\n10")


async def test_what_is_still_running_after_the_drain_is_cancelled() -> None:
    runner, port = await started(never_answers, drain=0.5)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(REQUEST + b"1234567890")
    await writer.drain()
    await asyncio.sleep(0.2)
    began = time.monotonic()
    await asyncio.wait_for(runner.cleanup(), 10)
    assert time.monotonic() - began < 3.0  # the 0.5 s drain, then aiohttp's 1 s, not an hour
    assert await reader.read() == b""
    writer.close()
