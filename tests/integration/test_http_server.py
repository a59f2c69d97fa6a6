"""Nerve's own HTTP/1.1 server (core/http_server.py) as a client on a raw socket meets it: what the ingress
relies on that aiohttp used to give it, and what this server does of its own (the 413 before the body)."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator

import pytest

from core.connections import CLOSED, ServerLimits
from core.http_request import BodyTooLarge, HttpRequest, Response
from core.http_server import HttpServer, serve_http
from tests.support.drain import drain_with_a_request_half_sent


async def echo(request: HttpRequest) -> Response:
    """Answers with the path and the body's length; a body past the server's limit is a 413."""
    try:
        body = await request.read()
    except BodyTooLarge:
        return Response(413, b"too large")
    case = request.headers.get("x-case") or ""  # looked up in lower case, sent as X-Case
    return Response(200, f"{request.path} {len(body)}".encode(), headers={"X-Case": case})


async def length_first(request: HttpRequest) -> Response:
    if request.content_length is not None and request.content_length > 10:
        return Response(413, b"too large")  # before anything of the body is read
    return await echo(request)


class Counted:
    def __init__(self) -> None:
        self.messages: list[str] = []

    def __call__(self, message: str) -> None:
        self.messages.append(message)


@pytest.fixture
async def malformed() -> Counted:
    return Counted()


@pytest.fixture
async def server(malformed: Counted) -> AsyncIterator[tuple[HttpServer, int]]:
    server, port = await serve_http(echo, "127.0.0.1", 0, name="test-h1", max_body=100, malformed=malformed)
    yield server, port
    await server.cleanup()


async def _answers(port: int, data: bytes, *, seconds: float = 2.0) -> bytes:
    """Everything the server sends until it closes (or `seconds` pass with the connection open)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    received = b""
    try:
        async with asyncio.timeout(seconds):
            while chunk := await reader.read(65536):
                received += chunk
    except TimeoutError:
        pass
    writer.close()
    return received


def _statuses(raw: bytes) -> list[bytes]:
    return re.findall(rb"HTTP/1\.[01] (\d{3}) ", raw)


async def test_pipelined_requests_are_answered_in_order(server: tuple[HttpServer, int]) -> None:
    _, port = server
    requests = b"".join(b"POST /r%d HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (i, i, b"x" * i)
                        for i in range(1, 21))
    raw = await _answers(port, requests + b"GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    bodies = [part.split(b"\r\n\r\n", 1)[1] for part in raw.split(b"HTTP/1.1 ")[1:]]
    assert [b.split(b"HTTP")[0] for b in bodies] == [b"/r%d %d" % (i, i) for i in range(1, 21)] + [b"/last 0"]
    assert raw.count(b"Connection: close") == 1  # kept alive until the client asked to close


async def test_a_chunked_body_is_read_whole(server: tuple[HttpServer, int]) -> None:
    _, port = server
    raw = await _answers(port, b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nX-Case: Kept\r\n\r\n"
                               b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", seconds=0.5)
    assert raw.startswith(b"HTTP/1.1 200 OK\r\n")
    assert raw.endswith(b"\r\n\r\n/c 11")
    assert b"X-Case: Kept\r\n" in raw


async def test_a_chunked_body_past_the_limit_is_refused(server: tuple[HttpServer, int]) -> None:
    _, port = server
    chunk = b"40\r\n" + b"x" * 64 + b"\r\n"
    raw = await _answers(port, b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk * 3)
    assert raw.startswith(b"HTTP/1.1 413 ")
    assert b"Connection: close" in raw  # the rest of the body is never read: the connection ends


async def test_malformed_http_is_a_400_counted_and_logged_at_debug(
        server: tuple[HttpServer, int], malformed: Counted, caplog: pytest.LogCaptureFixture) -> None:
    _, port = server
    caplog.set_level(logging.DEBUG, logger="nerve")
    # A good request first: its answer comes before the 400 of the malformed one behind it.
    raw = await _answers(port, b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n"
                               b"POST /x HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n")
    assert _statuses(raw) == [b"200", b"400"]
    assert raw.endswith(b"Connection: close\r\n\r\n" + raw.rsplit(b"\r\n\r\n", 1)[1])
    assert len(malformed.messages) == 1
    records = [r for r in caplog.records if r.name.startswith("nerve")]
    assert [r.levelno for r in records] == [logging.DEBUG]
    assert not any(r.exc_info for r in records)


async def test_expect_100_continue_gets_the_interim_answer_before_the_body(server: tuple[HttpServer, int]) -> None:
    _, port = server
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /e HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
    assert await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2) == b"HTTP/1.1 100 Continue\r\n\r\n"
    writer.write(b"body")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
    assert head.startswith(b"HTTP/1.1 200 ")
    assert await reader.readexactly(len(b"/e 4")) == b"/e 4"
    writer.write(b"POST /e HTTP/1.1\r\nHost: x\r\nExpect: something-else\r\nContent-Length: 0\r\n\r\n")
    assert (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)).startswith(b"HTTP/1.1 417 ")
    writer.close()


