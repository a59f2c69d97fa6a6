"""`/healthz`, `/readyz` and `/metrics` routes that every service serves the same way.

`/readyz` answers 503 while any supervised part of the process is down (core/supervisor.py), with a
JSON body naming each part and why, and, for services that follow the contract, until one is applied.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from core.supervisor import HEALTH, Health


async def healthz(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def metrics(_: web.Request) -> web.Response:
    return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


def add_routes(app: web.Application, *, with_metrics: bool = True,
               generation: Callable[[], int] | None = None, health: Health = HEALTH) -> None:
    """Health routes; with `generation`, /readyz answers 503 until a contract is applied and reports it."""
    app.router.add_get("/healthz", healthz)

    async def readyz(_: web.Request) -> web.Response:
        body: dict[str, object] = {"status": "ok"}
        ready = True
        if generation is not None:
            applied = generation()
            body["generation"] = applied
            if applied <= 0:
                ready, body["status"] = False, "waiting for a contract"
        down = health.down()
        if down:
            ready, body["status"] = False, "not ready: " + ", ".join(sorted(down))
            body["down"] = down
        return web.json_response(body, status=200 if ready else 503)

    app.router.add_get("/readyz", readyz)
    if with_metrics:
        app.router.add_get("/metrics", metrics)
