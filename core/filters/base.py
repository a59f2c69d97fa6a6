"""The filter seam: a compiled filter answers PASS, FAIL or NO_FILTER for an event's attributes.

NO_FILTER is Knative's third answer (eventfilter.NoFilter): a dialect that restricts nothing (an
empty map, a map with an empty key or value, an empty `all`/`any`) neither passes nor fails, so `not`
of it is still NO_FILTER and `any` ignores it. A Trigger delivers unless its filter answers FAIL.

Values compare by their CloudEvents string form (`core.events.attr_to_string`), in the legacy
attribute filter as in exact/prefix/suffix: an extension that arrived as the Integer 5 (structured
mode) and one that arrived as the text "5" (binary mode, where every extension is a string) must
route alike, and a Boolean compares as "true"/"false". Knative's legacy filter compares a Go string
with the stored value and so never matches a non-string extension; Nerve deliberately does not copy
that accident of representation.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Protocol

from core.events import AttrValue, attr_to_string

Attributes = Mapping[str, AttrValue]


class Result(Enum):
    PASS = "pass"
    FAIL = "fail"
    NO_FILTER = "no_filter"


class Filter(Protocol):
    """One compiled dialect object, nested or not."""

    def __call__(self, attributes: Attributes, /) -> Result: ...


class EventFilter(Protocol):
    """What the dispatcher holds per Trigger generation: compiled once, asked once per event."""

    def matches(self, attributes: Attributes) -> bool: ...


def attribute_text(attributes: Attributes, name: str) -> str | None:
    """An attribute in its CloudEvents string form, or None when the event lacks it."""
    value = attributes.get(name)
    # Most values are already text; skip the call for them, this runs per event per Trigger.
    return value if value is None or type(value) is str else attr_to_string(value)


def no_filter(_: Attributes) -> Result:
    return Result.NO_FILTER
