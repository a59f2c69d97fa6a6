"""The `exact` dialect: every listed attribute exists and its string form equals the value."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

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


def required_type(attributes: Mapping[str, str], filters: Sequence[Mapping[str, Any]]) -> str | None:
    """The one `type` a Trigger's filter lets through, when its filter says so plainly, else None.

    Plainly (as compile_trigger_filter reads a spec: `filters` when non-empty, else the legacy attributes):
    the legacy `filter.attributes` has a non-empty `type` (each key must equal its value), or an element
    of the ANDed `filters` list is only `{"exact": {...}}` with a non-empty `type` and no empty key
    or value (an empty one makes the `exact` NO_FILTER). Anything else (prefix, any, not, CESQL, nested
    all) gives None: a backend may use the answer to have its server leave out other types
    (channels.base.TypeFilteredBackend), so None only ever costs a wider read, never a missed event."""
    if not filters:
        wanted = attributes.get("type")
        return wanted if isinstance(wanted, str) and wanted else None
    for spec in filters:
        exact = spec.get("exact") if isinstance(spec, Mapping) and list(spec) == ["exact"] else None
        if not isinstance(exact, Mapping) or not all(isinstance(k, str) and k and isinstance(v, str) and v
                                                     for k, v in exact.items()):
            continue
        if "type" in exact:
            return str(exact["type"])
    return None