async def test_a_content_length_over_the_limit_is_413_without_the_body_being_read() -> None:
    server, port = await serve_http(length_first, "127.0.0.1", 0, name="test-h1", max_body=10)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        # The client waits for the 100 before sending the body: a 413 instead tells it not to send it.
        writer.write(b"POST /big HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 1000000\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(), 2)  # answered, then closed, with nothing sent
        assert answer.startswith(b"HTTP/1.1 413 ")
        assert b"100 Continue" not in answer and b"Connection: close" in answer
        writer.close()
    finally:
        await server.cleanup()


async def test_the_oldest_idle_connection_makes_room_at_the_cap() -> None:
    evicted = CLOSED.labels("test-h1-cap", "evicted_idle")
    before = evicted._value.get()
    server, port = await serve_http(echo, "127.0.0.1", 0, name="test-h1-cap", limits=ServerLimits(max_connections=3))
    try:
        held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
        # The second has a request in progress (its body still coming): never the one evicted.
        held[1][1].write(b"POST /busy HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nab")
        await asyncio.sleep(0.2)
        raw = await _answers(port, b"GET /new HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert raw.startswith(b"HTTP/1.1 200 ")
        assert await asyncio.wait_for(held[0][0].read(), 1) == b""  # the oldest idle one, closed
        held[1][1].write(b"cde")
        assert (await asyncio.wait_for(held[1][0].readuntil(b"\r\n\r\n"), 2)).startswith(b"HTTP/1.1 200 ")
        assert evicted._value.get() - before >= 1
        for _, writer in held:
            writer.close()
    finally:
        await server.cleanup()


async def test_http_1_0_closes_unless_it_asks_for_keep_alive(server: tuple[HttpServer, int]) -> None:
    _, port = server
    raw = await _answers(port, b"GET /a HTTP/1.0\r\n\r\n")
    assert raw.startswith(b"HTTP/1.0 200 ") and raw.endswith(b"/a 0")  # and closed: _answers returned
    raw = await _answers(port, b"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", seconds=0.3)
    assert b"Connection: keep-alive\r\n" in raw


async def test_a_handler_fault_is_a_500_with_no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    async def broken(request: HttpRequest) -> Response:
        raise RuntimeError("secret internals")

    server, port = await serve_http(broken, "127.0.0.1", 0, name="test-h1", headers={"Nerve-Worker": "7"})
    try:
        raw = await _answers(port, b"GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert raw.startswith(b"HTTP/1.1 500 ")
        assert b"Nerve-Worker: 7\r\n" in raw and b"secret" not in raw
        assert any(r.exc_info for r in caplog.records if r.name == "nerve.server")
    finally:
        await server.cleanup()


async def test_the_drain_answers_the_request_in_flight_and_closes_the_rest() -> None:
    server, port = await serve_http(echo, "127.0.0.1", 0, name="test-h1", drain_timeout=5.0)
    answer = await drain_with_a_request_half_sent(port, b"POST /d HTTP/1.1\r\nHost: x\r\n", server.cleanup)
    assert answer.startswith(b"HTTP/1.1 200 ") and b"Connection: close" in answer and answer.endswith(b"/d 10")


async def test_what_still_runs_after_the_drain_is_cancelled() -> None:
    async def never(request: HttpRequest) -> Response:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    server, port = await serve_http(never, "127.0.0.1", 0, name="test-h1", drain_timeout=0.5)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    await asyncio.sleep(0.2)
    await asyncio.wait_for(server.cleanup(), 3)
    assert await asyncio.wait_for(reader.read(), 1) == b""
    writer.close()
