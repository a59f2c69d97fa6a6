"""A real HTTP subscriber on loopback (port 0) that records what it receives and answers as told."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

from core.events import Event, from_http


@dataclass
class Answer:
    status: int = 202
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    delay_s: float = 0.0


@dataclass
class Received:
    event: Event
    headers: dict[str, str]
    body: bytes
    at: float


Script = Callable[[int, Event], Answer | Awaitable[Answer]]


class Receiver:
    def __init__(self, script: Script | None = None) -> None:
        self._script = script
        self.received: list[Received] = []
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._changed = asyncio.Condition()

    @property
    def events(self) -> list[Event]:
        return [r.event for r in self.received]

    @property
    def ids(self) -> list[str]:
        return [r.event.id for r in self.received]

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        content_type = request.headers.get("Content-Type")
        [event] = from_http(content_type, request.headers.items(), body)
        index = len(self.received)
        async with self._changed:
            self.received.append(Received(event, dict(request.headers), body, asyncio.get_running_loop().time()))
            self._changed.notify_all()
        answer = Answer()
        if self._script is not None:
            result = self._script(index, event)
            answer = await result if isinstance(result, Awaitable) else result
        if answer.delay_s:
            await asyncio.sleep(answer.delay_s)
        return web.Response(status=answer.status, headers=answer.headers, body=answer.body)

    async def start(self, port: int = 0, *, tls: ssl.SSLContext | None = None) -> str:
        """Serve on loopback; with `tls` (a server context) on https."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("POST", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port, ssl_context=tls)
        await site.start()
        assert site._server is not None
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{port}/"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def wait_for(self, count: int, timeout: float = 20.0) -> list[Event]:
        async def enough() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: len(self.received) >= count)

        await asyncio.wait_for(enough(), timeout)
        return self.events

    async def settle(self, quiet_s: float = 0.3) -> None:
        """Wait until nothing new arrived for `quiet_s` (to show that no more events come)."""
        seen = -1
        while seen != len(self.received):
            seen = len(self.received)
            await asyncio.sleep(quiet_s)
