"""A minimal HTTP/1.1 client for deliveries: POST over keep-alive connections, parsed by httptools.

Why not aiohttp's client for this one request shape: per delivery it builds a request object, a
multidict of headers, a timeout context, a stream reader and a response object, and that is most of the
dispatcher's CPU per delivery (docs/performance.md, "Per-delivery CPU", has the profile and figures).
A delivery needs much less: one POST with headers that are already strings, one answer whose body is
capped, no redirects, no cookies, no proxies, no decompression. So this client writes the request
bytes itself and lets httptools (llhttp, the parser Node.js uses) read the answer.

What it keeps of aiohttp's client behaviour, on purpose:
- a keep-alive pool per destination (scheme, host, port, TLS context) with a cap on connections open at
  once per destination, so a slow subscriber only ever waits on its own connections;
- redirects are never followed (a 3xx is the answer);
- the answer's body is read up to `max_body` bytes; a longer one is cut there and its connection
  closed (nothing more of it is read);
- one total timeout per attempt, connecting included;
- https with a given `ssl.SSLContext` (or the default verifying one);
- response header names as the server wrote them, except the ones aiohttp knows (`aiohttp.hdrs`), which
  get its spelling whatever their case on the wire (`retry-after` is `Retry-After`), as aiohttp's
  parser gave them: the delivery code looks them up by that spelling.

An idle connection is closed after IDLE_S (15 s, aiohttp's keep-alive default), so the connections to a
subscriber that is no longer delivered to do not stay open. A connection that the server closed while it
sat idle is noticed (connection_lost) and never reused; a request that fails on a reused connection
before a single byte of an answer came back is sent once more on a fresh connection (the server closed
it as we wrote: nothing was answered, at-least-once holds).
"""

from __future__ import annotations

import asyncio
import functools
import math
import re
import ssl
import time
from collections import deque
from dataclasses import dataclass
from urllib.parse import urlsplit

import httptools
from aiohttp import hdrs
from multidict import istr

IDLE_S = 15.0
"""Seconds a kept-alive connection may sit unused before this client closes it."""


class RequestError(Exception):
    """No HTTP answer: refused, reset, closed early, malformed answer, or a header we cannot send."""


class Unsupported(RequestError):
    """A URL this client does not send to as it is (user info, characters to percent-encode first, not
    http(s)): raised before any I/O, so the caller can hand it to a general client instead."""


@dataclass(slots=True)
class Answer:  # not frozen, as core/delivery/sender.Attempt is not: one per delivery
    status: int
    body: bytes
    headers: dict[str, str]
    content_type: str | None


@dataclass(frozen=True, slots=True)
class _Target:
    """A URL taken apart once: what a connection needs and what the request line says."""

    tls: bool
    host: str
    port: int
    head: bytes
    """`POST <path> HTTP/1.1\\r\\nHost: <host>\\r\\n`, ready to be followed by the other headers."""


_CANONICAL = {str(name).lower(): str(name) for name in vars(hdrs).values() if isinstance(name, istr)}
"""The spelling aiohttp gives the header names it knows: Retry-After, Content-Type, Location..."""

_PLAIN = re.compile(r"[\x21-\x7e]+")
"""Visible ASCII only: no space, no CR or LF, nothing a request line would have to percent-encode."""


@functools.lru_cache(maxsize=4096)
def _target(url: str) -> _Target:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Unsupported(f"cannot send to {url!r}: not an http(s) URL with a host")
    if parts.username is not None or parts.password is not None:
        raise Unsupported("user info in a destination URL")
    tls = parts.scheme == "https"
    try:
        port = parts.port or (443 if tls else 80)
    except ValueError as exc:
        raise Unsupported(f"bad port in {url!r}: {exc}") from None
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    host = parts.netloc
    if not _PLAIN.fullmatch(target) or not _PLAIN.fullmatch(host):
        raise Unsupported(f"{url!r} has characters to percent-encode before they go on a request line")
    head = f"POST {target} HTTP/1.1\r\nHost: {host}\r\n"
    return _Target(tls, parts.hostname, port, head.encode("ascii"))


