"""Each Subscriptions API dialect, and the behaviours Knative's rekt suite checks (new_trigger_filters/)."""

from __future__ import annotations

from typing import Any

import pytest

from core.filters import compile_trigger_filter

EVENT: dict[str, Any] = {"specversion": "1.0", "id": "1", "source": "https://example.com/src",
                         "type": "com.example.created", "myext": "value", "count": 5, "flag": True}


def matches(filters: list[dict[str, Any]] | None, attributes: dict[str, str] | None = None,
            event: dict[str, Any] | None = None) -> bool:
    return compile_trigger_filter(attributes, filters).matches(event if event is not None else EVENT)


def event_of(type_: str, **extensions: Any) -> dict[str, Any]:
    return {"specversion": "1.0", "id": "1", "source": "http://example.com/source", "type": type_, **extensions}


def test_no_filter_at_all_matches_everything() -> None:
    assert matches(None) and matches([], {}) and matches([], None)


@pytest.mark.parametrize(("dialect", "expected"), [
    ({"exact": {"type": "com.example.created"}}, True),
    ({"exact": {"type": "com.example"}}, False),
    ({"exact": {"type": "com.example.Created"}}, False),  # case-sensitive
    ({"exact": {"type": "com.example.created", "source": "https://example.com/src"}}, True),
    ({"exact": {"type": "com.example.created", "source": "other"}}, False),  # every key must match
    ({"exact": {"flag": "true", "count": "5"}}, True),  # string forms of Boolean and Integer
    ({"prefix": {"type": "com.example."}}, True),
    ({"prefix": {"source": "http://"}}, False),
    ({"prefix": {"count": "5"}}, True),
    ({"suffix": {"type": ".created"}}, True),
    ({"suffix": {"type": ".deleted"}}, False),
    ({"suffix": {"flag": "ue"}}, True),
    ({"cesql": "type LIKE 'com.%' AND count > 3"}, True),
    ({"cesql": "flag AND myext = 'value'"}, True),
    ({"cesql": "count + 1"}, False),  # not a Boolean
    ({"cesql": "'true'"}, False),  # a String, even one that casts to true
    ({"cesql": "NOT 10"}, False),  # an error: never a match
])
def test_single_dialect(dialect: dict[str, Any], expected: bool) -> None:
    assert matches([dialect]) is expected


@pytest.mark.parametrize("dialect", [
    {"exact": {"missing": "x"}}, {"prefix": {"missing": "x"}}, {"suffix": {"missing": "x"}},
    {"cesql": "missing = 'x'"}, {"cesql": "missing LIKE '%'"}, {"cesql": "missing OR TRUE"},
    {"exact": {"subject": "x"}},  # an unset standard attribute is missing too
])
def test_a_missing_attribute_never_matches(dialect: dict[str, Any]) -> None:
    assert not matches([dialect])


def test_missing_extension_under_all_never_matches() -> None:
    # MissingAttributesFeature: the same filter delivers once the extension is there.
    filters = [{"all": [{"exact": {"extensionattribute": "extensionvalue"}},
                        {"prefix": {"extensionattribute": "extension"}},
                        {"suffix": {"extensionattribute": "value"}},
                        {"cesql": "extensionattribute LIKE '%value'"}]}]
    assert not matches(filters, event=event_of("t"))
    assert matches(filters, event=event_of("t", extensionattribute="extensionvalue"))


@pytest.mark.parametrize("dialect", [
    {"exact": {"type": ""}}, {"prefix": {"type": ""}}, {"suffix": {"": "x"}}, {"exact": {}},
    {"all": []}, {"any": []}, {"not": {"exact": {"type": ""}}},
])
def test_a_dialect_that_restricts_nothing_delivers(dialect: dict[str, Any]) -> None:
    # Knative skips what it cannot materialise (knative-spec.md §11 item 11) and NoFilter delivers.
    assert matches([dialect])
    assert matches([{"any": [dialect]}]) and matches([{"not": dialect}])


ALL = {"all": [{"exact": {"type": "exact.prefix.suffix.event.type"}}, {"prefix": {"type": "exact.prefix"}},
               {"suffix": {"type": "suffix.event.type"}}, {"cesql": "type LIKE 'exact.prefix.suffix%'"}]}


