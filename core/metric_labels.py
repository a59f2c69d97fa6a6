"""Label values that keep /metrics small and always renderable, whatever producers send.

Every distinct label value is a Prometheus series held for the life of the process, so values that come
from producers (an event's `type`) are capped per owner (a Broker, a Trigger): the first `limit`
distinct values are kept, later ones fold into `OTHER`, as Knative labels only what it knows. A value
must also be writable as UTF-8 text: the exposition encodes every label as UTF-8, and one lone surrogate
in one label would make /metrics fail for good, so such characters are escaped here, before any series
exists.
"""

from __future__ import annotations

from typing import Final

OTHER: Final = "other"
"""The label value every event type past an owner's cap is counted under."""
DEFAULT_LIMIT: Final = 100
MAX_LENGTH: Final = 256
"""Longer values fold into OTHER too: a 1 MB `ce-type` must not become a 1 MB label."""


def safe_label(value: str) -> str:
    """`value` as UTF-8-encodable text: lone surrogates become their `\\udcXX` escapes."""
    if value.isascii():
        return value
    return value.encode("utf-8", "backslashreplace").decode("utf-8")


class LabelCap:
    """The label values one owner may use: at most `limit` distinct ones, the rest counted as OTHER."""

    __slots__ = ("_limit", "_seen")

    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        self._limit = limit
        self._seen: dict[str, str] = {}

    def __call__(self, value: str) -> str:
        label = self._seen.get(value)
        if label is not None:
            return label
        if len(self._seen) >= self._limit or len(value) > MAX_LENGTH:
            return OTHER
        label = self._seen[value] = safe_label(value)
        return label
