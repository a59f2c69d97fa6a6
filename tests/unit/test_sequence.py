"""Sequence without I/O: admission (defaults, field errors) and the pure builders (children, status)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from control.api import kinds
from control.api.admission import AdmissionSettings, Refused, admit
from control.conditions import ready_of
from control.reconcilers.resources import sequence as build
from control.reconcilers.resources.flows import Observed

SETTINGS = AdmissionSettings()
NOW = "2026-01-01T00:00:00Z"
IMC = {"apiVersion": "messaging.knative.dev/v1", "kind": "InMemoryChannel"}


def sequence(**spec: Any) -> dict[str, Any]:
    steps = [{"uri": "http://step0/"}, {"ref": {"apiVersion": "serving.knative.dev/v1", "kind": "Service",
                                                "name": "second"}}, {"uri": "http://step2/"}]
    return {"apiVersion": "flows.knative.dev/v1", "kind": "Sequence", "metadata": {"name": "seq", "namespace": "ns1"},
            "spec": {"steps": steps, **spec}}


def stored(manifest: dict[str, Any]) -> dict[str, Any]:
    obj = admit(manifest, None, SETTINGS).obj
    obj["metadata"].update(uid="uid-seq", generation=1)
    return obj


def refused(manifest: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(Refused) as info:
        admit(manifest, None, SETTINGS)
    return [(e.path, e.reason) for e in info.value.errors]


def ready(status: str, reason: str = "") -> dict[str, Any]:
    return {"type": "Ready", "status": status, **({"reason": reason} if reason else {})}


def with_status(child: dict[str, Any], ready_status: str, url: str | None = None) -> dict[str, Any]:
    have = copy.deepcopy(child)
    have["status"] = {"conditions": [ready(ready_status)], **({"address": {"url": url}} if url else {})}
    return have


# ---------------------------------------------------------------------------------------------- admission

def test_the_registry_knows_sequences_by_knatives_spellings() -> None:
    for spelling in ("sequence", "sequences", "Sequence", "sequences.flows.knative.dev"):
        assert kinds.resolve(spelling).kind == "Sequence"
    assert [c.header for c in kinds.resolve("sequences").columns] == ["NAME", "URL", "AGE", "READY", "REASON"]


def test_admission_defaults_the_channel_template_and_the_namespaces_of_refs() -> None:
    obj = admit(sequence(reply={"ref": {"apiVersion": "v1", "kind": "Service", "name": "sink"}}), None, SETTINGS).obj
    assert obj["spec"]["channelTemplate"] == IMC
    assert obj["spec"]["steps"][1]["ref"]["namespace"] == "ns1"
    assert obj["spec"]["reply"]["ref"]["namespace"] == "ns1"


def test_an_explicit_channel_template_is_kept() -> None:
    template = {**IMC, "spec": {"delivery": {"retry": 3}}}
    assert admit(sequence(channelTemplate=template), None, SETTINGS).obj["spec"]["channelTemplate"] == template


@pytest.mark.parametrize(("spec", "errors"), [
    ({"steps": []}, [("spec.steps", "at least one step is required")]),
    ({"steps": None}, [("spec.steps", "at least one step is required")]),
    ({"steps": {"uri": "http://x/"}}, [("spec.steps", "must be a list of steps")]),
    ({"steps": [{"uri": "http://a/"}, {}]},
     [("spec.steps[1]", "expected at least one of ref or uri, got neither")]),
    ({"steps": [{"uri": "http://a/", "delivery": {"retry": -1}}]},
     [("spec.steps[0].delivery.retry", "-1 must be an integer >= 0")]),
    ({"steps": [{"uri": "/relative"}]},
     [("spec.steps[0].uri", "'/relative' must be an absolute URI with a scheme and host")]),
    ({"steps": [{"uri": "http://a/"}], "reply": {}},
     [("spec.reply", "expected at least one of ref or uri, got neither")]),
    ({"steps": [{"uri": "http://a/"}], "channelTemplate": {"kind": "InMemoryChannel"}},
     [("spec.channelTemplate.apiVersion", "required")]),
])
def test_field_errors_name_the_field_and_the_reason(spec: dict[str, Any], errors: list[tuple[str, str]]) -> None:
    manifest = sequence()
    manifest["spec"] = spec
    assert refused(manifest) == errors


def test_a_template_naming_no_channel_kind_nerve_runs_is_refused() -> None:
    [(path, message)] = refused(sequence(channelTemplate={"apiVersion": "eventing.knative.dev/v1", "kind": "Broker"}))
    assert path == "spec.channelTemplate.kind"
    assert message.startswith("'Broker' is not a channel kind Nerve runs; use one of ")
    assert "InMemoryChannel (messaging.knative.dev/v1)" in message


def test_the_default_template_follows_the_default_channel_kind() -> None:
    settings = AdmissionSettings(default_channel_kind="KafkaChannel")
    obj = admit(sequence(), None, settings).obj
    assert obj["spec"]["channelTemplate"] == {"apiVersion": "messaging.knative.dev/v1beta1", "kind": "KafkaChannel"}


def test_every_field_may_change_on_update() -> None:
    old = stored(sequence())
    new = sequence(channelTemplate=IMC)
    new["spec"]["steps"] = new["spec"]["steps"][:1]
    assert admit(new, old, SETTINGS).obj["spec"]["steps"] == [{"uri": "http://step0/"}]


# ---------------------------------------------------------------------------------------------- children

def test_each_step_gets_a_channel_and_a_subscription_with_knatives_names() -> None:
    seq = stored(sequence(reply={"uri": "http://sink/"}))
    seq["spec"]["steps"][0]["delivery"] = {"retry": 2}
    built = build.children(seq)
    assert [c["metadata"]["name"] for c in built.channels] == [
        "seq-kn-sequence-0", "seq-kn-sequence-1", "seq-kn-sequence-2"]
    assert {(c["apiVersion"], c["kind"], c["metadata"]["namespace"]) for c in built.channels} == {
        ("messaging.knative.dev/v1", "InMemoryChannel", "ns1")}
    first, second, last = built.subscriptions
    assert first["metadata"] == {"name": "seq-kn-sequence-0", "namespace": "ns1"}
    assert first["spec"] == {
        "channel": {**IMC, "name": "seq-kn-sequence-0"},
        "subscriber": {"uri": "http://step0/"},
        "reply": {"ref": {**IMC, "name": "seq-kn-sequence-1", "namespace": "ns1"}},
        "delivery": {"retry": 2},
    }
    assert second["spec"]["subscriber"] == {"ref": {"apiVersion": "serving.knative.dev/v1", "kind": "Service",
                                                    "name": "second", "namespace": "ns1"}}
    assert second["spec"]["reply"]["ref"]["name"] == "seq-kn-sequence-2"
    assert "delivery" not in second["spec"]
    assert last["spec"]["reply"] == {"uri": "http://sink/"}


def test_the_last_step_of_a_sequence_without_reply_has_none() -> None:
    last = build.children(stored(sequence())).subscriptions[-1]
    assert "reply" not in last["spec"]


def test_the_channels_carry_the_templates_spec() -> None:
    template = {"apiVersion": "messaging.knative.dev/v1", "kind": "InMemoryChannel",
                "spec": {"delivery": {"retry": 1}}}
    built = build.children(stored(sequence(channelTemplate=template)))
    assert all(c["spec"] == {"delivery": {"retry": 1}} for c in built.channels)
    assert built.subscriptions[0]["spec"]["channel"]["kind"] == "InMemoryChannel"


# ---------------------------------------------------------------------------------------------- status

def test_status_before_the_children_exist_is_unknown_and_lists_them() -> None:
    seq = stored(sequence())
    built = build.children(seq)
    status = build.status(seq, [Observed(c) for c in built.channels], [Observed(s) for s in built.subscriptions],
                          NOW)
    conditions = {c["type"]: (c["status"], c.get("reason")) for c in status["conditions"]}
    assert conditions == {"Ready": ("Unknown", "ChannelsNotReady"), "ChannelsReady": ("Unknown", "ChannelsNotReady"),
                          "SubscriptionsReady": ("Unknown", "SubscriptionsNotReady"),
                          "Addressable": ("Unknown", "emptyAddress"), "EventPoliciesReady": ("True", "OIDCDisabled")}
    assert "address" not in status
    assert status["channelStatuses"][1] == {
        "channel": {**IMC, "name": "seq-kn-sequence-1", "namespace": "ns1"},
        "ready": {"type": "Ready", "status": "Unknown", "reason": "NotCreated",
                  "message": "InMemoryChannel is being created"},
    }
    assert status["subscriptionStatuses"][0]["subscription"] == {
        "apiVersion": "messaging.knative.dev/v1", "kind": "Subscription", "name": "seq-kn-sequence-0",
        "namespace": "ns1"}


def test_a_sequence_is_ready_and_addressable_at_channel_0_when_every_child_is_ready() -> None:
    seq = stored(sequence())
    built = build.children(seq)
    channels = [Observed(c, with_status(c, "True", f"http://ingress/channels/ns1/{c['metadata']['name']}"))
                for c in built.channels]
    subscriptions = [Observed(s, with_status(s, "True")) for s in built.subscriptions]
    status = build.status(seq, channels, subscriptions, NOW)
    assert ready_of({"status": status}) == {"type": "Ready", "status": "True", "lastTransitionTime": NOW}
    assert status["address"] == {"url": "http://ingress/channels/ns1/seq-kn-sequence-0"}
    assert [s["ready"]["status"] for s in status["subscriptionStatuses"]] == ["True"] * 3


def test_one_subscription_not_ready_keeps_the_sequence_not_ready() -> None:
    seq = stored(sequence())
    built = build.children(seq)
    channels = [Observed(c, with_status(c, "True", "http://x/")) for c in built.channels]
    subscriptions = [Observed(s, with_status(s, "False" if i == 1 else "True"))
                     for i, s in enumerate(built.subscriptions)]
    status = build.status(seq, channels, subscriptions, NOW)
    assert ready_of({"status": status})["reason"] == "SubscriptionsNotReady"  # type: ignore[index]
    assert status["subscriptionStatuses"][1]["ready"] == ready("False")


def test_a_channel_name_held_by_another_object_is_reported() -> None:
    seq = stored(sequence())
    built = build.children(seq)
    channels = [Observed(c, foreign=i == 2) for i, c in enumerate(built.channels)]
    status = build.status(seq, channels, [Observed(s) for s in built.subscriptions], NOW)
    ready_condition = ready_of({"status": status})
    assert ready_condition is not None and ready_condition["status"] == "False"
    assert ready_condition["reason"] == "NotOwned"
    assert ready_condition["message"] == ("InMemoryChannel ns1/seq-kn-sequence-2 already exists and is not owned by "
                                          "Sequence seq; delete it or rename the Sequence")


def test_children_are_defaulted_as_admission_would_store_them() -> None:
    kafka = {"apiVersion": "messaging.knative.dev/v1beta1", "kind": "KafkaChannel", "spec": {"numPartitions": 3}}
    built = build.children(stored(sequence(channelTemplate=kafka)))
    channel = built.channels[0]
    assert channel["metadata"]["annotations"] == {"messaging.knative.dev/subscribable": "v1"}
    assert channel["spec"]["numPartitions"] == 3 and channel["spec"]["replicationFactor"] == 1
    assert "retentionDuration" in channel["spec"]
