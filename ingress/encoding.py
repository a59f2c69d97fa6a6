"""Content-Encoding of a request body, decoded here rather than by aiohttp's parser.

aiohttp decodes gzip and deflate inside its HTTP parser when it may: a deflate body that is not
deflate then fails in the protocol layer, which answers a bare `400 deflate` in plain text before any
handler runs (found by tests/fuzz). The ingress serves with aiohttp's decompression off and decodes
here, so every bad body gets the JSON 400 naming `content-encoding`, and the body limit applies to
what comes out (a small compressed body must not expand into gigabytes).
"""

from __future__ import annotations

import zlib

from core.errors import InvalidEvent, PayloadTooLarge

# zlib's window bits: 16 + 15 reads a gzip member, 15 a zlib stream; raw deflate (-15) is what some
# clients send as "deflate", so it is tried when the zlib header is missing.
_GZIP, _ZLIB, _RAW = 16 + zlib.MAX_WBITS, zlib.MAX_WBITS, -zlib.MAX_WBITS
_SUPPORTED = "gzip, deflate, identity"


def decode_body(body: bytes, encoding: str | None, limit: int) -> bytes:
    """The body as its Content-Encoding says; InvalidEvent naming `content-encoding`, or PayloadTooLarge."""
    name = (encoding or "identity").strip().lower()
    if name in ("", "identity"):
        return body
    if name in ("gzip", "x-gzip"):
        return _inflate(body, _GZIP, name, limit)
    if name == "deflate":
        try:
            return _inflate(body, _ZLIB, name, limit)
        except InvalidEvent:
            return _inflate(body, _RAW, name, limit)
    raise InvalidEvent(f"Content-Encoding {encoding!r} is not supported; use one of {_SUPPORTED}",
                       field="content-encoding")


def _inflate(body: bytes, wbits: int, name: str, limit: int) -> bytes:
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(body, limit + 1)
        complete = inflater.eof
    except zlib.error as exc:
        raise InvalidEvent(f"the body is not valid for its Content-Encoding {name!r}: {exc}",
                           field="content-encoding") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise PayloadTooLarge(f"the body decodes (Content-Encoding {name!r}) to more than the {limit}-byte limit")
    if not complete:
        raise InvalidEvent(f"the body is not valid for its Content-Encoding {name!r}: it ends before its end "
                           "marker", field="content-encoding")
    return out
