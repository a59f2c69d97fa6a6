"""The `all` dialect, and the top-level `filters` list, which Knative ANDs the same way.

FAIL as soon as one nested filter fails; otherwise PASS if at least one passed, NO_FILTER if none
restricted anything.
"""

from __future__ import annotations

from collections.abc import Sequence

from core.filters.base import Attributes, Filter, Result


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
