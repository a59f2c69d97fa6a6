"""The `exact` dialect: every listed attribute exists and its string form equals the value."""

from __future__ import annotations

from collections.abc import Mapping

from core.filters.base import Attributes, Result, attribute_text


class ExactFilter:
    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, str]) -> None:
        self._items = tuple(items.items())

    def __call__(self, attributes: Attributes) -> Result:
        for name, wanted in self._items:
            if attribute_text(attributes, name) != wanted:  # None (missing) never equals a str
                return Result.FAIL
        return Result.PASS