@pytest.mark.parametrize(("type_", "expected"), [
    ("exact.prefix.suffix.event.type", True),
    ("not.event.type", False),
    ("exact.prefix.suffix.event", False),
    ("exact.prefix.suffix.event.suffix.event.type", False),
])
def test_all_and_a_plain_list_are_the_same_and(type_: str, expected: bool) -> None:
    # AllFilterFeature and MultipleFiltersFeature.
    assert matches([ALL], event=event_of(type_)) is expected
    assert matches(ALL["all"], event=event_of(type_)) is expected


ANY = {"any": [{"exact": {"type": "exact.event.type"}}, {"prefix": {"type": "prefix"}},
               {"suffix": {"type": "suffix"}}, {"not": {"cesql": "type LIKE '%event.type%'"}},
               {"cesql": "type = 'cesql.event.type'"}]}


@pytest.mark.parametrize(("type_", "expected"), [
    ("exact.event.type", True), ("prefix.event.type", True), ("event.type.suffix", True),
    ("not.type.event", True), ("cesql.event.type", True), ("not.event.type", False),
])
def test_any_with_a_negated_like(type_: str, expected: bool) -> None:
    # AnyFilterFeature.
    assert matches([ANY], event=event_of(type_)) is expected


def test_two_triggers_with_overlapping_any() -> None:
    # MultipleTriggersAndSinksFeature.
    t1 = compile_trigger_filter(None, [{"any": [{"exact": {"type": "type1"}}, {"prefix": {"type": "both"}}]}])
    t2 = compile_trigger_filter(None, [{"any": [{"exact": {"type": "type2"}}, {"prefix": {"type": "both"}}]}])
    got = {name: [e for e in ("type1", "type2", "type3", "both.should.match") if f.matches(event_of(e))]
           for name, f in (("t1", t1), ("t2", t2))}
    assert got == {"t1": ["type1", "both.should.match"], "t2": ["type2", "both.should.match"]}


def test_nested_all_any_not() -> None:
    filters = [{"all": [
        {"any": [{"exact": {"type": "a"}}, {"exact": {"type": "b"}}]},
        {"not": {"any": [{"suffix": {"source": "/blocked"}}, {"cesql": "EXISTS quarantined"}]}},
        {"not": {"not": {"prefix": {"source": "http://"}}}},
    ]}]
    assert matches(filters, event=event_of("a"))
    assert matches(filters, event=event_of("b"))
    assert not matches(filters, event=event_of("c"))
    assert not matches(filters, event=event_of("a", quarantined="yes"))
    assert not matches(filters, event={**event_of("b"), "source": "http://x/blocked"})
    assert not matches(filters, event={**event_of("b"), "source": "ftp://x"})


def test_filters_override_filter_attributes() -> None:
    # FiltersOverrideAttributeFilterFeature: only the `filters` side decides.
    attributes = {"type": "filter.attribute.event.type"}
    filters = [{"exact": {"type": "filters.event.type"}}]
    assert matches(filters, attributes, event=event_of("filters.event.type"))
    assert not matches(filters, attributes, event=event_of("filter.attribute.event.type"))


def test_empty_filters_fall_back_to_filter_attributes() -> None:
    # FilterAttributeWithEmptyFiltersFeature.
    attributes = {"type": "filter.attribute.event.type"}
    assert matches([], attributes, event=event_of("filter.attribute.event.type"))
    assert not matches([], attributes, event=event_of("other.type"))
    assert not matches(None, attributes, event=event_of("other.type"))


def test_any_of_three_exact_types() -> None:
    # AnyFilterMultipleExactFiltersFeature.
    types = [f"dev.knative.apiserver.resource.{verb}" for verb in ("update", "add", "delete")]
    f = compile_trigger_filter(None, [{"any": [{"exact": {"type": t}} for t in types]}])
    assert all(f.matches(event_of(t)) for t in types)
    assert not f.matches(event_of("prefix.event.type"))


def test_binary_and_structured_extensions_match_alike() -> None:
    # Binary mode carries every extension as text; structured mode keeps JSON types.
    for f in ([{"exact": {"count": "5"}}], [{"cesql": "count = 5"}], [{"cesql": "count > 4"}]):
        assert matches(f, event=event_of("t", count=5)) and matches(f, event=event_of("t", count="5"))
