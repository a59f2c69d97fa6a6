"""The wire: what a subscriber receives is what the producer sent, on every backend (issue 8, section 1).

Producers here are raw sockets (so nothing adds, drops or re-encodes a header on the way in) and
subscribers are raw HTTP servers that record the request bytes as they came off the socket, so an
invented Content-Type or a re-encoded header value cannot hide behind a client library's parsing.
Each case also goes through one Broker -> reply -> Broker hop where a reply applies.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from channels.base import Backend, TopicSpec
from core.events import Event
from tests.support import manifests
from tests.support.manifests import BROKER
from tests.support.stack import Stack, eventually


def trigger(name: str, url: str, type_: str, fmt: str = "") -> dict[str, Any]:
    return manifests.trigger(name, url, filter={"attributes": {"type": type_}},
                             **({"delivery": {"format": fmt}} if fmt else {}))


# --------------------------------------------------------------------------------------------- raw HTTP


@dataclass
class Request:
    head: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def header(self, name: str) -> bytes | None:
        values = [v for n, v in self.headers if n.lower() == name.lower().encode()]
        assert len(values) <= 1, (name, values)
        return values[0] if values else None


@dataclass
class Reply:
    status: int = 202
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""


class RawReceiver:
    """An HTTP/1.1 server on loopback that keeps each request's bytes and answers with `answer(request)`."""

    def __init__(self, answer: Callable[[Request], Reply] | None = None) -> None:
        self._answer = answer or (lambda _: Reply())
        self.requests: list[Request] = []
        self.url = ""
        self._server: asyncio.Server | None = None

    async def start(self) -> RawReceiver:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/"
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                lines = [line.partition(b":") for line in head.split(b"\r\n")[1:] if line]
                request = Request(head, [(name, value.strip(b" \t")) for name, _, value in lines], b"")
                request.body = await reader.readexactly(int(request.header("Content-Length") or b"0"))
                self.requests.append(request)
                reply = self._answer(request)
                lines = [f"HTTP/1.1 {reply.status} X".encode(), f"Content-Length: {len(reply.body)}".encode()]
                lines += [n + b": " + v for n, v in reply.headers]
                writer.write(b"\r\n".join(lines) + b"\r\n\r\n" + reply.body)
                await writer.drain()
        finally:
            writer.close()

    async def wait_for(self, count: int, timeout: float = 20.0) -> list[Request]:
        await eventually(lambda: len(self.requests) >= count, timeout=timeout)
        return self.requests


async def post_raw(stack: Stack, path: str, headers: list[tuple[bytes, bytes]], body: bytes) -> tuple[int, bytes]:
    """POST exactly these header bytes (no Content-Type unless given) and return status and body."""
    host, port = stack.ingress.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        lines = [f"POST {path} HTTP/1.1".encode(), f"Host: {host}".encode(), f"Content-Length: {len(body)}".encode(),
                 b"Connection: close"]
        lines += [n + b": " + v for n, v in headers]
        writer.write(b"\r\n".join(lines) + b"\r\n\r\n" + body)
        await writer.drain()
        response = await reader.read()
    finally:
        writer.close()
    head, _, payload = response.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), payload


def ce(id_: str, type_: str = "original", **attributes: bytes) -> list[tuple[bytes, bytes]]:
    """Binary-mode `ce-` headers; keyword arguments add attributes or replace the defaults."""
    values = {"specversion": b"1.0", "id": id_.encode(), "source": b"/wire", "type": type_.encode(), **attributes}
    return [(b"ce-" + k.encode(), v) for k, v in values.items()]


def echo_as(type_: str) -> Callable[[Request], Reply]:
    """A subscriber that answers 200 with the event it got, as a new type: a binary-mode reply."""

    def answer(request: Request) -> Reply:
        if request.header("ce-type") != b"original":
            return Reply()
        headers = [(n, v) for n, v in request.headers
                   if n.lower().startswith(b"ce-") and n.lower() not in (b"ce-type", b"ce-knativearrivaltime")]
        headers += [(b"ce-type", type_.encode())]
        if request.header("Content-Type") is not None:
            headers.append((b"Content-Type", request.header("Content-Type") or b""))
        return Reply(200, headers, request.body)

    return answer


