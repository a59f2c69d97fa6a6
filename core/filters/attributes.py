"""The legacy `spec.filter.attributes` filter: exact, case-sensitive, every key must match.

Knative's rules (knative-spec.md §3.3, §11 items 12-13): the standard attributes (specversion, type,
source, subject, id, time, dataschema/schemaurl, datacontenttype, datamediatype, datacontentencoding)
always exist for this filter, as "" when unset; any other key must be an extension the event has. A
value of "" means "present and non-empty". Values compare by their CloudEvents string form (see
base.py for why), so an extension sent as 5 (structured) and "5" (binary) match alike.
"""

from __future__ import annotations

from collections.abc import Mapping

from core.filters.base import Attributes, Result, attribute_text

STANDARD = frozenset({"specversion", "type", "source", "subject", "id", "time", "dataschema", "schemaurl",
                      "datacontenttype", "datamediatype", "datacontentencoding"})


class AttributesFilter:
    __slots__ = ("_items",)

    def __init__(self, attributes: Mapping[str, str]) -> None:
        self._items = tuple(attributes.items())

    def __call__(self, attributes: Attributes) -> Result:
        if not self._items:
            return Result.NO_FILTER
        for name, wanted in self._items:
            value = attribute_text(attributes, name)
            if value is None:
                if name not in STANDARD:
                    return Result.FAIL
                value = ""
            if (value != wanted) if wanted else (value == ""):  # "" = present and non-empty
                return Result.FAIL
        return Result.PASS
