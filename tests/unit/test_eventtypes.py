"""The EventType registry without I/O: conversion of older versions, validation, columns, the status
builder, what a source registers, the describe Trigger, the seed's v1alpha1 Trigger and generateName."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from control.api import eventtype, kinds
from control.api.admission import AdmissionSettings, Refused, admit
from control.api.meta import with_generated_name
from control.reconcilers.resources import eventtype as build
from control.reconcilers.snapshot import Snapshot

SETTINGS = AdmissionSettings()
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "eventtype-registry"
NOW = "2026-01-01T00:00:00Z"


def _v1beta3(*attributes: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": eventtype.API_VERSION, "kind": "EventType", "metadata": {"name": "et1", "namespace": "ns1"},
        "spec": {"attributes": [{"name": a, "required": True, **({"value": "x"} if a in ("type", "source") else {})}
                                for a in attributes], **spec},
    }


def _refused(manifest: dict[str, Any], old: dict[str, Any] | None = None) -> dict[str, str]:
    with pytest.raises(Refused) as info:
        admit(manifest, old, SETTINGS)
    return {e.path: e.reason for e in info.value.errors}


def test_the_seeds_v1alpha1_eventtype_is_stored_as_v1beta3_with_its_broker_as_the_reference() -> None:
    [named, *_] = list(yaml.safe_load_all((EXAMPLES / "01-eventtypes.yaml").read_text()))
    admitted = admit(named, None, SETTINGS)
    assert admitted.kind is kinds.EVENT_TYPE
    assert admitted.obj["apiVersion"] == "eventing.knative.dev/v1beta3"
    assert admitted.obj["spec"] == {
        "reference": {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "name": "default",
                      "namespace": "default"},
        "description": "GitHub pull request",
        "attributes": [
            {"name": "specversion", "required": True},
            {"name": "id", "required": True},
            {"name": "type", "required": True, "value": "com.github.pull_request"},
            {"name": "source", "required": True, "value": "github.com"},
            {"name": "schemadata", "required": False, "value": "//github.com/schemas/pull_request"},
        ],
    }
    assert admitted.warnings == []


def test_v1beta2_keeps_its_reference_over_the_deprecated_broker() -> None:
    manifest = {
        "apiVersion": "eventing.knative.dev/v1beta2", "kind": "EventType", "metadata": {"name": "e", "namespace": "n"},
        "spec": {"type": "t", "source": "/s", "broker": "old",
                 "reference": {"apiVersion": "messaging.knative.dev/v1", "kind": "InMemoryChannel", "name": "c"}},
    }
    spec = admit(manifest, None, SETTINGS).obj["spec"]
    assert spec["reference"] == {"apiVersion": "messaging.knative.dev/v1", "kind": "InMemoryChannel", "name": "c",
                                 "namespace": "n"}
    assert [a["name"] for a in spec["attributes"]] == ["specversion", "id", "type", "source"]


def test_a_v1beta3_without_id_is_refused_naming_the_missing_attribute() -> None:
    errors = _refused(_v1beta3("type", "source", "specversion"))
    assert list(errors) == ["spec.attributes"]
    assert errors["spec.attributes"].startswith("missing field(s): id ")
    errors = _refused(_v1beta3("type"))
    assert errors["spec.attributes"].startswith("missing field(s): source, specversion, id ")


def test_a_v1alpha1_without_type_is_refused_for_the_type_attribute() -> None:
    manifest = {"apiVersion": "eventing.knative.dev/v1alpha1", "kind": "EventType",
                "metadata": {"name": "e"}, "spec": {"source": "github.com", "broker": "default"}}
    assert _refused(manifest)["spec.attributes"].startswith("missing field(s): type ")


@pytest.mark.parametrize(("attribute", "path", "reason"), [
    ({"name": "Type"}, "spec.attributes[4].name", "not a CloudEvents attribute name"),
    ({"name": "type"}, "spec.attributes[4].name", "listed twice"),
    ({"name": "x", "required": "yes"}, "spec.attributes[4].required", "must be true or false"),
    ({"name": "x", "value": 3}, "spec.attributes[4].value", "must be a string"),
    ({}, "spec.attributes[4].name", "required"),
])
def test_bad_attributes_are_refused_with_the_field(attribute: dict[str, Any], path: str, reason: str) -> None:
    manifest = _v1beta3("type", "source", "specversion", "id")
    manifest["spec"]["attributes"].append(attribute)
    assert reason in _refused(manifest)[path]


def test_every_spec_field_is_immutable_and_the_changed_one_is_named() -> None:
    old = admit(_v1beta3("type", "source", "specversion", "id", description="one"), None, SETTINGS).obj
    assert admit(_v1beta3("type", "source", "specversion", "id", description="one"), old, SETTINGS).obj == old
    errors = _refused(_v1beta3("type", "source", "specversion", "id", description="two"), old)
    assert list(errors) == ["spec.description"]
    assert errors["spec.description"].startswith("immutable: changed from 'one' to 'two'")


def test_the_registry_columns() -> None:
    [named, *_] = list(yaml.safe_load_all((EXAMPLES / "01-eventtypes.yaml").read_text()))
    obj = admit(named, None, SETTINGS).obj
    obj["status"] = {"conditions": [{"type": "Ready", "status": "False", "reason": "BrokerIsNotReady"}]}
    headers = [c.header for c in kinds.EVENT_TYPE.columns]
    assert headers == ["NAME", "TYPE", "SOURCE", "SCHEMA", "REFERENCE", "DESCRIPTION", "READY", "REASON"]
    assert [c.cell(obj) for c in kinds.EVENT_TYPE.columns] == [
        "com.github.pullrequest", "com.github.pull_request", "github.com", "//github.com/schemas/pull_request",
        "default", "GitHub pull request", "False", "BrokerIsNotReady"]
    obj["spec"]["reference"] = {"kind": "Trigger", "name": "t1"}
    assert eventtype.reference_column(obj) == "Trigger/t1"


# ------------------------------------------------------------------------------ status


def _broker(name: str, ready: bool | None, namespace: str = "ns1") -> dict[str, Any]:
    obj: dict[str, Any] = {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker",
                           "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}"}, "spec": {}}
    if ready is not None:
        status = "True" if ready else "False"
        obj["status"] = {"conditions": [{"type": "Ready", "status": status, "reason": "" if ready else "Nope",
                                         "message": "" if ready else "no topic"}]}
    return obj


def _et(reference: dict[str, Any] | None) -> dict[str, Any]:
    obj = _v1beta3("type", "source", "specversion", "id")
    obj["metadata"].update(uid="uid-et1", generation=1)
    if reference is not None:
        obj["spec"]["reference"] = reference
    return obj


def _ready(et: dict[str, Any], snapshot: Snapshot) -> tuple[str, str]:
    ready = next(c for c in build.status(et, snapshot, NOW)["conditions"] if c["type"] == "Ready")
    return ready["status"], ready.get("reason", "")


BROKER_REF = {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "name": "default"}


def test_status_follows_the_reference() -> None:
    assert _ready(_et(None), Snapshot()) == ("True", "ReferenceNotSet")
    assert _ready(_et(BROKER_REF), Snapshot()) == ("False", "ResourceDoesNotExist")
    assert _ready(_et(BROKER_REF), Snapshot.of([_broker("default", None)])) == ("False", "BrokerIsNotReady")
    assert _ready(_et(BROKER_REF), Snapshot.of([_broker("default", False)])) == ("False", "BrokerIsNotReady")
    assert _ready(_et(BROKER_REF), Snapshot.of([_broker("default", True)])) == ("True", "")
    # The seed's sinks spell the Broker at v1alpha1: the same kind, found by group.
    old = {**BROKER_REF, "apiVersion": "eventing.knative.dev/v1alpha1"}
    assert _ready(_et(old), Snapshot.of([_broker("default", True)])) == ("True", "")
    assert _ready(_et(BROKER_REF), Snapshot.of([_broker("default", True, "other")])) == (
        "False", "ResourceDoesNotExist")
    unknown = {"apiVersion": "sources.knative.dev/v1alpha1", "kind": "GitHubSource", "name": "g"}
    assert _ready(_et(unknown), Snapshot()) == ("Unknown", "ReferenceGetFailed")


def test_a_channel_reference_not_ready_says_channel() -> None:
    channel = {"apiVersion": "messaging.knative.dev/v1", "kind": "InMemoryChannel",
               "metadata": {"name": "c", "namespace": "ns1", "uid": "u"},
               "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}}
    ref = {"apiVersion": "messaging.knative.dev/v1", "kind": "InMemoryChannel", "name": "c"}
    assert _ready(_et(ref), Snapshot.of([channel])) == ("False", "ChannelIsNotReady")
    trigger = {"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger",
               "metadata": {"name": "t", "namespace": "ns1", "uid": "u2"}, "status": {}}
    # Any other kind only has to exist (Knative's ReferenceExists).
    assert _ready(_et({"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger", "name": "t"}),
                  Snapshot.of([trigger])) == ("True", "")


# ------------------------------------------------------------------------------ registration by sources


def _source(sink: dict[str, Any], ce_attributes: list[dict[str, str]] | None) -> dict[str, Any]:
    obj: dict[str, Any] = {"apiVersion": "sources.knative.dev/v1", "kind": "PingSource",
                           "metadata": {"name": "ping", "namespace": "ns1", "uid": "uid-ping"},
                           "spec": {"sink": sink}, "status": {}}
    if ce_attributes is not None:
        obj["status"]["ceAttributes"] = ce_attributes
    return obj


PING = [{"type": "dev.knative.sources.ping", "source": "/apis/v1/namespaces/ns1/pingsources/ping"}]


def test_a_source_with_a_broker_sink_registers_one_eventtype_per_ce_attributes_entry() -> None:
    wanted = build.registration(_source({"ref": {**BROKER_REF, "namespace": "ns1"}}, PING)).wanted
    name = build.registered_name(PING[0]["type"], PING[0]["source"], "", "uid-ping")
    assert len(name) == 32 and list(wanted) == [name]
    et = wanted[name]
    assert et["metadata"] == {"name": name, "namespace": "ns1", "labels": {"eventing.knative.dev/sourceName": "ping"}}
    assert et["apiVersion"] == eventtype.API_VERSION
    assert et["spec"]["reference"] == {**BROKER_REF, "namespace": "ns1"}
    assert eventtype.attribute(et, "type") == "dev.knative.sources.ping"
    assert eventtype.attribute(et, "source") == PING[0]["source"]
    assert eventtype.validate_eventtype(et) == []


@pytest.mark.parametrize("source", [
    _source({"uri": "http://sink/"}, PING),
    _source({"ref": {"apiVersion": "v1", "kind": "Service", "name": "svc"}}, PING),
    _source({"ref": BROKER_REF}, None),
    _source({"ref": BROKER_REF}, []),
])
def test_no_registration_without_a_broker_or_channel_sink_and_ce_attributes(source: dict[str, Any]) -> None:
    assert build.registration(source).wanted == {}


# ------------------------------------------------------------------------------ describe's Trigger, v1alpha1 Trigger


def test_describe_trigger_filters_on_exactly_the_type_and_source_at_the_broker() -> None:
    [named, *_] = list(yaml.safe_load_all((EXAMPLES / "01-eventtypes.yaml").read_text()))
    trigger = eventtype.trigger_for(admit(named, None, SETTINGS).obj)
    assert trigger is not None
    assert trigger["metadata"] == {"name": "com.github.pullrequest-trigger", "namespace": "default"}
    assert trigger["spec"]["broker"] == "default"
    assert trigger["spec"]["filter"] == {"attributes": {"type": "com.github.pull_request", "source": "github.com"}}
    # Admission refuses it until the subscriber placeholder is filled in.
    assert "spec.subscriber.ref.name" in _refused(trigger)
    trigger["spec"]["subscriber"] = {"uri": "http://sink/"}
    assert admit(trigger, None, SETTINGS).obj["spec"]["filter"]["attributes"]["type"] == "com.github.pull_request"
    assert eventtype.trigger_for(_et(None)) is None


def test_the_seeds_v1alpha1_trigger_becomes_a_v1_trigger_on_the_default_broker() -> None:
    manifest = yaml.safe_load((EXAMPLES / "02-trigger.yaml").read_text())
    admitted = admit(manifest, None, SETTINGS)
    assert admitted.obj["apiVersion"] == "eventing.knative.dev/v1"
    spec = admitted.obj["spec"]
    assert spec["broker"] == "default"
    assert spec["filter"] == {"attributes": {"type": "dev.knative.source.github.push", "source": "github.com"}}
    assert spec["subscriber"] == {"ref": {"apiVersion": "serving.knative.dev/v1", "kind": "Service",
                                          "name": "my-service", "namespace": "default"}}
    assert admitted.warnings == []
    # v1alpha1's "Any" (or an empty value) matches everything: no attribute filter for it.
    manifest["spec"]["filter"]["sourceAndType"] = {"type": "Any", "source": ""}
    assert admit(manifest, None, SETTINGS).obj["spec"]["filter"] == {"attributes": {}}


def test_generate_name_makes_a_name_as_the_api_server_does() -> None:
    manifest = {"metadata": {"generateName": "dev.knative.source.github.push-"}}
    named = with_generated_name(manifest)
    name = named["metadata"]["name"]
    assert name.startswith("dev.knative.source.github.push-") and len(name) == len(manifest["metadata"]
                                                                                     ["generateName"]) + 5
    assert name[-5:].isalnum() and name[-5:].islower()
    assert "name" not in manifest["metadata"]
    assert with_generated_name({"metadata": {"name": "x", "generateName": "y-"}})["metadata"]["name"] == "x"
    assert len(with_generated_name({"metadata": {"generateName": "a" * 100}})["metadata"]["name"]) == 63
