"""One HTTP attempt to a subscriber, reply URL or dead-letter sink, over the process's pooled connections.

Redirects are never followed: a 3xx answer is the attempt's status, like any other failure.

Plain-http destinations go through core/delivery/http1.py (httptools on asyncio protocols), which costs
about half of aiohttp's client CPU per delivery (docs/performance.md, "Per-delivery CPU"); https ones and
anything that client does not take (user info in the URL) go through aiohttp's client as before. Both
pools belong to the session `pooled_session` makes: closing the session closes both.
"""

from __future__ import annotations

import asyncio
import logging
import ssl as tls
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import aiohttp

from core import tracing
from core.delivery.http1 import Http1Pool, RequestError, Unsupported, header_lines
from core.events import STRUCTURED_CONTENT_TYPE, Event, to_binary, to_structured

_NO_CONTENT_TYPE = ("Content-Type",)
log = logging.getLogger("nerve.delivery")


@dataclass(slots=True)
class Attempt:
    """What one attempt got back; `status` is None when no HTTP answer came (refused, reset, timeout).

    Not frozen, though nothing changes one: a frozen dataclass's __init__ sets each field through
    object.__setattr__ (0.75 us against 0.15 us here), and every delivery makes one."""

    status: int | None
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str | None = None


def sanitize_url(url: str) -> str:
    """A destination whose scheme is not http(s) becomes http://<host>/, as Knative's dispatcher does."""
    parts = urlsplit(url)
    if parts.scheme in ("http", "https"):
        return url
    return f"http://{parts.netloc or parts.path}/"


def pooled_session(*, per_destination: int) -> aiohttp.ClientSession:
    """The process's HTTP client: connections are capped per destination (host, port, scheme), not in
    one shared pool, so a slow subscriber holding all its connections never delays another destination's
    deliveries. The total is bounded by the in-flight windows (Triggers x --max-inflight)."""
    connector = _Connector(limit=0, limit_per_host=per_destination)
    return aiohttp.ClientSession(connector=connector, auto_decompress=False)


class _Connector(aiohttp.TCPConnector):
    """aiohttp's connector carrying the http1 pool beside its own, so that closing the session (what every
    owner of a `pooled_session` does) closes both, and a Sender finds the pool from the session alone."""

    def __init__(self, *, limit: int, limit_per_host: int) -> None:
        super().__init__(limit=limit, limit_per_host=limit_per_host)
        self.http1 = Http1Pool(per_destination=limit_per_host)

    async def close(self, *, abort_ssl: bool = False) -> None:
        self.http1.close()
        await super().close(abort_ssl=abort_ssl)


