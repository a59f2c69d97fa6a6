"""The request and answer a handler of Nerve's own HTTP/1.1 server (core/http_server.py) sees: no server type
in them, so the ingress's handler depends on this seam only, and a test can hand it any object that fits.

A request is what was parsed: its method, decoded path, header names as the client sent them (looked up
case-insensitively), whether it came over TLS, its declared Content-Length, and `read()` for the body,
which raises BodyTooLarge or BodyBroken; the handler words those answers itself, as status codes are
mapped only at the edge (core/errors.py). An answer is a status, headers, body bytes and whether the
connection must close after it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol


class HttpRequest(Protocol):
    @property
    def method(self) -> str: ...

    @property
    def path(self) -> str:
        """Percent-decoded, without the query string."""
        ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    @property
    def secure(self) -> bool:
        """It came over the https listener."""
        ...

    @property
    def content_length(self) -> int | None: ...

    async def read(self) -> bytes:
        """The whole body as it came (no Content-Encoding decoded); BodyTooLarge past the server's limit,
        BodyBroken when it cannot be read to its end (bad chunked framing, the connection lost, too slow)."""
        ...


class BodyTooLarge(Exception):
    """The body grew past the server's `max_body` before it was complete (a chunked body, or a short
    Content-Length that was not checked): the rest is not read and the connection closes after the answer."""


class BodyBroken(Exception):
    """The body cannot be read to its end; the message says why. The connection closes after the answer."""


class Response:
    """One answer. `close` asks for `Connection: close` and the connection's end after it (a body the
    request could not be read to its end leaves the connection unusable)."""

    __slots__ = ("body", "close", "headers", "status")

    def __init__(self, status: int, body: bytes = b"", *, headers: dict[str, str] | None = None,
                 content_type: str | None = None, close: bool = False) -> None:
        self.status = status
        self.body = body
        self.headers = headers if headers is not None else {}
        if content_type is not None:
            self.headers["Content-Type"] = content_type
        self.close = close


Handler = Callable[[HttpRequest], Awaitable[Response]]
Check = Callable[[HttpRequest], Response | None]
"""Run before the handler (never before the health routes): an answer refuses the request."""
