"""What `nerve apply` refuses in a Trigger's filters: the field path and the reason of each problem."""

from __future__ import annotations

from typing import Any

import pytest

from core.filters import compile_trigger_filter, validate_trigger_filters


@pytest.mark.parametrize(("filters", "path", "reason"), [
    ([{"exact": {"type": "a"}, "suffix": {"type": "b"}}], "spec.filters[0]",
     "multiple dialects found, filters can have only one dialect set"),
    ([{"all": [{"exact": {"type": "a"}}], "cesql": "true"}], "spec.filters[0]", "multiple dialects found"),
    ([{"exact": {"Type": "a"}}], "spec.filters[0].exact.Type", "invalid key name"),
    ([{"prefix": {"my-ext": "a"}}], "spec.filters[0].prefix.my-ext", "^[a-z][a-z0-9]*$"),
    ([{"suffix": {"type": 5}}], "spec.filters[0].suffix.type", "must be a string"),
    ([{"exact": ["type"]}], "spec.filters[0].exact", "must be a map"),
    ([{"exact": {"type": "a"}}, {"any": [{"prefix": {"type": "a"}}, {"exact": {"1x": "a"}}]}],
     "spec.filters[1].any[1].exact.1x", "invalid key name"),
    ([{"any": [{"cesql": "type = "}]}], "spec.filters[0].any[0].cesql", "parse error at line 1, column 8"),
    ([{"not": {"cesql": "type LIKE 5"}}], "spec.filters[0].not.cesql", "column 11: unexpected '5'"),
    ([{"all": [{"not": {"exact": {"A": "x"}}}]}], "spec.filters[0].all[0].not.exact.A", "invalid key name"),
    ([{"all": {"exact": {"type": "x"}}}], "spec.filters[0].all", "must be a list"),
    ([{"cesql": "NOPE(type)"}], "spec.filters[0].cesql", "unknown function NOPE with 1 argument(s)"),
    ([{"cesql": "my_ext = 'x'"}], "spec.filters[0].cesql", "invalid attribute name 'my_ext'"),
    ([{"cesql": "'unterminated"}], "spec.filters[0].cesql", "unterminated string literal"),
    ([{"cesql": "   "}], "spec.filters[0].cesql", "the expression is empty"),
    ([{"cesql": 5}], "spec.filters[0].cesql", "must be a CESQL expression"),
    ([{"regex": "x"}], "spec.filters[0].regex", "unknown filter dialect"),
    ([{}], "spec.filters[0]", "no dialect set"),
    (["exact"], "spec.filters[0]", "must be a filter object"),
    ("nope", "spec.filters", "must be a list"),
])
def test_bad_filters_name_the_path_and_the_reason(filters: Any, path: str, reason: str) -> None:
    [error] = validate_trigger_filters(None, filters)
    assert error.path == path
    assert reason in error.reason


@pytest.mark.parametrize(("attributes", "path", "reason"), [
    ({"s pace": "x"}, "spec.filter.attributes.s pace", "invalid key name"),
    ({"type": 5}, "spec.filter.attributes.type", "must be a string"),
    (["type"], "spec.filter.attributes", "must be a map"),
])
def test_bad_legacy_attributes(attributes: Any, path: str, reason: str) -> None:
    [error] = validate_trigger_filters(attributes, None)
    assert error.path == path
    assert reason in error.reason


def test_every_error_is_reported_and_the_path_prefix_is_the_callers() -> None:
    errors = validate_trigger_filters({"Bad": "x"}, [{"exact": {"A": "x", "B": "y"}}, {"cesql": "("}],
                                      path="spec.branches[2]")
    assert [e.path for e in errors] == ["spec.branches[2].filter.attributes.Bad", "spec.branches[2].filters[0].exact.A",
                                        "spec.branches[2].filters[0].exact.B", "spec.branches[2].filters[1].cesql"]


@pytest.mark.parametrize("filters", [
    None, [],
    [{"exact": {"type": "a", "source": "b"}}, {"prefix": {"type": "a"}}, {"suffix": {"type": "a"}}],
    [{"all": [{"any": [{"not": {"cesql": "type LIKE 'a%' AND INT(count) > 3"}}]}]}],
    [{"exact": {"type": ""}}],  # empty values pass admission (and restrict nothing), as in Knative
    [{"exact": {}, "prefix": {"type": "a"}}],  # an empty dialect is not "set" (Knative's hasMultipleDialects)
    [{"all": []}, {"any": []}, {"cesql": ""}],
    [{"cesql": "EXISTS SOURCE AND concat_ws('-', 'a', type) != ''"}],
])
def test_valid_filters(filters: Any) -> None:
    assert validate_trigger_filters({"type": "x"}, filters) == []


@pytest.mark.parametrize("key", ["type", "aaa", "c1d2e3", "abcdefghijklmnopqrst", "id", "datacontenttype"])
def test_knatives_valid_filter_keys(key: str) -> None:
    # ControlPlaneTrigger_WithValidFilters.
    assert validate_trigger_filters({key: "x"}, [{"exact": {key: "x"}}]) == []


@pytest.mark.parametrize("key", ["SOURCE", "Source", "s pace s", "s_pace_s", "s-pace-s", "123", "🎉", "!"])
def test_knatives_invalid_filter_keys(key: str) -> None:
    # ControlPlaneTrigger_WithInvalidFilters.
    assert [e.path for e in validate_trigger_filters({key: "x"}, [{"suffix": {key: "x"}}])] == [
        f"spec.filter.attributes.{key}", f"spec.filters[0].suffix.{key}"]


def _nested(levels: int) -> dict[str, Any]:
    spec: dict[str, Any] = {"exact": {"type": "a"}}
    for level in range(levels):
        spec = {"all": [spec]} if level % 2 else {"not": spec}
    return spec


def test_filters_nested_too_deep_are_refused_not_a_recursion_error() -> None:
    # Issue 9, defect 13: 600 levels of all/not were a RecursionError (a 500 at the control API).
    [error] = validate_trigger_filters(None, [_nested(600)])
    assert error.path.startswith("spec.filters[0].all[0].not.all[0].") and error.path.count(".") > 100
    assert "nest more than 100 levels" in error.reason
    assert validate_trigger_filters(None, [_nested(100)]) == []
    assert compile_trigger_filter(None, [_nested(100)]).matches({"type": "a"})  # 50 NOTs: even
