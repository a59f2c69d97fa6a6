"""The exact-attribute index: it rules Triggers out, never in, and what it files under is what the filter needs."""

from __future__ import annotations

from typing import Any

import pytest

from core.filters import compile_trigger_filter
from core.filters.index import FilterIndex, exact_requirements

# (filter.attributes, filters) -> the exact values an event must have.
REQUIREMENTS: list[tuple[dict[str, str] | None, list[dict[str, Any]] | None, dict[str, str]]] = [
    (None, None, {}),
    ({"type": "a"}, None, {"type": "a"}),
    ({"type": "a", "source": "/s"}, None, {"type": "a", "source": "/s"}),
    ({"type": ""}, None, {}),  # "" is "present and non-empty", not a value
    ({"type": "a", "ext": ""}, None, {"type": "a"}),
    (None, [{"exact": {"type": "a"}}], {"type": "a"}),
    (None, [{"exact": {"type": "a", "source": "/s"}}], {"type": "a", "source": "/s"}),
    (None, [{"exact": {"type": "a", "source": ""}}], {}),  # an empty value makes the object NO_FILTER
    (None, [{"prefix": {"type": "a"}}], {}),
    (None, [{"suffix": {"type": "a"}}], {}),
    (None, [{"cesql": "type = 'a'"}], {}),
    (None, [{"any": [{"exact": {"type": "a"}}, {"exact": {"type": "b"}}]}], {}),
    (None, [{"not": {"exact": {"type": "a"}}}], {}),
    (None, [{"exact": {"type": "a"}}, {"prefix": {"source": "/x"}}], {"type": "a"}),
    (None, [{"all": [{"exact": {"source": "/s"}}, {"cesql": "true"}]}], {"source": "/s"}),
    (None, [{"all": [{"all": [{"exact": {"subject": "x"}}]}]}], {"subject": "x"}),
    # `filters` wins over the legacy attributes when non-empty, as compile_trigger_filter reads them.
    ({"type": "legacy"}, [{"prefix": {"type": "a"}}], {}),
    ({"type": "legacy"}, [], {"type": "legacy"}),
    # In one object the first non-empty dialect counts: exact before cesql.
    (None, [{"exact": {"type": "a"}, "cesql": "false"}], {"type": "a"}),
    (None, [{"exact": {}, "prefix": {"type": "a"}}], {}),
]


@pytest.mark.parametrize(("attributes", "filters", "expected"), REQUIREMENTS)
def test_exact_requirements(attributes: dict[str, str] | None, filters: list[dict[str, Any]] | None,
                            expected: dict[str, str]) -> None:
    assert exact_requirements(attributes, filters) == expected


EVENTS: list[dict[str, Any]] = [
    {"specversion": "1.0", "id": "1", "type": "a", "source": "/s"},
    {"specversion": "1.0", "id": "2", "type": "b", "source": "/s"},
    {"specversion": "1.0", "id": "3", "type": "a", "source": "/x", "subject": "x"},
    {"specversion": "1.0", "id": "4", "type": "legacy", "source": "/s", "ext": "v"},
    {"specversion": "1.0", "id": "5", "type": "a", "source": "/s", "ext": 5},  # an Integer extension
    {"specversion": "1.0", "id": "6", "source": "/s"},  # no type at all
]


def _specs() -> list[tuple[dict[str, str] | None, list[dict[str, Any]] | None]]:
    specs = [(attributes, filters) for attributes, filters, _ in REQUIREMENTS]
    specs += [({"ext": "5"}, None), (None, [{"exact": {"ext": "5"}}]), ({"type": "a", "ext": "v"}, None)]
    return specs


def test_every_match_is_a_candidate_and_exact_triggers_of_other_values_are_not() -> None:
    specs = _specs()
    filters = [compile_trigger_filter(attributes, f) for attributes, f in specs]
    index = FilterIndex((i, exact_requirements(*spec)) for i, spec in enumerate(specs))
    assert index.size == len(specs)
    for event in EVENTS:
        candidates = index.candidates(event)
        assert len(candidates) == len(set(candidates)), "an entry is filed once"
        matching = {i for i, f in enumerate(filters) if f.matches(event)}
        assert matching <= set(candidates), (event, matching - set(candidates))
        for i, spec in enumerate(specs):
            wanted = exact_requirements(*spec)
            if wanted.get("type") is not None and wanted["type"] != event.get("type"):
                assert i not in candidates, (event, spec)


def test_an_event_of_one_type_among_a_thousand_exact_triggers_has_one_candidate() -> None:
    index = FilterIndex((n, {"type": f"t{n}"}) for n in range(1000))
    assert index.candidates({"type": "t7", "source": "/s"}) == [7]
    assert index.candidates({"type": "other"}) == []


def test_triggers_without_exact_values_are_always_candidates() -> None:
    index = FilterIndex([("all", {}), ("typed", {"type": "a"}), ("sourced", {"source": "/s"})])
    assert index.candidates({"type": "a", "source": "/s"}) == ["all", "typed", "sourced"]
    assert index.candidates({"type": "b", "source": "/t"}) == ["all"]
    # Values compare by their CloudEvents string form, as the filters do.
    assert FilterIndex([("flag", {"b": "true"})]).candidates({"b": True}) == ["flag"]
