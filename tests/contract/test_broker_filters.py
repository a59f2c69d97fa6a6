"""Trigger filters end to end, on every backend: Knative's new_trigger_filters behaviours.

Each case installs one Trigger with `spec.filters` (and sometimes `spec.filter`), sends one event per
type/source and asserts which ids the subscriber received and which it never did.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support import manifests
from tests.support.manifests import BROKER
from tests.support.receiver import Receiver
from tests.support.stack import Stack, event

FULL_TYPE, FULL_SOURCE = "com.example.FullEvent", "http://example.com/source"


def trigger(
    name: str, url: str, filters: list[dict[str, Any]] | None, attributes: dict[str, str] | None = None
) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if filters is not None:
        spec["filters"] = filters
    if attributes is not None:
        spec["filter"] = {"attributes": attributes}
    return manifests.trigger(name, url, **spec)


async def _deliveries(
    stack: Stack,
    receiver: Receiver,
    filters: list[dict[str, Any]] | None,
    sends: list[tuple[str, str, dict[str, str]]],
    attributes: dict[str, str] | None = None,
    expected: int | None = None,
) -> set[str]:
    """Send (type, source, extensions) events, id = type; return the ids the subscriber got."""
    await stack.apply(BROKER, trigger("t", receiver.url, filters, attributes))
    for type_, source, ext in sends:
        assert await stack.send("/ns1/default", event(f"{type_}|{source}", type_=type_, source=source, **ext)) == 202
    # A marker that every case lets through proves earlier events had their chance to arrive.
    if expected:
        await receiver.wait_for(expected)
    await receiver.settle()
    return {i.split("|")[0] for i in receiver.ids}


SINGLE_DIALECT = [
    {"exact": {"type": FULL_TYPE, "source": FULL_SOURCE}},
    {"prefix": {"type": "com.", "source": "http"}},
    {"suffix": {"type": "xample.FullEvent", "source": "//example.com/source"}},
    {"cesql": f"type = '{FULL_TYPE}' AND source = '{FULL_SOURCE}'"},
]


@pytest.mark.parametrize("dialect", SINGLE_DIALECT, ids=lambda d: next(iter(d)))
async def test_single_dialect(stack: Stack, receiver: Receiver, dialect: dict[str, Any]) -> None:
    got = await _deliveries(
        stack,
        receiver,
        [dialect],
        [("org.wrong.type", "org.wrong.source", {}), (FULL_TYPE, FULL_SOURCE, {})],
        expected=1,
    )
    assert got == {FULL_TYPE}


async def test_all(stack: Stack, receiver: Receiver) -> None:
    all_ = {
        "all": [
            {"exact": {"type": "exact.prefix.suffix.event.type"}},
            {"prefix": {"type": "exact.prefix"}},
            {"suffix": {"type": "suffix.event.type"}},
            {"cesql": "type LIKE 'exact.prefix.suffix%'"},
        ]
    }
    types = [
        "not.event.type",
        "exact.prefix.suffix.event",
        "exact.prefix.suffix.event.suffix.event.type",
        "exact.prefix.suffix.event.type",
    ]
    got = await _deliveries(stack, receiver, [all_], [(t, "/s", {}) for t in types], expected=1)
    assert got == {"exact.prefix.suffix.event.type"}


async def test_a_list_of_filters_is_anded(stack: Stack, receiver: Receiver) -> None:
    filters = [
        {"exact": {"type": "exact.prefix.suffix.event.type"}},
        {"prefix": {"type": "exact.prefix"}},
        {"suffix": {"type": "suffix.event.type"}},
        {"cesql": "type LIKE 'exact.prefix.suffix%'"},
    ]
    types = ["not.event.type", "exact.prefix.suffix.event", "exact.prefix.suffix.event.type"]
    got = await _deliveries(stack, receiver, filters, [(t, "/s", {}) for t in types], expected=1)
    assert got == {"exact.prefix.suffix.event.type"}


async def test_any_with_a_negated_like(stack: Stack, receiver: Receiver) -> None:
    any_ = {
        "any": [
            {"exact": {"type": "exact.event.type"}},
            {"prefix": {"type": "prefix"}},
            {"suffix": {"type": "suffix"}},
            {"not": {"cesql": "type LIKE '%event.type%'"}},
            {"cesql": "type = 'cesql.event.type'"},
        ]
    }
    delivered = ["exact.event.type", "prefix.event.type", "event.type.suffix", "not.type.event", "cesql.event.type"]
    got = await _deliveries(
        stack, receiver, [any_], [(t, "/s", {}) for t in ["not.event.type", *delivered]], expected=5
    )
    assert got == set(delivered)


async def test_two_triggers_with_overlapping_any(stack: Stack) -> None:
    sinks = [Receiver(), Receiver()]
    for sink in sinks:
        await sink.start()
    try:
        await stack.apply(
            BROKER,
            *(
                trigger(
                    f"t{i}",
                    sinks[i - 1].url,
                    [{"any": [{"exact": {"type": f"type{i}"}}, {"prefix": {"type": "both"}}]}],
                )
                for i in (1, 2)
            ),
        )
        for type_ in ("type1", "type2", "type3", "both.should.match"):
            assert await stack.send("/ns1/default", event(type_, type_=type_)) == 202
        for sink in sinks:
            await sink.wait_for(2)
            await sink.settle()
        assert set(sinks[0].ids) == {"type1", "both.should.match"}
        assert set(sinks[1].ids) == {"type2", "both.should.match"}
    finally:
        for sink in sinks:
            await sink.stop()


async def test_filters_on_a_missing_extension_never_match(stack: Stack, receiver: Receiver) -> None:
    all_ = {
        "all": [
            {"exact": {"extensionattribute": "extensionvalue"}},
            {"prefix": {"extensionattribute": "ext"}},
            {"suffix": {"extensionattribute": "value"}},
            {"cesql": "extensionattribute LIKE '%value'"},
        ]
    }
    got = await _deliveries(
        stack,
        receiver,
        [all_],
        [("without", "/s", {}), ("with", "/s", {"extensionattribute": "extensionvalue"})],
        expected=1,
    )
    assert got == {"with"}


async def test_empty_filters_fall_back_to_filter_attributes(stack: Stack, receiver: Receiver) -> None:
    got = await _deliveries(
        stack,
        receiver,
        [],
        [("other.type", "/s", {}), ("filter.attribute.event.type", "/s", {})],
        attributes={"type": "filter.attribute.event.type"},
        expected=1,
    )
    assert got == {"filter.attribute.event.type"}


async def test_filters_override_filter_attributes(stack: Stack, receiver: Receiver) -> None:
    got = await _deliveries(
        stack,
        receiver,
        [{"exact": {"type": "filters.type"}}],
        [("attribute.type", "/s", {}), ("filters.type", "/s", {})],
        attributes={"type": "attribute.type"},
        expected=1,
    )
    assert got == {"filters.type"}
