"""Transport headers that travel with an event across hops, as Knative's dispatcher passes them."""

from __future__ import annotations

import re
from collections.abc import Iterable

from core.errors import InvalidEvent
from core.kept import Kept

_EXACT = frozenset({"x-request-id", "traceparent", "tracestate"})
_PREFIXES = ("knative-", "x-b3-")
# aiohttp decodes header bytes as UTF-8 with surrogateescape: a lone surrogate is a raw non-UTF-8 byte.
_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")


_PASSES: Kept[bool] = Kept(4096, 64)
"""Header name as sent -> whether it passes through: worked out once per name, as core.events does for
`ce-` names (a producer sends the same names request after request)."""


def is_pass_through(name: str) -> bool:
    passes = _PASSES.get(name)
    if passes is None:
        lower = name.lower()
        passes = lower in _EXACT or lower.startswith(_PREFIXES)
        _PASSES.keep(name, passes)
    return passes


def pass_through(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The headers to carry along, by lower-case name; InvalidEvent naming one that is not UTF-8 text.

    Such a value could be stored by no backend and sent to no subscriber, so it is refused at the door
    rather than accepted and lost later.
    """
    passed: dict[str, str] = {}
    for name, value in headers:
        if not is_pass_through(name):
            continue
        if not value.isascii() and _ESCAPED_BYTE.search(value) is not None:
            raise InvalidEvent(f"header {name} carries raw bytes that are not UTF-8", field=name.lower())
        passed[name.lower()] = value
    return passed


def media_type(content_type: str | None) -> str:
    """The media type of a Content-Type value, lower-cased, without parameters ("" when there is none).

    Read from the raw header on purpose: aiohttp's `request.content_type` hands the value to Python's email
    parser, which raises IndexError on some malformed parameters (`x;P*`), and a producer's bad header must
    be a 4xx, not a 500."""
    return (content_type or "").split(";", 1)[0].strip().lower()

