"""The SDK programs as the tests drive them: producers that send through Nerve, subscribers it delivers to.

JavaScript and Go run as the programs in tests/interop/{js,go} (built by scripts/sdks.py). Python runs
in-process: the 2.x SDK (`cloudevents.core.bindings.http`) serializes to an HTTPMessage and decodes one,
but has no HTTP client or server of its own (and no batch serializer: `cloudevents.core.formats.json`
reads and writes one event), so aiohttp carries its messages.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from cloudevents.core.bindings import http as ce_http
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v03.event import CloudEvent as CloudEventV03
from cloudevents.core.v1.event import CloudEvent as CloudEventV1

from tests.interop.cases import WireEvent, read_request

HERE = Path(__file__).resolve().parent
SDKS = ("python", "js", "go")
# Batch: only sdk-go can send one (cehttp.NewHTTPRequestFromEvents). The JS SDK's emitter knows binary and
# structured only (see js/producer.js); the Python SDK has no batch format (see the docstring above).
MODES = {"python": ("binary", "structured"), "js": ("binary", "structured"), "go": ("binary", "structured", "batch")}
PROCESS_TIMEOUT = 60.0


@dataclass(frozen=True)
class Tools:
    node: str
    node_path: str
    go_producer: str
    go_subscriber: str


@dataclass(frozen=True)
class Sent:
    """One HTTP request a producer made, as its SDK put it on the wire, and the answer it got."""

    ids: list[str]
    status: int
    error: str | None
    headers: dict[str, str]
    body: bytes

    @property
    def events(self) -> list[WireEvent]:
        return read_request(self.headers, self.body)

    @property
    def content_type(self) -> str | None:
        return next((v for k, v in self.headers.items() if k.lower() == "content-type"), None)


@dataclass(frozen=True)
class Delivery:
    """One request a subscriber got: the raw Content-Type and body, and what its SDK decoded."""

    path: str
    content_type: str | None
    headers: dict[str, str]
    body: bytes
    decoded: dict[str, Any] | None  # {"attributes": {...}, "data": {"kind": ..., ...} | None}
    error: str | None

    @property
    def wire(self) -> WireEvent:
        [event] = read_request(self.headers, self.body)
        return event

    @property
    def id(self) -> str:
        return self.wire.attributes.get("id", "")


def _delivery(line: dict[str, Any]) -> Delivery:
    return Delivery(
        path=line["path"], content_type=line.get("content_type"),
        headers={k.lower(): v for k, v in line.get("headers", {}).items()},
        body=base64.b64decode(line["body_b64"]), decoded=line.get("event"), error=line.get("error"),
    )


def _sent(line: dict[str, Any]) -> Sent:
    return Sent(ids=list(line["ids"]), status=int(line.get("status") or 0), error=line.get("error"),
                headers=dict(line.get("headers") or {}), body=base64.b64decode(line.get("body_b64") or ""))


# --------------------------------------------------------------------------------------------- subscribers


@dataclass
class Subscriber:
    sdk: str
    url: str = ""
    deliveries: list[Delivery] = field(default_factory=list)
    _proc: asyncio.subprocess.Process | None = None
    _reader: asyncio.Task[None] | None = None
    _runner: web.AppRunner | None = None
    _stderr: bytes = b""

    async def start(self, tools: Tools) -> None:
        if self.sdk == "python":
            await self._start_python()
            return
        args = [tools.node, str(HERE / "js" / "subscriber.js"), "0"] if self.sdk == "js" else [tools.go_subscriber, "0"]
        self._proc = await asyncio.create_subprocess_exec(
            *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=_env(tools))
        assert self._proc.stdout is not None
        try:
            first = await asyncio.wait_for(self._proc.stdout.readline(), PROCESS_TIMEOUT)
        except TimeoutError:
            first = b""
        if not first.strip().isdigit():
            await self.stop()
            raise AssertionError(f"{self.sdk} subscriber did not start: {first!r} {self._stderr.decode()[-2000:]}")
        self.url = f"http://127.0.0.1:{int(first)}"
        self._reader = asyncio.create_task(self._read(self._proc.stdout))

    async def _read(self, stream: asyncio.StreamReader) -> None:
        async for line in stream:
            self.deliveries.append(_delivery(json.loads(line)))

    async def _start_python(self) -> None:
        async def handle(request: web.Request) -> web.Response:
            body = await request.read()
            headers = dict(request.headers)
            line: dict[str, Any] = {
                "path": request.path, "content_type": request.headers.get("Content-Type"), "headers": headers,
                "body_b64": base64.b64encode(body).decode(),
            }
            try:
                event = ce_http.from_http(ce_http.HTTPMessage(headers, body), JSONFormat())
                line["event"] = {"attributes": _python_attributes(event.get_attributes()),
                                 "data": _python_data(event.get_data())}
            except Exception as exc:  # noqa: BLE001 - whatever the SDK raises is what a user would see
                line["error"] = f"{type(exc).__name__}: {exc}"
            self.deliveries.append(_delivery(line))
            return web.Response(status=200)

        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_route("POST", "/{tail:.*}", handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        port: int = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._proc is not None:
            # Not communicate(): the reader task owns stdout, and a second reader of it raises (which left
            # the process running, to be collected later as an unclosed-transport warning in another test).
            if self._proc.returncode is None:
                self._proc.terminate()
            try:
                await asyncio.wait_for(self._proc.wait(), 10)
            except TimeoutError:
                self._proc.kill()
                await self._proc.wait()
            if self._proc.stderr is not None:
                with contextlib.suppress(TimeoutError):
                    self._stderr = await asyncio.wait_for(self._proc.stderr.read(), 5)
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(self._reader, 5)


def _python_attributes(attributes: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in attributes.items():
        if value is None:
            continue
        if isinstance(value, datetime):
            out[name] = value.isoformat().replace("+00:00", "Z")
        elif isinstance(value, bool):
            out[name] = "true" if value else "false"
        else:
            out[name] = str(value)
    return out


def _python_data(data: Any) -> dict[str, Any] | None:
    if data is None:
        return None
    if isinstance(data, (bytes, bytearray)):
        return {"kind": "bytes", "b64": base64.b64encode(bytes(data)).decode()}
    if isinstance(data, str):
        return {"kind": "text", "b64": base64.b64encode(data.encode()).decode()}
    return {"kind": "json", "json": json.dumps(data)}


# --------------------------------------------------------------------------------------------- producers


def _env(tools: Tools) -> dict[str, str]:
    env = dict(os.environ)
    env["NODE_PATH"] = tools.node_path
    return env


async def produce(sdk: str, tools: Tools, session: aiohttp.ClientSession, url: str, mode: str, specversion: str,
                  specs: list[dict[str, Any]]) -> list[Sent]:
    if sdk == "python":
        return await _produce_python(session, url, mode, specversion, specs)
    if sdk == "js":
        args = [tools.node, str(HERE / "js" / "producer.js"), url, mode, specversion]
    else:
        args = [tools.go_producer, url, mode, specversion]
    proc = await asyncio.create_subprocess_exec(
        *args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env=_env(tools))
    try:
        out, err = await asyncio.wait_for(proc.communicate(json.dumps(specs).encode()), PROCESS_TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"{sdk} producer ({mode}, {specversion}) did not finish in {PROCESS_TIMEOUT}s") from None
    if proc.returncode != 0:
        raise AssertionError(f"{sdk} producer ({mode}, {specversion}) failed ({proc.returncode}): {err.decode()}")
    return [_sent(json.loads(line)) for line in out.splitlines() if line.strip()]


def _python_event(spec: dict[str, Any], specversion: str, mode: str) -> CloudEventV1 | CloudEventV03:
    attributes: dict[str, Any] = {
        "specversion": specversion, "id": spec["id"], "source": spec["source"], "type": spec["type"],
        "time": datetime.fromisoformat(spec["time"]), **spec.get("extensions", {}),
    }
    for name in ("subject", "datacontenttype"):
        if spec.get(name) is not None:
            attributes[name] = spec[name]
    data: Any = None
    if spec.get("data_b64") is not None:
        raw = base64.b64decode(spec["data_b64"])
        content_type = spec.get("datacontenttype") or ""
        if spec.get("data_json") and mode == "structured":
            data = json.loads(raw)  # a Python user embeds a value; the SDK dumps it with json.dumps
        elif spec.get("data_json") or content_type.startswith("text/"):
            data = raw.decode()
        else:
            data = raw
    factory = CloudEventV1 if specversion == "1.0" else CloudEventV03
    return factory(attributes, data)


async def _produce_python(session: aiohttp.ClientSession, url: str, mode: str, specversion: str,
                          specs: list[dict[str, Any]]) -> list[Sent]:
    sent: list[Sent] = []
    for spec in specs:
        event = _python_event(spec, specversion, mode)
        if mode == "binary":
            message = ce_http.to_binary(event, JSONFormat())
        elif mode == "structured":
            message = ce_http.to_structured(event, JSONFormat())
        else:
            raise AssertionError(f"the Python SDK has no {mode} mode")
        # aiohttp would add `Content-Type: application/octet-stream` to a bytes body without one; what goes
        # on the wire must be the SDK's message and nothing else.
        async with session.post(url, data=message.body, headers=message.headers,
                                skip_auto_headers=["Content-Type"]) as response:
            await response.read()
            sent.append(Sent([spec["id"]], response.status, None, dict(message.headers), message.body))
    return sent