def header_lines(headers: dict[str, str]) -> bytes:
    """`Name: value\\r\\n` for each header, checked: RequestError for one that cannot be sent as it is."""
    block = "".join([f"{name}: {value}\r\n" for name, value in headers.items()])
    # A CR or LF inside a name or value would end the header early and let the rest forge a request.
    if block.count("\n") != len(headers) or block.count("\r") != len(headers):
        raise RequestError("a header name or value holds a line break")
    try:
        return block.encode("utf-8")
    except UnicodeEncodeError:
        raise RequestError("a header holds bytes that are not UTF-8 text") from None


@functools.lru_cache(maxsize=1024)
def _lines_of(items: tuple[tuple[str, str], ...]) -> bytes:
    return header_lines(dict(items))


def _header_block(headers: dict[str, str], length: int) -> bytes:
    # A delivery's own headers (Prefer, Kn-Namespace, an OIDC token) repeat for every event a target sends:
    # their lines are made once (0.95 us a delivery before, 0.34 us with the cache).
    return _lines_of(tuple(headers.items())) + b"Content-Length: %d\r\n\r\n" % length


GRAIN_S = 0.005
"""The least time between two of a pool's deadline checks: when deadlines pass one after another (a
subscriber that stopped answering), each is found at most this late."""


class _Deadlines:
    """The deadlines of a pool's answers and slot waits, kept in a dict under one loop timer.

    A timer per request (`loop.call_at` then `cancel`) cost 2.5-3.0 us on uvloop, where setting and
    popping a dict entry costs about 0.1 us, and a delivery waiting for a slot took two. The timer is set
    for the earliest deadline; an entry gone by then (its answer came) is just not found, and the timer is
    set again for the earliest one left, so while answers come in time it fires about once per timeout.
    A deadline earlier than the timer's sets it again at once: nothing fires late but by GRAIN_S."""

    def __init__(self) -> None:
        self._due: dict[object, float] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._at = math.inf

    def watch(self, item: _Connection | asyncio.Future[None], deadline: float) -> None:
        """`item` expires at `deadline` unless `unwatch`ed first: a connection's `expire()`, a waiter's
        TimeoutError."""
        self._due[item] = deadline
        if deadline < self._at:
            self._arm(deadline)

    def unwatch(self, item: object) -> None:
        self._due.pop(item, None)

    def _arm(self, at: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._at = at
        self._timer = asyncio.get_running_loop().call_at(at, self._check)

    def _check(self) -> None:
        self._timer, self._at = None, math.inf
        now = asyncio.get_running_loop().time()
        due = self._due
        passed = [item for item, deadline in due.items() if deadline <= now]
        for item in passed:
            del due[item]
            if isinstance(item, _Connection):
                item.expire()
            else:
                _time_out(item)  # type: ignore[arg-type]
        if due:
            self._arm(max(min(due.values()), now + GRAIN_S))


class _Connection(asyncio.Protocol):
    """One keep-alive connection: one request at a time, its answer parsed as it arrives."""

    def __init__(self, max_body: int, deadlines: _Deadlines, loop: asyncio.AbstractEventLoop) -> None:
        self.max_body = max_body
        self._deadlines = deadlines
        self._loop = loop
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self.used = False
        """It carried an answer already: a failure before any answer byte may be a stale keep-alive."""
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[Answer] | None = None
        self._got_bytes = False
        self._reset()

    def _reset(self) -> None:
        self._headers: dict[str, str] = {}
        self._name = b""
        self._value = b""
        self._body: list[bytes] = []
        self._size = 0
        self._got_bytes = False
        self._headers_done = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no asyncio.Transport subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        if self._headers_done and not self._parser.should_keep_alive():
            # An answer delimited by the end of the connection (no Content-Length, not chunked).
            self._finish(self._parser.get_status_code())
            return
        self._fail(RequestError(str(exc) if exc else "the server closed the connection before it answered"))

    def data_received(self, data: bytes) -> None:
        self._got_bytes = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(RequestError("the server switched protocols"))
        except httptools.HttpParserError as exc:
            self._fail(RequestError(f"malformed HTTP answer: {exc}"))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        # llhttp may hand one header over in pieces: a name piece always starts a new header.
        if name:
            self._store_header()
            self._name += name
        self._value += value

    def _store_header(self) -> None:
        if self._name:
            name = self._name.decode("latin-1")
            self._headers[_CANONICAL.get(name.lower(), name)] = self._value.decode("latin-1")
        self._name = b""
        self._value = b""

    def on_headers_complete(self) -> None:
        self._store_header()
        self._headers_done = True

    def on_body(self, body: bytes) -> None:
        room = self.max_body - self._size
        if len(body) >= room:
            # The cap: keep what fits and drop the connection (the rest of the answer is never read).
            self._body.append(body[:room])
            self._size = self.max_body
            self._finish(self._parser.get_status_code(), reusable=False)
            return
        self._body.append(body)
        self._size += len(body)

    def on_message_complete(self) -> None:
        self._finish(self._parser.get_status_code(), reusable=self._parser.should_keep_alive())

    # ours
    def _finish(self, status: int, *, reusable: bool = False) -> None:
        waiter = self._waiter
        self._waiter = None
        self._stop_timer()
        if not reusable:
            self.close()
        if waiter is None or waiter.done():
            return
        headers = self._headers
        content_type = None
        for name, value in headers.items():
            if name.lower() == "content-type":
                content_type = value
        body = b"".join(self._body)
        self.used = True
        self._reset()
        waiter.set_result(Answer(status, body, headers, content_type))

    def expire(self) -> None:
        """The attempt's deadline passed before the whole answer came: the connection is spent."""
        self._fail(TimeoutError())

    def _fail(self, exc: Exception) -> None:
        waiter = self._waiter
        self._waiter = None
        self.close()
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def send(self, data: bytes, deadline: float) -> asyncio.Future[Answer]:
        """Write one request; its answer's future fails with TimeoutError at `deadline` (the pool's
        `_Deadlines`, neither `asyncio.timeout` nor a timer of its own: docs/performance.md) and this
        connection is then spent."""
        assert self.transport is not None and self._waiter is None
        self._waiter = waiter = self._loop.create_future()
        self._deadlines.watch(self, deadline)
        self._reset()
        self.transport.write(data)
        return waiter

    @property
    def answered_nothing(self) -> bool:
        return not self._got_bytes

    def close(self) -> None:
        self.closed = True
        self._stop_timer()
        if self.transport is not None:
            self.transport.close()

    def _stop_timer(self) -> None:
        self._deadlines.unwatch(self)


class _Destination:
    """The connections to one (scheme, host, port, TLS context): idle ones and a cap on open ones.

    The cap is a count and a queue of waiters, not an `asyncio.Semaphore` under `asyncio.timeout_at`:
    with every connection busy (one subscriber host, many Triggers) each delivery waited in both, and
    their context managers and the timeout's rescheduling were 5-7 % of the dispatcher's CPU
    (docs/performance.md). A waiter here is a future and one loop timer for its deadline. FIFO, as the
    semaphore was."""

    def __init__(self, limit: int) -> None:
        self.idle: deque[_Connection] = deque()
        self.free = limit
        """Requests that may start now without waiting."""
        self.waiting: deque[asyncio.Future[None]] = deque()
        self.users = 0
        """Requests to it under way or waiting for a slot: while any is, it is never forgotten."""

    async def take(self, deadline: float, deadlines: _Deadlines) -> None:
        """Wait for a slot until `deadline` (TimeoutError past it); call only when none is free."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiting.append(waiter)
        deadlines.watch(waiter, deadline)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self.release()  # handed a slot as it was cancelled: the next waiter gets it
            raise
        finally:
            deadlines.unwatch(waiter)

    def release(self) -> None:
        """A request is done: its slot goes to the longest waiter still waiting, or back to `free`."""
        waiting = self.waiting
        while waiting:
            waiter = waiting.popleft()
            if not waiter.done():  # not timed out, not cancelled
                waiter.set_result(None)
                return
        self.free += 1


def _time_out(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class Http1Pool:
    """Keep-alive connections per destination; `post` is one attempt."""

    def __init__(self, *, per_destination: int) -> None:
        self._limit = per_destination
        self._destinations: dict[tuple[str, int, ssl.SSLContext | None], _Destination] = {}
        self._default_tls: ssl.SSLContext | None = None
        self._closed = False
        self._next_sweep = 0.0
        self._deadlines = _Deadlines()
        self._loop: asyncio.AbstractEventLoop | None = None
        """The loop of the first attempt, kept: on Python 3.11 every `asyncio.get_running_loop()` makes a
        getpid() system call (its fork check; 0.3 us in a tight loop), and py-spy --native put getpid at
        2.7 % of a dispatcher's samples at 1,000 ev/s, most of it the two calls a delivery made here. A
        pool is used from one loop only: its connections are that loop's transports."""

    async def post(self, url: str, headers: dict[str, str], body: bytes, *, timeout_s: float,
                   max_body: int, ssl_context: ssl.SSLContext | None = None, lines: bytes = b"") -> Answer:
        """One POST and its answer; RequestError (or TimeoutError) when no answer came. `lines` are header
        lines made (and checked) by `header_lines` before, sent ahead of `headers`."""
        target = _target(url)
        request = b"".join((target.head, lines, _header_block(headers, len(body)), body))
        context = None
        if target.tls:
            context = ssl_context or self._default_context()
        key = (target.host, target.port, context)
        destination = self._destinations.get(key)
        if destination is None:
            destination = self._destinations[key] = _Destination(self._limit)
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        destination.users += 1
        try:
            if destination.free > 0:
                destination.free -= 1
            else:
                # Every connection busy: the wait counts against the attempt.
                await destination.take(deadline, self._deadlines)
            try:
                # The attempt's exchange, inline: each coroutine frame between a delivery and its socket
                # costs a few us a delivery to enter, suspend and resume (docs/performance.md).
                for fresh in (False, True):
                    connection = None if fresh else self._idle(destination, max_body)
                    if connection is None:
                        async with asyncio.timeout_at(deadline):  # connecting may wait on the network
                            connection = await self._open(target, context, max_body)
                    try:
                        answer = await connection.send(request, deadline)
                    except RequestError:
                        if fresh or not (connection.used and connection.answered_nothing):
                            raise
                        continue  # a keep-alive connection the server closed as we wrote: once more, on a new one
                    except BaseException:
                        connection.close()  # cancelled or timed out mid-answer: this connection is spent
                        raise
                    if not connection.closed and not self._closed:
                        connection.idle_since = now = time.monotonic()
                        destination.idle.append(connection)
                        if now >= self._next_sweep:
                            self._sweep(now)
                    return answer
                raise AssertionError("unreachable")  # pragma: no cover
            finally:
                destination.release()
        finally:
            destination.users -= 1

    @staticmethod
    def _idle(destination: _Destination, max_body: int) -> _Connection | None:
        while destination.idle:
            connection = destination.idle.pop()  # the most recently used: the least likely to be timed out
            if not connection.closed:
                connection.max_body = max_body
                return connection
        return None

    def _sweep(self, now: float) -> None:
        """Close the connections idle for more than IDLE_S, and forget destinations left with none."""
        self._next_sweep = now + IDLE_S / 3
        for key, destination in list(self._destinations.items()):
            while destination.idle and (destination.idle[0].closed or now - destination.idle[0].idle_since > IDLE_S):
                destination.idle.popleft().close()
            if not destination.idle and not destination.users:
                del self._destinations[key]

    async def _open(self, target: _Target, context: ssl.SSLContext | None, max_body: int) -> _Connection:
        if self._closed:
            raise RequestError("the client is closed")
        loop = asyncio.get_running_loop()
        try:
            _, connection = await loop.create_connection(
                lambda: _Connection(max_body, self._deadlines, loop), target.host, target.port, ssl=context,
                server_hostname=target.host if context is not None else None)
        except (OSError, ssl.SSLError) as exc:
            raise RequestError(str(exc) or type(exc).__name__) from None
        return connection

    def _default_context(self) -> ssl.SSLContext:
        if self._default_tls is None:
            self._default_tls = ssl.create_default_context()
        return self._default_tls

    def close(self) -> None:
        self._closed = True
        for destination in self._destinations.values():
            while destination.idle:
                destination.idle.pop().close()
        self._destinations.clear()
