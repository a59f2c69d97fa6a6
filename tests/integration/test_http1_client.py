"""The delivery client (core/delivery/http1.py) against real servers on loopback: what a subscriber sees
on the wire and what the Sender makes of each kind of answer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
from aiohttp import web

from core.delivery.sender import Sender, pooled_session
from core.events import Event


def an_event(**extra: str) -> Event:
    return Event({"specversion": "1.0", "id": "e1", "source": "/s", "type": "t", **extra}, b'{"a": 1}')


class RawServer:
    """A TCP server whose every connection is handled by `script(reader, writer)`: answers aiohttp's own
    server would never write (cut bodies, no Content-Length, a close right after the request)."""

    def __init__(self, script: Callable[[asyncio.StreamReader, asyncio.StreamWriter], object]) -> None:
        self.script = script
        self.connections = 0
        self.requests: list[bytes] = []

    async def start(self) -> str:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            try:
                await self.script(reader, writer)  # type: ignore[misc]
            finally:
                writer.close()

        self.server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/sink"

    async def read_request(self, reader: asyncio.StreamReader) -> bytes | None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return None
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        request = head + await reader.readexactly(length)
        self.requests.append(request)
        return request

    async def stop(self) -> None:
        self.server.close()
        await self.server.wait_closed()


@pytest.fixture
async def sender() -> AsyncIterator[Sender]:
    session = pooled_session(per_destination=4)
    try:
        yield Sender(session, max_response_bytes=1000)
    finally:
        await session.close()


async def _aiohttp_server(handler: Callable[[web.Request], object]) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)  # type: ignore[arg-type]
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}/sink?x=1"


async def test_binary_mode_arrives_as_sent_over_one_kept_alive_connection(sender: Sender) -> None:
    seen: list[tuple[str, dict[str, str], bytes, object]] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append((request.path_qs, dict(request.headers), await request.read(), request.transport))
        return web.Response(status=202)

    runner, url = await _aiohttp_server(handler)
    try:
        for _ in range(3):
            attempt = await sender.send(url, an_event(datacontenttype="application/json"), structured=False,
                                        headers={"Authorization": "Bearer x"}, timeout_s=5)
            assert attempt.status == 202
    finally:
        await runner.cleanup()
    path, headers, body, _ = seen[0]
    assert path == "/sink?x=1"
    assert body == b'{"a": 1}'
    assert headers["ce-id"] == "e1" and headers["ce-type"] == "t" and headers["ce-specversion"] == "1.0"
    assert headers["Content-Type"] == "application/json"
    assert headers["Authorization"] == "Bearer x"
    assert len({id(transport) for *_, transport in seen}) == 1  # keep-alive: one connection for all three


async def test_an_event_without_datacontenttype_arrives_without_a_content_type(sender: Sender) -> None:
    seen: list[dict[str, str]] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        return web.Response(status=200)

    runner, url = await _aiohttp_server(handler)
    try:
        assert (await sender.send(url, an_event(), structured=False, headers={}, timeout_s=5)).status == 200
    finally:
        await runner.cleanup()
    assert "Content-Type" not in seen[0]


async def test_an_answer_over_the_cap_is_cut_at_the_cap(sender: Sender) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=200, body=b"x" * 5000, content_type="text/plain")

    runner, url = await _aiohttp_server(handler)
    try:
        first = await sender.send(url, an_event(), structured=False, headers={}, timeout_s=5)
        second = await sender.send(url, an_event(), structured=False, headers={}, timeout_s=5)
    finally:
        await runner.cleanup()
    assert first.status == second.status == 200
    assert first.body == b"x" * 1000
    assert first.content_type == "text/plain"


async def test_a_redirect_is_the_answer(sender: Sender) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=307, headers={"Location": "http://127.0.0.1:1/elsewhere"})

    runner, url = await _aiohttp_server(handler)
    try:
        attempt = await sender.send(url, an_event(), structured=False, headers={}, timeout_s=5)
    finally:
        await runner.cleanup()
    assert attempt.status == 307
    assert attempt.headers["Location"] == "http://127.0.0.1:1/elsewhere"


async def test_a_chunked_answer_and_one_ended_by_close_are_read_whole(sender: Sender) -> None:
    async def chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await server.read_request(reader) is not None:
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nretry-after: 3\r\n"
                         b"content-type: text/plain\r\nX-Own-Case: 1\r\n\r\n"
                         b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")

    async def until_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server2.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it")
        await writer.drain()

    server, server2 = RawServer(chunked), RawServer(until_close)
    url, url2 = await server.start(), await server2.start()
    try:
        attempt = await sender.send(url, an_event(), structured=False, headers={}, timeout_s=5)
        ended = await sender.send(url2, an_event(), structured=False, headers={}, timeout_s=5)
    finally:
        await server.stop()
        await server2.stop()
    assert (attempt.status, attempt.body, attempt.headers["Retry-After"]) == (200, b"hello world", "3")
    assert "X-Own-Case" in attempt.headers and "Content-Type" in attempt.headers  # as written / aiohttp's
    assert (ended.status, ended.body) == (200, b"all of it")


async def test_a_kept_alive_connection_the_server_dropped_is_replaced_without_a_failed_attempt(
        sender: Sender) -> None:
    async def one_request_then_drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        # Keep-alive by the answer's terms, then gone as soon as the next request arrives: the race a
        # server's idle timeout makes.
        await reader.read(1)

    server = RawServer(one_request_then_drop)
    url = await server.start()
    try:
        statuses = [(await sender.send(url, an_event(), structured=False, headers={}, timeout_s=5)).status
                    for _ in range(3)]
    finally:
        await server.stop()
    assert statuses == [202, 202, 202]
    assert server.connections >= 3


async def test_no_answer_is_an_attempt_without_status(sender: Sender) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        await asyncio.sleep(2)

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server2.read_request(reader)

    server, server2 = RawServer(silent), RawServer(hang_up)
    url, url2 = await server.start(), await server2.start()
    try:
        timed_out = await sender.send(url, an_event(), structured=False, headers={}, timeout_s=0.2)
        hung_up = await sender.send(url2, an_event(), structured=False, headers={}, timeout_s=5)
        refused = await sender.send("http://127.0.0.1:1/", an_event(), structured=False, headers={}, timeout_s=5)
    finally:
        await server.stop()
        await server2.stop()
    assert (timed_out.status, timed_out.body) == (None, b"dispatch error: timeout")
    assert hung_up.status is None and hung_up.body.startswith(b"dispatch error: ")
    assert refused.status is None and refused.body.startswith(b"dispatch error: ")


async def test_a_header_value_with_a_line_break_is_never_sent(sender: Sender) -> None:
    server = RawServer(lambda reader, writer: server.read_request(reader))
    url = await server.start()
    try:
        attempt = await sender.send(url, an_event(), structured=False,
                                    headers={"X-Bad": "a\r\nX-Injected: 1"}, timeout_s=5)
    finally:
        await server.stop()
    assert attempt.status is None
    assert b"line break" in attempt.body
    assert server.requests == []


async def test_a_url_to_percent_encode_still_goes_out_through_the_general_client(sender: Sender) -> None:
    seen: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request.raw_path)
        return web.Response(status=202)

    runner, url = await _aiohttp_server(handler)
    try:
        attempt = await sender.send(url.replace("/sink?x=1", "/a path/é"), an_event(), structured=False,
                                    headers={}, timeout_s=5)
    finally:
        await runner.cleanup()
    assert attempt.status == 202
    assert seen == ["/a%20path/%C3%A9"]


async def test_a_connection_idle_past_the_limit_is_closed_by_the_client(monkeypatch: pytest.MonkeyPatch) -> None:
    from core.delivery import http1

    closed = asyncio.Event()

    async def keep_alive(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await server.read_request(reader) is not None:
            writer.write(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")
        closed.set()  # the client closed its end: the read saw the end of the stream

    monkeypatch.setattr(http1, "IDLE_S", 0.2)
    server = RawServer(keep_alive)
    idle_url = await server.start()
    busy_server = RawServer(lambda reader, writer: _answer_all(busy_server, reader, writer))
    busy_url = await busy_server.start()
    pool = http1.Http1Pool(per_destination=2)
    try:
        assert (await pool.post(idle_url, {}, b"", timeout_s=5, max_body=100)).status == 202
        await asyncio.sleep(0.3)
        # Traffic to another destination is what sweeps the idle one.
        assert (await pool.post(busy_url, {}, b"", timeout_s=5, max_body=100)).status == 202
        await asyncio.wait_for(closed.wait(), 5)
    finally:
        pool.close()
        await server.stop()
        await busy_server.stop()


async def _answer_all(server: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while await server.read_request(reader) is not None:
        writer.write(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")


async def test_a_kept_alive_connection_that_goes_silent_times_out_and_is_not_used_again() -> None:
    # The common path: the request goes out on an idle connection, and only the deadline's timer (no
    # timeout context) ends the wait for its answer.
    from core.delivery import http1

    async def first_then_silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if await server.read_request(reader) is None:
            return
        writer.write(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")
        await server.read_request(reader)
        await asyncio.sleep(5)  # the second request is never answered

    server = RawServer(first_then_silent)
    url = await server.start()
    pool = http1.Http1Pool(per_destination=2)
    try:
        assert (await pool.post(url, {}, b"", timeout_s=5, max_body=100)).status == 202
        loop = asyncio.get_running_loop()
        began = loop.time()
        with pytest.raises(TimeoutError):
            await pool.post(url, {}, b"", timeout_s=0.3, max_body=100)
        assert 0.25 < loop.time() - began < 2
        assert server.connections == 1  # it was the kept-alive connection that timed out
        # The next request goes out on a fresh connection (the silent one was dropped) and is answered.
        assert (await pool.post(url, {}, b"", timeout_s=5, max_body=100)).status == 202
        assert server.connections == 2
        assert len(server.requests) == 3
    finally:
        pool.close()
        await server.stop()


async def test_each_answer_is_waited_for_until_its_own_deadline_whatever_the_others_are() -> None:
    # The pool keeps every deadline under one timer (core/delivery/http1.py, _Deadlines): a short one after a
    # long one must fire on time, and a longer one after a short one that was answered must still fire.
    from core.delivery import http1

    async def answer_or_not(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (request := await server.read_request(reader)) is not None:
            if request.startswith(b"POST /answer "):
                writer.write(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")
            else:
                await asyncio.sleep(5)  # never answered

    server = RawServer(answer_or_not)
    base = (await server.start()).removesuffix("/sink")
    pool = http1.Http1Pool(per_destination=4)
    loop = asyncio.get_running_loop()

    async def timed(path: str, timeout_s: float) -> tuple[str, float]:
        began = loop.time()
        try:
            answer = await pool.post(base + path, {}, b"", timeout_s=timeout_s, max_body=100)
            outcome = str(answer.status)
        except TimeoutError:
            outcome = "timeout"
        return outcome, loop.time() - began

    try:
        long, short = await asyncio.gather(timed("/silent", 1.0), timed("/silent", 0.2))
        assert short[0] == "timeout" and 0.15 < short[1] < 0.6
        assert long[0] == "timeout" and 0.95 < long[1] < 1.5
        # An answered request with a short deadline, then a silent one with a longer deadline.
        assert (await timed("/answer", 0.2))[0] == "202"
        later = await timed("/silent", 0.6)
        assert later[0] == "timeout" and 0.55 < later[1] < 1.1
    finally:
        pool.close()
        await server.stop()


async def test_waiting_for_a_connection_counts_against_the_attempts_time() -> None:
    from core.delivery import http1

    arrived = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        arrived.set()
        await asyncio.sleep(5)

    server = RawServer(silent)
    url = await server.start()
    pool = http1.Http1Pool(per_destination=1)
    try:
        hanging = asyncio.create_task(pool.post(url, {}, b"", timeout_s=3, max_body=100))
        await asyncio.wait_for(arrived.wait(), 5)
        loop = asyncio.get_running_loop()
        began = loop.time()
        with pytest.raises(TimeoutError):  # the one connection allowed is busy the whole time
            await pool.post(url, {}, b"", timeout_s=0.3, max_body=100)
        assert 0.25 < loop.time() - began < 2
        assert len(server.requests) == 1  # it never got to send
        hanging.cancel()
        with pytest.raises(asyncio.CancelledError):
            await hanging
    finally:
        pool.close()
        await server.stop()


async def test_the_cap_holds_while_waiters_time_out_or_are_cancelled_and_no_slot_is_lost() -> None:
    """At most `per_destination` requests at once; a waiter that gave up never takes a slot later, and once
    the busy ones answer, the cap's whole width is usable again."""
    from core.delivery import http1

    gate, full = asyncio.Event(), asyncio.Event()
    busy = peak = 0

    async def held(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal busy, peak
        while await server.read_request(reader) is not None:
            busy += 1
            peak = max(peak, busy)
            if busy == 2:
                full.set()
            await gate.wait()
            busy -= 1
            writer.write(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()

    server = RawServer(held)
    url = await server.start()
    pool = http1.Http1Pool(per_destination=2)
    try:
        first = [asyncio.create_task(pool.post(url, {}, b"", timeout_s=10, max_body=100)) for _ in range(2)]
        await asyncio.wait_for(full.wait(), 5)
        cancelled = asyncio.create_task(pool.post(url, {}, b"", timeout_s=10, max_body=100))
        late = asyncio.create_task(pool.post(url, {}, b"", timeout_s=0.2, max_body=100))
        waiting = [asyncio.create_task(pool.post(url, {}, b"", timeout_s=10, max_body=100)) for _ in range(3)]
        await asyncio.sleep(0.05)
        cancelled.cancel()
        with pytest.raises(TimeoutError):
            await late
        gate.set()
        answers = await asyncio.gather(*first, *waiting)
        assert [a.status for a in answers] == [202] * 5
        assert cancelled.cancelled()
        assert len(server.requests) == 5 and peak == 2
        gate.clear()
        full.clear()
        again = [asyncio.create_task(pool.post(url, {}, b"", timeout_s=10, max_body=100)) for _ in range(3)]
        await asyncio.wait_for(full.wait(), 5)
        await asyncio.sleep(0.05)  # room for a third to start, were a slot too many
        assert busy == 2 and peak == 2  # two slots again, not one lost, not a third
        gate.set()
        assert [a.status for a in await asyncio.gather(*again)] == [202] * 3
    finally:
        gate.set()
        pool.close()
        await server.stop()


async def test_a_waiter_cancelled_just_as_it_was_handed_a_slot_passes_the_slot_on() -> None:
    from core.delivery import http1

    destination = http1._Destination(1)
    destination.free = 0  # the one slot is taken
    deadline = asyncio.get_running_loop().time() + 10
    waiter = asyncio.create_task(destination.take(deadline, http1._Deadlines()))
    await asyncio.sleep(0)
    destination.release()  # hands it the slot ...
    waiter.cancel()  # ... and it is cancelled before it could run
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert destination.free == 1 and not destination.waiting


async def test_one_event_sent_to_two_subscribers_arrives_byte_for_byte_as_binary_mode_writes_it(
        sender: Sender) -> None:
    """Its header lines are made once for every Trigger and attempt that sends it (core/delivery/sender.py):
    each request must still be exactly these bytes, the per-delivery headers after the event's own."""
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await server.read_request(reader) is not None:
            writer.write(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")

    server = RawServer(answer)
    url = await server.start()
    event = an_event(datacontenttype="application/json", subject="a b%c")
    event.headers = {"x-request-id": "r-1", "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    try:
        for path, namespace in (("/one", "ns1"), ("/two", "ns2"), ("/one", "ns1"), ("/two", "ns2")):
            attempt = await sender.send(url.replace("/sink", path), event, structured=False,
                                        headers={"Prefer": "reply", "Kn-Namespace": namespace}, timeout_s=5)
            assert attempt.status == 202
    finally:
        await server.stop()
    host = url.split("/")[2]

    def expected(path: str, namespace: str) -> bytes:
        return (f"POST {path} HTTP/1.1\r\nHost: {host}\r\n"
                "ce-specversion: 1.0\r\nce-id: e1\r\nce-source: /s\r\nce-type: t\r\n"
                "Content-Type: application/json\r\nce-subject: a%20b%25c\r\n"
                "x-request-id: r-1\r\ntraceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n"
                f"Prefer: reply\r\nKn-Namespace: {namespace}\r\nContent-Length: 8\r\n\r\n").encode() + b'{"a": 1}'

    assert server.requests == [expected("/one", "ns1"), expected("/two", "ns2")] * 2
