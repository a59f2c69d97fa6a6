"""A minimal HTTP/1.1 client over one keep-alive loopback connection that sends header bytes as given.

aiohttp's client refuses to send what the fuzzer must send (non-UTF-8 header bytes, odd methods), so the
fuzzer writes requests itself. Answers are read by Content-Length or chunked framing; any framing
surprise closes the connection and the next request opens a new one.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field


@dataclass
class Request:
    method: str
    path: str
    headers: list[tuple[str, bytes]]
    body: bytes = b""
    tracked: list[str] = field(default_factory=list)
    """Event ids the request carries that the fuzzer expects delivered if the answer is 202."""

    def wire(self, host: str) -> bytes:
        lines = [f"{self.method} {self.path} HTTP/1.1".encode("latin-1", "replace"), f"Host: {host}".encode()]
        lines += [name.encode("latin-1", "replace") + b": " + value for name, value in self.headers]
        if self.method not in ("GET", "HEAD") or self.body:
            lines.append(f"Content-Length: {len(self.body)}".encode())
        return b"\r\n".join(lines) + b"\r\n\r\n" + self.body

    def describe(self, limit: int = 300) -> str:
        body = self.body if len(self.body) <= limit else self.body[:limit] + b"...(%d bytes)" % len(self.body)
        return f"{self.method} {self.path!r} headers={self.headers!r} body={body!r}"


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


class Client:
    def __init__(self, host: str, port: int, timeout: float = 30.0) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            try:
                await self._writer.wait_closed()
            except OSError:
                pass
        self._reader = self._writer = None

    async def send(self, request: Request) -> Response:
        """The answer; status 0 when the server closed the connection without one."""
        reused = self._writer is not None
        try:
            return await asyncio.wait_for(self._send(request), self.timeout)
        except (asyncio.IncompleteReadError, ConnectionError):
            if not reused:
                return Response(0, {}, b"")
        # A kept-alive connection the server had closed meanwhile: once more on a fresh one.
        try:
            return await asyncio.wait_for(self._send(request), self.timeout)
        except (asyncio.IncompleteReadError, ConnectionError):
            return Response(0, {}, b"")

    async def _send(self, request: Request) -> Response:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        assert self._reader is not None
        try:
            self._writer.write(request.wire(f"{self.host}:{self.port}"))
            await self._writer.drain()
            head = await self._reader.readuntil(b"\r\n\r\n")
            status_line, *header_lines = head[:-4].split(b"\r\n")
            status = int(status_line.split(b" ", 2)[1])
            headers: dict[str, str] = {}
            for line in header_lines:
                name, _, value = line.partition(b":")
                headers[name.decode("latin-1").strip().lower()] = value.decode("latin-1").strip()
            body = b""
            if request.method == "HEAD" or status in (204, 304) or 100 <= status < 200:
                pass
            elif headers.get("transfer-encoding", "").lower() == "chunked":
                body = await self._chunked()
            elif "content-length" in headers:
                body = await self._reader.readexactly(int(headers["content-length"]))
            else:
                body = await self._reader.read()
                headers["connection"] = "close"
            if headers.get("connection", "").lower() == "close":
                await self.close()
            return Response(status, headers, body)
        except BaseException:
            await self.close()
            raise

    async def _chunked(self) -> bytes:
        assert self._reader is not None
        parts = []
        while True:
            size = int((await self._reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await self._reader.readuntil(b"\r\n")
                return b"".join(parts)
            parts.append(await self._reader.readexactly(size))
            await self._reader.readexactly(2)
