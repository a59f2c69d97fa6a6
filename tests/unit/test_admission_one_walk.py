"""A kind admitted with one schema walk (Kind.defaults_add_only_known) answers as with the two: the same
stored object, the same warnings, the same errors, in every fieldValidation mode."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from control.api import admission, kinds
from control.api.admission import AdmissionSettings, FieldValidation, Refused, admit

SUB = {"uri": "http://sink.example/x"}
REF = {"apiVersion": "v1", "kind": "Service", "name": "svc"}


def trigger(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger",
            "metadata": {"name": "t", "namespace": "ns"}, "spec": {"broker": "default", "subscriber": SUB, **spec}}


def broker(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "metadata": {"name": "b", "namespace": "ns"},
            **({"spec": spec} if spec else {})}


MANIFESTS = [
    trigger(),
    trigger(filter={"attributes": {"type": "x"}, "unknwn": 1}),
    trigger(subscriber={"ref": {**REF, "group": "g", "extra": 1}, "bogus": True}),
    trigger(subscriber={"ref": REF, "uri": "/path"}),
    trigger(delivery={"deadLetterSink": {"ref": REF, "what": 1}, "retry": 3, "nope": {}}),
    trigger(filters=[{"exact": {"type": "a"}, "odd": 1}, {"any": [{"prefix": {"type": "b"}}]}]),
    trigger(subscriber={"uri": "not a uri"}, speling="x"),
    trigger(broker=["not", "a", "string"]),
    {**trigger(), "status": {"conditions": []}, "extra": {"deep": {"er": 1}}},
    {**trigger(), "metadata": {"name": "t", "namespace": "ns", "finalizers": ["f"], "uid": "u", "labels": "bad",
                               "resourceVersion": "9", "annotations": {"a": "b"}, "surprise": 1}},
    {**trigger(), "metadata": ["not", "a", "mapping"]},
    {"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger", "metadata": {"name": "t"}},
    {"apiVersion": "eventing.knative.dev/v1alpha1", "kind": "Trigger", "metadata": {"name": "t", "namespace": "ns"},
     "spec": {"filter": {"sourceAndType": {"type": "x", "source": "Any"}},
              "subscriber": {"dnsName": "http://a.b/", "ref": {**REF, "uid": "u"}}, "unknown": 1}},
    broker(),
    broker(delivery={"retry": 2, "format": "json", "extra": 1}, config={"kind": "ConfigMap", "name": "c",
                                                                      "apiVersion": "v1", "odd": 2}),
    broker(delivery={"deadLetterSink": {"ref": REF, "x": 1}}, mystery=True),
    {**broker(), "metadata": {"name": "b", "namespace": "ns",
                              "annotations": {"eventing.knative.dev/broker.class": "Kafka"}}, "spek": {}},
    {**broker(), "spec": "not an object"},
]


def outcome(manifest: dict[str, Any], old: dict[str, Any] | None, validation: FieldValidation) -> Any:
    try:
        admitted = admit(manifest, old, AdmissionSettings(), validation)
    except Refused as exc:
        return "refused", exc.errors, exc.warnings
    return "admitted", admitted.obj, admitted.warnings


@pytest.mark.parametrize("validation", list(FieldValidation))
@pytest.mark.parametrize("manifest", MANIFESTS)
def test_one_walk_answers_as_two(manifest: dict[str, Any], validation: FieldValidation,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    one = outcome(manifest, None, validation)
    stored = one[1] if one[0] == "admitted" else None
    again = outcome(manifest, stored, validation)
    kind = kinds.for_manifest(manifest["apiVersion"], manifest["kind"])
    assert kind is not None and kind.defaults_add_only_known
    two_walks = dataclasses.replace(kind, defaults_add_only_known=False)
    monkeypatch.setattr(admission.kinds, "for_manifest", lambda api_version, name: two_walks)
    assert outcome(manifest, None, validation) == one
    assert outcome(manifest, stored, validation) == again
