"""Admission refuses, with a 400 naming the field, what used to crash it or slip through it (issue 9:
defects 13 and 14): trailing newlines in names, durations past Go's time.Duration, absurd integers,
and manifests nested deeper than any walker should follow."""

from __future__ import annotations

from typing import Any

import pytest

from control.api.admission import AdmissionSettings, Refused, admit
from control.api.schema import MAX_DEPTH
from core.durations import parse_ms

SETTINGS = AdmissionSettings()


def _broker(**meta: Any) -> dict[str, Any]:
    return {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker",
            "metadata": {"name": "b", "namespace": "ns1", **meta}}


def _trigger(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger", "metadata": {"name": "t1", "namespace": "ns1"},
            "spec": {"broker": "default", "subscriber": {"uri": "http://sink/"}, **spec}}


def _errors(manifest: Any) -> list[tuple[str, str]]:
    with pytest.raises(Refused) as info:
        admit(manifest, None, SETTINGS)
    return [(e.path, e.reason) for e in info.value.errors]


@pytest.mark.parametrize(("manifest", "path"), [
    (_broker(name="b\n"), "metadata.name"),
    (_broker(namespace="default\n"), "metadata.namespace"),
    (_trigger(broker="default\n"), "spec.broker"),
    (_trigger(filter={"attributes": {"type\n": "x"}}), "spec.filter.attributes.type\n"),
    (_trigger(filters=[{"exact": {"type\n": "x"}}]), "spec.filters[0].exact.type\n"),
])
def test_a_trailing_newline_is_not_a_valid_name_or_key(manifest: dict[str, Any], path: str) -> None:
    assert path in [p for p, _ in _errors(manifest)]


@pytest.mark.parametrize("text", ["P9999999999D", "PT99999999999999999999S", "P99999999999W", "P106752D"])
def test_a_duration_longer_than_go_can_hold_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError, match="longer than the longest duration"):
        parse_ms(text)


def test_the_longest_duration_go_holds_is_accepted() -> None:
    assert parse_ms("P106751D") == 106751 * 86_400_000


@pytest.mark.parametrize("key", ["backoffDelay", "timeout", "retryAfterMax"])
def test_an_overflowing_delivery_duration_is_refused_naming_the_field(key: str) -> None:
    assert _errors(_trigger(delivery={key: "P9999999999D"}))[0][0] == f"spec.delivery.{key}"


def test_a_retry_count_past_int32_is_refused() -> None:
    assert _errors(_trigger(delivery={"retry": 10**30})) == [
        ("spec.delivery.retry", f"{10**30} must be at most 2147483647")]


def _nested_filters(levels: int) -> list[dict[str, Any]]:
    filters: list[dict[str, Any]] = [{"exact": {"type": "x"}}]
    for _ in range(levels):
        filters = [{"all": filters}]
    return filters


def _nested_not(levels: int) -> dict[str, Any]:
    node: dict[str, Any] = {"exact": {"type": "x"}}
    for _ in range(levels):
        node = {"not": node}
    return node


def _nested_map(levels: int) -> dict[str, Any]:
    node: dict[str, Any] = {}
    for _ in range(levels):
        node = {"a": node}
    return node


@pytest.mark.parametrize(("manifest", "prefix"), [
    (_trigger(filters=_nested_filters(250)), "spec.filters[0].all[0].all"),
    (_trigger(filters=[_nested_not(400)]), "spec.filters[0].not.not"),
    (_trigger(subscriber={"ref": _nested_map(250)}), "spec.subscriber.ref.a.a"),
    ({**_broker(), "spec": _nested_map(900)}, "spec.a.a"),
])
def test_a_manifest_nested_too_deep_is_refused_naming_where(manifest: dict[str, Any], prefix: str) -> None:
    [(path, reason)] = _errors(manifest)
    assert path.startswith(prefix)
    assert reason == f"nested more than {MAX_DEPTH} levels deep"


def test_filters_nested_as_deep_as_people_write_them_are_admitted() -> None:
    admitted = admit(_trigger(filters=_nested_filters(20)), None, SETTINGS)
    assert admitted.obj["spec"]["filters"] == _nested_filters(20)


@pytest.mark.parametrize(("ref", "path"), [
    ({"apiVersion": "v1", "kind": "Service", "name": "svc\n"}, "spec.subscriber.ref.name"),
    ({"apiVersion": "v1", "kind": "Service", "name": "svc", "namespace": "ns1\n"}, "spec.subscriber.ref.namespace"),
    ({"apiVersion": "v1", "kind": "Service", "name": "svc", "namespace": ["ns1"]}, "spec.subscriber.ref.namespace"),
])
def test_a_reference_names_its_object_as_kubernetes_does(ref: dict[str, Any], path: str) -> None:
    assert path in [p for p, _ in _errors(_trigger(subscriber={"ref": ref}))]
