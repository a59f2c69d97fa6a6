"""Each filter dialect and the legacy attribute filter, as a Trigger author relies on them."""

from __future__ import annotations

from typing import Any

import pytest

from core.filters import compile_trigger_filter, validate_trigger_filters

EVENT = {"specversion": "1.0", "id": "1", "source": "https://example.com/src", "type": "com.example.created",
         "myext": "value", "count": 5, "flag": True}


def matches(filters: list[dict[str, Any]] | None, attributes: dict[str, str] | None = None,
            event: dict[str, Any] | None = None) -> bool:
    return compile_trigger_filter(attributes, filters).matches(event or EVENT)


def test_no_filter_at_all_matches_everything() -> None:
    assert matches(None) and matches([], {})


@pytest.mark.parametrize(("attributes", "expected"), [
    ({"type": "com.example.created"}, True),
    ({"type": "com.example.Created"}, False),  # case-sensitive
    ({"type": ""}, True),  # "" = present and non-empty
    ({"subject": ""}, False),  # a standard attribute unset counts as "" and "" needs non-empty
    ({"myext": "value", "source": "https://example.com/src"}, True),
    ({"myext": "value", "source": "other"}, False),
    ({"missing": ""}, False),
    ({"count": "5"}, True),  # compared by string form
])
def test_legacy_attribute_filter(attributes: dict[str, str], expected: bool) -> None:
    assert matches(None, attributes) is expected


@pytest.mark.parametrize(("dialect", "expected"), [
    ({"exact": {"type": "com.example.created"}}, True),
    ({"exact": {"type": "com.example"}}, False),
    ({"prefix": {"type": "com.example."}}, True),
    ({"prefix": {"source": "http://"}}, False),
    ({"suffix": {"type": ".created"}}, True),
    ({"suffix": {"type": ".deleted"}}, False),
    ({"exact": {"flag": "true", "count": "5"}}, True),
    ({"exact": {"missing": "x"}}, False),
    ({"prefix": {"missing": "x"}}, False),
    ({"cesql": "type LIKE 'com.%' AND count > 3"}, True),
    ({"cesql": "missing = 'x'"}, False),  # an evaluation error never matches
    ({"cesql": "count + 1"}, False),  # not a Boolean
    ({"all": [{"prefix": {"type": "com."}}, {"suffix": {"type": "created"}}]}, True),
    ({"all": [{"prefix": {"type": "com."}}, {"suffix": {"type": "deleted"}}]}, False),
    ({"any": [{"exact": {"type": "x"}}, {"not": {"cesql": "type LIKE '%deleted'"}}]}, True),
    ({"any": [{"exact": {"type": "x"}}, {"exact": {"type": "y"}}]}, False),
    ({"not": {"exact": {"type": "com.example.created"}}}, False),
    ({"exact": {"type": ""}}, True),  # an empty value restricts nothing, as in Knative
    ({"not": {"exact": {"type": ""}}}, True),
])
def test_dialects(dialect: dict[str, Any], expected: bool) -> None:
    assert matches([dialect]) is expected


def test_filters_override_attributes_and_a_list_is_anded() -> None:
    assert matches([{"exact": {"type": "com.example.created"}}], {"type": "other"})
    assert not matches([{"prefix": {"type": "com."}}, {"exact": {"source": "nope"}}])


@pytest.mark.parametrize(("filters", "attributes", "path", "reason"), [
    ([{"exact": {"type": "a"}, "suffix": {"type": "b"}}], None, "spec.filters[0]", "multiple dialects found"),
    ([{"exact": {"Type": "a"}}], None, "spec.filters[0].exact.Type", "invalid key"),
    ([{"any": [{"cesql": "type = "}]}], None, "spec.filters[0].any[0].cesql", "parse error at line 1"),
    ([{"all": []}], None, "spec.filters[0].all", "non-empty list"),
    ([{"cesql": "NOPE(type)"}], None, "spec.filters[0].cesql", "unknown function NOPE"),
    ([{"regex": "x"}], None, "spec.filters[0].regex", "unknown dialect"),
    ([{}], None, "spec.filters[0]", "no dialect set"),
    ("nope", None, "spec.filters", "must be a list"),
    (None, {"s pace": "x"}, "spec.filter.attributes.s pace", "invalid key"),
    (None, {"type": 5}, "spec.filter.attributes.type", "must be a string"),
])
def test_validation_names_the_path_and_the_reason(filters: Any, attributes: Any, path: str, reason: str) -> None:
    [error] = validate_trigger_filters(attributes, filters)
    assert error.path == path
    assert reason in error.reason


@pytest.mark.parametrize("key", ["type", "aaa", "c1d2e3", "abcdefghijklmnopqrst", "id", "datacontenttype"])
def test_knatives_valid_filter_keys(key: str) -> None:
    assert validate_trigger_filters({key: "x"}, [{"exact": {key: "x"}}]) == []


@pytest.mark.parametrize("key", ["SOURCE", "Source", "s_pace_s", "s-pace-s", "123", "🎉"])
def test_knatives_invalid_filter_keys(key: str) -> None:
    assert validate_trigger_filters({key: "x"}, None)[0].path == f"spec.filter.attributes.{key}"
