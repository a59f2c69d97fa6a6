"""Running asyncio services: uvloop where present, servers through AppRunner, stop on SIGINT/SIGTERM,
and the loop every contract-following data-plane service (dispatcher, sources) runs."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web

from core import log_lines, observability
from core.connections import ConnectionGuard, ServerLimits
from core.contract import Contract
from core.contract_watch import ContractWatcher


def run(main: Callable[[asyncio.Event], Coroutine[Any, Any, None]]) -> None:
    """Run `main(stop)` on the best loop; `stop` is set by SIGINT or SIGTERM for a graceful shutdown."""
    log_lines.configure(logging.INFO)

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


class _GuardedRunner(web.AppRunner):
    def __init__(self, app: web.Application, guard: ConnectionGuard, *, decompress: bool) -> None:
        # aiohttp's keep-alive timer also runs from the moment a connection opens until its first
        # request's headers are complete: one timeout for idle and for slowly trickled headers.
        super().__init__(app, access_log=None, handle_signals=False,
                         keepalive_timeout=guard.limits.idle_timeout_s, auto_decompress=decompress)
        self._guard = guard

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        self._guard.attach(server)
        return server


async def serve(app: web.Application, host: str, port: int, *, name: str = "http",
                limits: ServerLimits | None = None, decompress: bool = True) -> tuple[web.AppRunner, int]:
    """Start an aiohttp app within `limits` (core/connections.py; `name` labels its metric); returns the
    runner and the bound port (port 0 picks a free one). `decompress=False` hands request bodies over
    as they came, Content-Encoding and all (the ingress decodes them itself)."""
    guard = ConnectionGuard(name, limits or ServerLimits())
    app.middlewares.insert(0, guard.middleware)
    runner = _GuardedRunner(app, guard, decompress=decompress)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    await site.start()
    bound: int = runner.addresses[0][1] if runner.addresses else port
    return runner, bound


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


async def follow_contract(stop: asyncio.Event, part: ContractFollower, *, contract: Path, host: str,
                          port: int) -> None:
    """Start `part`, feed it every generation of the contract file, serve its health and metrics on
    `port` until `stop`, then shut down in reverse order."""
    await part.start()
    watcher = ContractWatcher(contract, [part.apply])
    await watcher.start()
    app = web.Application()
    observability.add_routes(app, generation=lambda: part.generation)
    runner, _ = await serve(app, host, port)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        await watcher.stop()
        await part.stop()