async def _receivers(*answers: Callable[[Request], Reply] | None) -> list[RawReceiver]:
    return [await RawReceiver(a).start() for a in answers]


# --------------------------------------------------------------------------------------------- tests


async def test_content_type_arrives_exactly_as_sent_also_after_a_reply_hop(stack: Stack) -> None:
    first, second = await _receivers(echo_as("reply"), None)
    try:
        await stack.apply(BROKER, trigger("first", first.url, "original"), trigger("second", second.url, "reply"))
        sent = [b"application/json; charset=utf-8", b'application/json; charset="utf-8"',
                b"text/plain;charset=UTF-8;  format=\"a b%20c\""]
        for i, content_type in enumerate(sent):
            status, _ = await post_raw(stack, "/ns1/default", [*ce(f"e{i}"), (b"Content-Type", content_type)],
                                       b'{"n": 1}')
            assert status == 202
        await first.wait_for(len(sent))
        await second.wait_for(len(sent))
        for received in (first.requests, second.requests):
            by_id = {r.header("ce-id"): r for r in received}
            for i, content_type in enumerate(sent):
                request = by_id[f"e{i}".encode()]
                assert request.header("Content-Type") == content_type
                assert request.body == b'{"n": 1}'
    finally:
        for r in (first, second):
            await r.stop()


async def test_an_event_without_content_type_is_delivered_without_one_also_after_a_hop(stack: Stack) -> None:
    first, second, structured = await _receivers(echo_as("reply"), None, None)
    try:
        await stack.apply(BROKER, trigger("first", first.url, "original"), trigger("second", second.url, "reply"),
                          trigger("third", structured.url, "reply", fmt="json"))
        assert (await post_raw(stack, "/ns1/default", ce("plain"), b"raw bytes"))[0] == 202
        assert (await post_raw(stack, "/ns1/default", ce("empty"), b""))[0] == 202
        await first.wait_for(2)
        await second.wait_for(2)
        await structured.wait_for(2)
        for request in first.requests + second.requests:
            assert request.header("Content-Type") is None, request.head
        bodies = {r.header("ce-id"): r.body for r in second.requests}
        assert bodies == {b"plain": b"raw bytes", b"empty": b""}
        # The reply was stored without a datacontenttype: the structured form has none either.
        for request in structured.requests:
            assert "datacontenttype" not in json.loads(request.body)
    finally:
        for r in (first, second, structured):
            await r.stop()


async def test_header_bytes_that_are_not_utf8_are_a_400_naming_the_attribute(stack: Stack) -> None:
    sink, = await _receivers(None)
    try:
        await stack.apply(BROKER, trigger("all", sink.url, "original"))
        refused = {
            "subject": ce("latin1", subject="caf\u00e9".encode("latin-1")),  # what Node and http.client send
            "source": ce("pct", source=b"bad%FFutf8"),
            "region": ce("overlong", region=b"%C0%A0"),
            "datacontenttype": [*ce("ct"), (b"Content-Type", "text/plain; charset=caf\u00e9".encode())],
            "x-request-id": [*ce("xrid"), (b"X-Request-Id", b"\xff\xfe")],
        }
        for attribute, headers in refused.items():
            status, body = await post_raw(stack, "/ns1/default", headers, b"x")
            assert status == 400, (attribute, body)
            assert json.loads(body)["field"] == attribute, body
        # Raw bytes that are valid UTF-8 are the text they spell; they leave percent-encoded.
        status, _ = await post_raw(stack, "/ns1/default", ce("utf8", subject="caf\u00e9".encode()), b"x")
        assert status == 202
        [request] = await sink.wait_for(1)
        await asyncio.sleep(0.3)
        assert [r.header("ce-id") for r in sink.requests] == [b"utf8"]
        assert request.header("ce-subject") == b"caf%C3%A9"
    finally:
        await sink.stop()


EXACT_DATA = [
    b"123456789012345678901234567890",
    b"1E2",
    b'{ "text" : "line\\u2028sep", "n" : [1.0, -0, 1E-7] }',
    b'"abc"',
    b"[\n  true,\n  null\n]",
]


