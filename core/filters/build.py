"""Trigger spec -> one compiled filter, built once per Trigger generation and cached by the caller."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from core.filters.attributes import AttributesFilter
from core.filters.base import Attributes, EventFilter, Filter, Result
from core.filters.cesql import compile_expression
from core.filters.dialects import AllFilter, AnyFilter, CesqlFilter, NotFilter, exact, no_filter, prefix, suffix


class TriggerFilter(EventFilter):
    __slots__ = ("_filter",)

    def __init__(self, root: Filter) -> None:
        self._filter = root

    def matches(self, attributes: Attributes) -> bool:
        return self._filter(attributes) is not Result.FAIL


def build_dialect(spec: Mapping[str, Any]) -> Filter:
    """One `spec.filters[i]` object; assumes it passed validation (exactly one dialect)."""
    if "exact" in spec:
        return exact(spec["exact"] or {})
    if "prefix" in spec:
        return prefix(spec["prefix"] or {})
    if "suffix" in spec:
        return suffix(spec["suffix"] or {})
    if "all" in spec:
        return AllFilter([build_dialect(s) for s in spec["all"] or []])
    if "any" in spec:
        return AnyFilter([build_dialect(s) for s in spec["any"] or []])
    if "not" in spec:
        return NotFilter(build_dialect(spec["not"] or {}))
    if spec.get("cesql"):
        return CesqlFilter(compile_expression(spec["cesql"]))
    return no_filter


def compile_trigger_filter(
    filter_attributes: Mapping[str, str] | None, filters: Sequence[Mapping[str, Any]] | None
) -> EventFilter:
    """`spec.filters` when non-empty (a list is ANDed), else the legacy `spec.filter.attributes`."""
    if filters:
        return TriggerFilter(AllFilter([build_dialect(f) for f in filters]))
    return TriggerFilter(AttributesFilter(filter_attributes or {}))
