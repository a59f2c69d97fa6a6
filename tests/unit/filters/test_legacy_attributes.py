"""The legacy `spec.filter.attributes` filter (knative-spec.md §3.3 and §11 items 12-13)."""

from __future__ import annotations

from typing import Any

import pytest

from core.filters import compile_trigger_filter

EVENT: dict[str, Any] = {"specversion": "1.0", "id": "1", "source": "https://example.com/src",
                         "type": "com.example.created", "myext": "value", "count": 5, "flag": True, "empty": ""}


@pytest.mark.parametrize(("attributes", "expected"), [
    ({}, True),
    ({"type": "com.example.created"}, True),
    ({"type": "com.example.Created"}, False),  # case-sensitive
    ({"type": "com.example"}, False),  # exact, not prefix
    ({"type": ""}, True),  # "" = present and non-empty
    ({"subject": ""}, False),  # an unset standard attribute is present but empty
    ({"subject": "x"}, False),
    ({"myext": "value", "source": "https://example.com/src"}, True),
    ({"myext": "value", "source": "other"}, False),  # every key must match
    ({"missing": ""}, False),
    ({"missing": "x"}, False),
    ({"empty": ""}, False),
    ({"count": "5"}, True),  # compared by string form, see core/filters/base.py
    ({"flag": "true"}, True),
    ({"flag": "True"}, False),
])
def test_legacy_attribute_filter(attributes: dict[str, str], expected: bool) -> None:
    assert compile_trigger_filter(attributes, None).matches(EVENT) is expected


def test_many_triggers_with_wildcards() -> None:
    # ManyTriggers: "" on type/source is a wildcard among present values; on an extension it means "exists".
    with_ext = {**EVENT, "extname1": "extval1"}
    assert compile_trigger_filter({"type": "", "source": ""}, None).matches(EVENT)
    assert compile_trigger_filter({"type": "", "extname1": ""}, None).matches(with_ext)
    assert not compile_trigger_filter({"type": "", "extname1": ""}, None).matches(EVENT)