class Sender:
    def __init__(self, session: aiohttp.ClientSession, *, max_response_bytes: int) -> None:
        self._session = session
        self._max = max_response_bytes
        connector = session.connector
        # A session not made by pooled_session (a caller's own) is used for every destination.
        self._http1 = connector.http1 if isinstance(connector, _Connector) else None

    async def send(
        self, url: str, event: Event, *, structured: bool, headers: dict[str, str], timeout_s: float,
        ssl: tls.SSLContext | None = None,
    ) -> Attempt:
        """`ssl` verifies an https `url` (the target's CACerts, core/tls.py); None: the system trust store."""
        if not structured and not tracing.ENABLED and self._http1 is not None and url.startswith("http://"):
            # A delivery's common path, with no coroutine of its own between here and the pool (each
            # frame costs a few us a delivery, docs/performance.md): what `_via_http1` does.
            lines = _binary_lines(event)
            if lines is not None:
                try:
                    answer = await self._http1.post(url, headers, event.data or b"", timeout_s=timeout_s,
                                                    max_body=self._max, lines=lines)
                except Unsupported:
                    pass  # aiohttp's client sends it, below
                except (TimeoutError, RequestError, OSError) as exc:
                    return _no_answer(exc)
                else:
                    return Attempt(answer.status, answer.body, answer.headers, answer.content_type)
        if structured:
            body = to_structured(event)
            request_headers = {"Content-Type": STRUCTURED_CONTENT_TYPE}
        else:
            request_headers, body = to_binary(event)
        request_headers.update(event.headers)
        request_headers.update(headers)
        # aiohttp labels a bytes body `application/octet-stream` unless told not to; an event without
        # `datacontenttype` must arrive without a Content-Type (the next hop would store the invented one).
        skip = () if "Content-Type" in request_headers else _NO_CONTENT_TYPE
        if not tracing.ENABLED:
            return await self._post(url, body, request_headers, skip, timeout_s, ssl)
        span = tracing.start_send(url)  # a child of the delivery's span; the destination continues it
        request_headers.update(tracing.headers_of(span))
        attempt = await self._post(url, body, request_headers, skip, timeout_s, ssl)
        tracing.end_send(span, attempt.status, attempt.body if attempt.status is None else b"")
        return attempt

    async def _post(self, url: str, body: bytes, request_headers: dict[str, str], skip: tuple[str, ...],
                    timeout_s: float, context: tls.SSLContext | None = None) -> Attempt:
        url = sanitize_url(url)
        attempt = await self._via_http1(url, body, request_headers, timeout_s)
        if attempt is not None:
            return attempt
        try:
            async with self._session.post(
                url, data=body, headers=request_headers, skip_auto_headers=skip,
                timeout=aiohttp.ClientTimeout(total=timeout_s), ssl=context if context is not None else True,
                # Never follow a redirect: re-POSTing the producer's event to wherever a subscriber points
                # would let anyone who can publish reach any address the dispatcher can (the control API
                # included). Knative's dispatcher does not follow either; a 3xx is a failed attempt that
                # is not retried (core/delivery/retry.py), so it goes to the dead-letter sink.
                allow_redirects=False,
            ) as response:
                payload = await response.content.read(self._max)
                return Attempt(
                    response.status, payload, dict(response.headers),
                    response.headers.get("Content-Type"),
                )
        except aiohttp.ClientConnectorCertificateError as exc:
            # The attempt fails like a refused connection (retried, then dead-lettered); the log says why.
            reason = f"TLS certificate of {exc.host}:{exc.port} not verified: {exc.certificate_error}"
            log.warning("%s: %s (verified against %s)", url, reason,
                        "the destination's CACerts and the system trust store" if context is not None
                        else "the system trust store")
            return Attempt(None, f"dispatch error: {reason}".encode())
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            return _no_answer(exc)

    async def _via_http1(self, url: str, body: bytes, request_headers: dict[str, str],
                         timeout_s: float) -> Attempt | None:
        """The attempt through the HTTP/1.1 client (core/delivery/http1.py); None when it does not take
        `url` as it is (no pool, not http://, or a URL it would have to percent-encode first), found before
        any I/O: then aiohttp's client sends it."""
        if self._http1 is None or not url.startswith("http://"):
            return None
        try:
            answer = await self._http1.post(url, request_headers, body, timeout_s=timeout_s, max_body=self._max)
        except Unsupported:
            return None
        except (TimeoutError, RequestError, OSError) as exc:
            return _no_answer(exc)
        return Attempt(answer.status, answer.body, answer.headers, answer.content_type)


def _binary_lines(event: Event) -> bytes | None:
    """The event's binary-mode header lines (`ce-*` and Content-Type from `to_binary`, then its pass-through
    headers), made once for every Trigger and every attempt that sends it. The per-delivery headers follow
    them on the wire, as they followed in the dict before: none of theirs (Prefer, Kn-Namespace,
    Authorization) is a `ce-`, Content-Type or pass-through name, so the bytes are the same. None when a
    header cannot be sent: the general path says why in its Attempt."""
    lines = event.binary_lines
    if lines is None:
        headers, _ = to_binary(event)
        headers.update(event.headers)
        try:
            lines = event.binary_lines = header_lines(headers)
        except RequestError:
            return None
    return lines


def _no_answer(exc: BaseException) -> Attempt:
    reason = "timeout" if isinstance(exc, asyncio.TimeoutError) else str(exc) or type(exc).__name__
    return Attempt(None, f"dispatch error: {reason}".encode())
