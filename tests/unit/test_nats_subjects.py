"""The NATS subject layout for server-side fan-out (channels/nats.py) and which Triggers get a typed
consumer (core.filters.exact.required_type)."""

from __future__ import annotations

from typing import Any

import pytest

from channels.nats import consumer_subjects, stream_subjects, type_of_token, type_token, typed_subject
from core.filters.exact import required_type

TOKEN_FORBIDDEN = set(".*> \t\r\n")


@pytest.mark.parametrize("event_type", [
    "greeting", "dev.knative.sources.ping", "a.b", "a_b", "a*b", "a>b", "with space", "ünïcödé", "x" * 300, "=",
])
def test_a_type_is_one_valid_token_and_comes_back(event_type: str) -> None:
    token = type_token(event_type)
    assert token and not TOKEN_FORBIDDEN & set(token)
    assert type_of_token(token) == event_type


def test_types_never_share_a_token() -> None:
    types = ["a.b", "a_b", "a-b", "ab", "AB", "a b", "a.b.", ".a.b", "a", "aa", "b"]
    assert len({type_token(t) for t in types}) == len(types)


def test_subjects() -> None:
    assert typed_subject("ns/b", "a.b") == f"{stream_subjects('ns/b')[0]}.{type_token('a.b')}"
    bare, everything = stream_subjects("ns/b")
    assert everything == f"{bare}.>"
    assert consumer_subjects("ns/b", None) == [bare, everything]
    assert consumer_subjects("ns/b", "a.b") == [bare, typed_subject("ns/b", "a.b")]


@pytest.mark.parametrize(("attributes", "filters", "wanted"), [
    ({"type": "greeting"}, [], "greeting"),
    ({"type": "greeting", "source": "s"}, [], "greeting"),
    ({"type": ""}, [], None),                      # "" means present and non-empty, not one value
    ({"source": "s"}, [], None),
    ({}, [], None),
    ({}, [{"exact": {"type": "t"}}], "t"),
    ({}, [{"prefix": {"source": "x"}}, {"exact": {"type": "t", "source": "s"}}], "t"),
    ({"type": "ignored"}, [{"prefix": {"type": "t"}}], None),   # filters given: the attributes do not count
    ({}, [{"exact": {"type": "t", "source": ""}}], None),       # an empty value makes the exact NO_FILTER
    ({}, [{"exact": {"type": ""}}], None),
    ({}, [{"any": [{"exact": {"type": "t"}}]}], None),
    ({}, [{"not": {"exact": {"type": "t"}}}], None),
    ({}, [{"all": [{"exact": {"type": "t"}}]}], None),          # nested: not read (a wider read, never a miss)
    ({}, [{"cesql": "type = 't'"}], None),
])
def test_required_type(attributes: dict[str, str], filters: list[dict[str, Any]], wanted: str | None) -> None:
    assert required_type(attributes, filters) == wanted
