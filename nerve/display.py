"""`nerve display`: a subscriber that prints every CloudEvent it receives, like Knative's event_display.

The layout is the one Knative users know from `kubectl logs` of event_display: the context attributes
in the CloudEvents SDK's order, then the extensions by name, then the data (JSON indented).
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import TextIO

from aiohttp import web

from core.errors import InvalidEvent
from core.events import Event, attr_to_string, from_http, is_json_media_type
from core.runtime import serve

CONTEXT_ORDER = ("specversion", "type", "source", "subject", "id", "time", "dataschema", "schemaurl",
                 "datacontenttype", "datacontentencoding")


def render(event: Event) -> str:
    lines = ["☁️  cloudevents.Event", "Context Attributes,"]
    attrs = event.attributes
    lines += [f"  {name}: {attr_to_string(attrs[name])}" for name in CONTEXT_ORDER if name in attrs]
    extensions = sorted(name for name in attrs if name not in CONTEXT_ORDER)
    if extensions:
        lines.append("Extensions,")
        lines += [f"  {name}: {attr_to_string(attrs[name])}" for name in extensions]
    if event.data:
        lines.append("Data,")
        text: str
        try:
            text = event.data.decode()
        except UnicodeDecodeError:
            text = repr(event.data)
        else:
            if is_json_media_type(event.content_type):
                try:
                    text = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
                except ValueError:
                    pass
        lines += ["  " + line for line in text.splitlines()]
    return "\n".join(lines)


def create_app(out: TextIO) -> web.Application:
    async def receive(request: web.Request) -> web.Response:
        if request.method != "POST":
            return web.json_response({"error": "MethodNotAllowed"}, status=405, headers={"Allow": "POST"})
        body = await request.read()
        try:
            events = from_http(request.headers.get("Content-Type"),
                               request.headers.items(), body)
        except InvalidEvent as exc:
            return web.json_response(exc.to_json(), status=400)
        for event in events:
            print(render(event), file=out, flush=True)
        return web.Response(status=202)

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", receive)
    return app


async def run_display(host: str, port: int, stop: asyncio.Event) -> None:
    runner, bound = await serve(create_app(sys.stdout), host, port)
    print(f"nerve display: listening on http://{host}:{bound}/", file=sys.stderr, flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
