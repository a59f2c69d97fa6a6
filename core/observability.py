"""`/healthz`, `/readyz` and `/metrics` routes that every service serves the same way."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest


async def healthz(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def metrics(_: web.Request) -> web.Response:
    return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


def add_routes(app: web.Application, *, with_metrics: bool = True) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", healthz)
    if with_metrics:
        app.router.add_get("/metrics", metrics)
