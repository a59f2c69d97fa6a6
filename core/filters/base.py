"""The filter seam: a compiled filter answers PASS, FAIL or NO_FILTER for an event's attributes.

NO_FILTER is Knative's third answer: a dialect that cannot restrict anything (an empty map, a value
of "") neither passes nor fails, so `not` of it is still NO_FILTER and `any` ignores it. An event is
delivered unless the Trigger's filter answers FAIL.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Any, Protocol

Attributes = Mapping[str, Any]


class Result(Enum):
    PASS = "pass"
    FAIL = "fail"
    NO_FILTER = "no_filter"


class Filter(Protocol):
    def __call__(self, attributes: Attributes, /) -> Result: ...


class EventFilter(Protocol):
    """What the dispatcher holds per Trigger generation."""

    def matches(self, attributes: Attributes) -> bool: ...


def attribute_text(attributes: Attributes, name: str) -> str | None:
    """An attribute in its CloudEvents string form, or None when the event lacks it."""
    value = attributes.get(name)
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else str(value)
