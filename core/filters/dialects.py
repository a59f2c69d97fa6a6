"""The CloudEvents Subscriptions API dialects Knative's `spec.filters` takes.

exact / prefix / suffix: every listed attribute must exist and equal / start with / end with the
value (string forms). A map with an empty key or value cannot be built into a restriction and, as in
Knative, answers NO_FILTER. all: FAIL if any FAIL, else PASS if any PASS. any: PASS if any PASS, else
FAIL if any FAIL. not: swaps PASS and FAIL. cesql: PASS only for a Boolean true without errors.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from core.filters.base import Attributes, Filter, Result, attribute_text
from core.filters.cesql import Expression


class StringFilter:
    """exact, prefix and suffix share everything but the comparison."""

    __slots__ = ("_compare", "_items")

    def __init__(self, items: Mapping[str, str], compare: Callable[[str, str], bool]) -> None:
        self._items = tuple(items.items())
        self._compare = compare

    def __call__(self, attributes: Attributes) -> Result:
        for name, wanted in self._items:
            value = attribute_text(attributes, name)
            if value is None or not self._compare(value, wanted):
                return Result.FAIL
        return Result.PASS


def exact(items: Mapping[str, str]) -> Filter:
    return _string_filter(items, str.__eq__)


def prefix(items: Mapping[str, str]) -> Filter:
    return _string_filter(items, str.startswith)


def suffix(items: Mapping[str, str]) -> Filter:
    return _string_filter(items, str.endswith)


def _string_filter(items: Mapping[str, str], compare: Callable[[str, str], bool]) -> Filter:
    if not items or any(not k or not v for k, v in items.items()):
        return no_filter
    return StringFilter(items, compare)


def no_filter(_: Attributes) -> Result:
    return Result.NO_FILTER


class AllFilter:
    __slots__ = ("_filters",)

    def __init__(self, filters: Sequence[Filter]) -> None:
        self._filters = tuple(filters)

    def __call__(self, attributes: Attributes) -> Result:
        result = Result.NO_FILTER
        for f in self._filters:
            r = f(attributes)
            if r is Result.FAIL:
                return r
            if r is Result.PASS:
                result = r
        return result


class AnyFilter:
    __slots__ = ("_filters",)

    def __init__(self, filters: Sequence[Filter]) -> None:
        self._filters = tuple(filters)

    def __call__(self, attributes: Attributes) -> Result:
        result = Result.NO_FILTER
        for f in self._filters:
            r = f(attributes)
            if r is Result.PASS:
                return r
            if r is Result.FAIL:
                result = r
        return result


class NotFilter:
    __slots__ = ("_filter",)

    def __init__(self, inner: Filter) -> None:
        self._filter = inner

    def __call__(self, attributes: Attributes) -> Result:
        r = self._filter(attributes)
        return Result.FAIL if r is Result.PASS else Result.PASS if r is Result.FAIL else r


class CesqlFilter:
    __slots__ = ("_expression",)

    def __init__(self, expression: Expression) -> None:
        self._expression = expression

    def __call__(self, attributes: Attributes) -> Result:
        return Result.PASS if self._expression.matches(attributes) else Result.FAIL
