"""Transport headers that travel with an event across hops, as Knative's dispatcher passes them."""

from __future__ import annotations

from collections.abc import Iterable

_EXACT = frozenset({"x-request-id", "traceparent", "tracestate"})
_PREFIXES = ("knative-", "x-b3-")


def is_pass_through(name: str) -> bool:
    lower = name.lower()
    return lower in _EXACT or lower.startswith(_PREFIXES)


def pass_through(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers if is_pass_through(name)}