def _structured(id_: str, data: bytes, type_: str = "original", content_type: str | None = None) -> bytes:
    ct = f', "datacontenttype": "{content_type}"' if content_type else ""
    return (b'{"specversion": "1.0", "id": "' + id_.encode() + b'", "source": "/wire", "type": "' + type_.encode()
            + b'"' + ct.encode() + b', "data" :  ' + data + b"  }")


async def test_structured_data_bytes_reach_binary_and_structured_subscribers_unchanged(stack: Stack) -> None:
    binary, structured = await _receivers(None, None)
    try:
        await stack.apply(BROKER, trigger("binary", binary.url, "original"),
                          trigger("structured", structured.url, "original", fmt="json"))
        sent: dict[bytes, bytes] = {}
        for i, data in enumerate(EXACT_DATA):
            ct = "application/json" if i % 2 else None
            sent[f"s{i}".encode()] = data
            status, body = await post_raw(stack, "/ns1/default",
                                          [(b"Content-Type", b"application/cloudevents+json")],
                                          _structured(f"s{i}", data, content_type=ct))
            assert status == 202, body
        batch = b"[" + b", ".join(_structured(f"b{i}", d) for i, d in enumerate(EXACT_DATA)) + b"]"
        sent.update({f"b{i}".encode(): d for i, d in enumerate(EXACT_DATA)})
        status, body = await post_raw(stack, "/ns1/default",
                                      [(b"Content-Type", b"application/cloudevents-batch+json")], batch)
        assert status == 202, body
        await binary.wait_for(len(sent))
        await structured.wait_for(len(sent))
        assert {r.header("ce-id"): r.body for r in binary.requests} == sent
        for request in structured.requests:
            id_ = json.loads(request.body)["id"].encode()
            assert request.header("Content-Type") == b"application/cloudevents+json"
            assert b'"data":' + sent[id_] + b"}" in request.body, request.body
    finally:
        for r in (binary, structured):
            await r.stop()


async def test_a_structured_reply_keeps_its_data_bytes_through_the_broker(stack: Stack) -> None:
    data = b'{"big": 123456789012345678901234567890, "e": 1E2, "s": "\\u2028"}'

    def reply(request: Request) -> Reply:
        if request.header("ce-type") != b"original":
            return Reply()
        body = _structured("r-" + (request.header("ce-id") or b"").decode(), data, "reply", "application/json")
        return Reply(200, [(b"Content-Type", b"application/cloudevents+json")], body)

    first, second = await _receivers(reply, None)
    try:
        await stack.apply(BROKER, trigger("first", first.url, "original"), trigger("second", second.url, "reply"))
        assert (await post_raw(stack, "/ns1/default", ce("q"), b""))[0] == 202
        [request] = await second.wait_for(1)
        assert request.header("ce-id") == b"r-q"
        assert request.header("Content-Type") == b"application/json"
        assert request.body == data
    finally:
        for r in (first, second):
            await r.stop()


async def test_each_backend_stores_content_type_and_attributes_losslessly(backend: Backend) -> None:
    topic = f"wire-{uuid.uuid4().hex[:12]}"
    await backend.ensure_topic(TopicSpec(topic))
    reader = backend.open_reader(topic, "g1")
    await reader.start()
    content_types = ["application/json; charset=utf-8", 'application/json; charset="utf-8"',
                     'text/plain;  a=" x%41 y " ', "application/octet-stream;q=%2525"]
    sent = [Event({"specversion": "1.0", "id": f"e{i}", "source": "/s", "type": "t", "datacontenttype": ct,
                   "subject": f" caf\u00e9 {ct} %41 ", "extra": "%%\t\u2028"}, b'"x"')
            for i, ct in enumerate(content_types)]
    sent.append(Event({"specversion": "1.0", "id": "none", "source": "/s", "type": "t"}, b"no type"))
    try:
        for event in sent:
            await backend.publish(topic, event)
        got: dict[str, Event] = {}
        while len(got) < len(sent):
            for message in await asyncio.wait_for(reader.receive(len(sent)), 30):
                got[message.event.id] = message.event
                await message.ack()
        for event in sent:
            assert got[event.id].attributes == event.attributes
            assert got[event.id].data == event.data
    finally:
        await reader.stop()
