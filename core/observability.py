"""`/healthz`, `/readyz` and `/metrics` routes that every service serves the same way."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest


async def healthz(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def metrics(_: web.Request) -> web.Response:
    return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


def add_routes(app: web.Application, *, with_metrics: bool = True,
               generation: Callable[[], int] | None = None) -> None:
    """Health routes; with `generation`, /readyz answers 503 until a contract is applied and reports it."""
    app.router.add_get("/healthz", healthz)
    if generation is None:
        app.router.add_get("/readyz", healthz)
    else:
        async def readyz(_: web.Request) -> web.Response:
            applied = generation()
            return web.json_response({"status": "ok" if applied > 0 else "waiting for a contract",
                                      "generation": applied}, status=200 if applied > 0 else 503)

        app.router.add_get("/readyz", readyz)
    if with_metrics:
        app.router.add_get("/metrics", metrics)
