"""The `any` dialect: PASS as soon as one nested filter passes; else FAIL if one failed, else NO_FILTER."""

from __future__ import annotations

from collections.abc import Sequence

from core.filters.base import Attributes, Filter, Result


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
