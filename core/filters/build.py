"""Trigger spec -> one compiled EventFilter, built once per Trigger generation and cached by the caller.

Follows Knative's materialisation (eventfilter/subscriptionsapi/create.go): in one filter object the
first non-empty dialect counts; a dialect that cannot restrict anything (empty map, empty key or
value) becomes NO_FILTER instead of failing. Unlike Knative, a `cesql` that does not parse raises
CesqlParseError rather than being skipped: a skipped filter would deliver every event, and
validation at apply time already refuses such a Trigger.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from core.filters.all_ import AllFilter
from core.filters.any_ import AnyFilter
from core.filters.attributes import AttributesFilter
from core.filters.base import Attributes, EventFilter, Filter, Result, no_filter
from core.filters.cesql import compile_expression
from core.filters.exact import ExactFilter
from core.filters.not_ import NotFilter
from core.filters.prefix import PrefixFilter
from core.filters.sql import CesqlFilter
from core.filters.suffix import SuffixFilter

_STRING_DIALECTS = (("exact", ExactFilter), ("prefix", PrefixFilter), ("suffix", SuffixFilter))


class TriggerFilter:
    __slots__ = ("_filter",)

    def __init__(self, root: Filter) -> None:
        self._filter = root

    def matches(self, attributes: Attributes) -> bool:
        return self._filter(attributes) is not Result.FAIL

    def __repr__(self) -> str:
        return f"TriggerFilter({self._filter!r})"


def build_dialect(spec: Mapping[str, Any]) -> Filter:
    """One `spec.filters[i]` object, assumed validated."""
    for name, cls in _STRING_DIALECTS:
        items = spec.get(name)
        if items:
            if any(not key or not value for key, value in items.items()):
                return no_filter
            return cls(items)
    if spec.get("all"):
        return _all([build_dialect(s) for s in spec["all"]])
    if spec.get("any"):
        return AnyFilter([build_dialect(s) for s in spec["any"]])
    if spec.get("not") is not None:
        return NotFilter(build_dialect(spec["not"]))
    if spec.get("cesql"):
        return CesqlFilter(compile_expression(spec["cesql"]))
    return no_filter


def _all(filters: list[Filter]) -> Filter:
    # One member needs no AND around it; the top-level list is nearly always a single object.
    return filters[0] if len(filters) == 1 else AllFilter(filters)


def compile_trigger_filter(
    filter_attributes: Mapping[str, str] | None, filters: Sequence[Mapping[str, Any]] | None
) -> EventFilter:
    """`spec.filters` when non-empty (a list is ANDed), else the legacy `spec.filter.attributes`.

    Neither given: every event matches. Raises CesqlParseError for a `cesql` that does not parse.
    """
    if filters:
        return TriggerFilter(_all([build_dialect(f) for f in filters]))
    return TriggerFilter(AttributesFilter(filter_attributes or {}))
