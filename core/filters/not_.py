"""The `not` dialect: swaps PASS and FAIL; NO_FILTER stays NO_FILTER (not of nothing restricts nothing)."""

from __future__ import annotations

from core.filters.base import Attributes, Filter, Result

_SWAP = {Result.PASS: Result.FAIL, Result.FAIL: Result.PASS, Result.NO_FILTER: Result.NO_FILTER}


class NotFilter:
    __slots__ = ("_filter",)

    def __init__(self, inner: Filter) -> None:
        self._filter = inner

    def __call__(self, attributes: Attributes) -> Result:
        return _SWAP[self._filter(attributes)]
