"""Which of many Triggers can match an event, without asking every one: an index on exact attributes.

A Broker's topic is read once for all its Triggers (dispatcher/fanout.py), so each event would be put
to every Trigger's filter. Most Triggers say exactly what they want (`filter.attributes: {type: ...}`,
`filters: [{exact: {type: ...}}]`): such a Trigger can only match an event whose attribute has that
value. `exact_requirements` reads those values off the Trigger's spec; `FilterIndex` files each Trigger
under one of them (type first, then source, then any other) in a dict, so an event is looked up once per
indexed attribute name and only the Triggers filed under its values, plus those with no exact value to
file under (prefix, suffix, CESQL, any, not, no filter), become candidates. A candidate still runs its
whole filter: the index only rules Triggers out, it never lets one in.

Why a requirement is safe to index on (the same rules as the filters, core/filters/base.py):
- legacy `filter.attributes`: every key must equal its value; a non-empty value never equals a missing
  attribute (a missing standard attribute compares as "", a missing extension fails), so an event whose
  attribute text differs cannot match. A value "" (present and non-empty) is not an exact value.
- `filters`: the top-level list is ANDed, and so is `all`; an `exact` object whose keys and values are
  all non-empty answers PASS or FAIL, never NO_FILTER, so its FAIL fails the AND. `any`, `not` and an
  `exact` with an empty key or value (NO_FILTER) give nothing to index on.
- values compare by their CloudEvents string form (`attribute_text`), as the filters do.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Generic, TypeVar

from core.filters.base import Attributes, attribute_text

T = TypeVar("T")

PREFERRED = ("type", "source", "subject")
"""The attribute a Trigger is filed under when it names several: the ones most events differ in."""

_DIALECT_ORDER = ("exact", "prefix", "suffix", "all", "any", "not", "cesql")
"""In one filter object the first non-empty dialect counts (core/filters/build.py)."""


def _first_dialect(spec: Mapping[str, Any]) -> str | None:
    for name in _DIALECT_ORDER:
        value = spec.get(name)
        if (value is not None) if name == "not" else bool(value):
            return name
    return None


def _from_filters(filters: Sequence[Mapping[str, Any]], found: dict[str, str]) -> None:
    for spec in filters:
        dialect = _first_dialect(spec)
        if dialect == "exact":
            items = spec["exact"]
            if isinstance(items, Mapping) and all(key and value for key, value in items.items()):
                for key, value in items.items():
                    found.setdefault(str(key), str(value))
        elif dialect == "all" and isinstance(spec["all"], Sequence):
            _from_filters(spec["all"], found)


def exact_requirements(
    filter_attributes: Mapping[str, str] | None, filters: Sequence[Mapping[str, Any]] | None
) -> dict[str, str]:
    """Attribute values (string form) an event must have for this Trigger's filter to match; {} when the
    spec requires no exact value. Reads the spec as `compile_trigger_filter` does: `filters` when non-empty,
    else the legacy attributes."""
    found: dict[str, str] = {}
    if filters:
        _from_filters(filters, found)
    else:
        for key, value in (filter_attributes or {}).items():
            if value:
                found.setdefault(key, value)
    return found


def _index_key(requirements: Mapping[str, str]) -> tuple[str, str] | None:
    if not requirements:
        return None
    for name in PREFERRED:
        if name in requirements:
            return name, requirements[name]
    name = min(requirements)
    return name, requirements[name]


class FilterIndex(Generic[T]):
    """Entries filed by one exact requirement each; `candidates(attributes)` is every entry that may match.

    Built whole from (entry, requirements) pairs: a contract change builds a new one from what its
    Triggers already compiled (a dict insert per Trigger), it never recompiles a filter.
    """

    __slots__ = ("_always", "_by_name", "size")

    def __init__(self, entries: Iterable[tuple[T, Mapping[str, str]]]) -> None:
        self._always: list[T] = []
        self._by_name: dict[str, dict[str, list[T]]] = {}
        self.size = 0
        for entry, requirements in entries:
            self.size += 1
            key = _index_key(requirements)
            if key is None:
                self._always.append(entry)
            else:
                self._by_name.setdefault(key[0], {}).setdefault(key[1], []).append(entry)

    def candidates(self, attributes: Attributes) -> list[T]:
        """Entries with no exact requirement, then those filed under one of the event's values."""
        found = list(self._always)
        for name, table in self._by_name.items():
            value = attribute_text(attributes, name)
            if value is not None:
                filed = table.get(value)
                if filed:
                    found.extend(filed)
        return found
