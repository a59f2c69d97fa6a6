"""Parallel without I/O: admission (defaults, field errors) and the pure builders (children, status)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from control.api import kinds
from control.api.admission import AdmissionSettings, Refused, admit
from control.conditions import ready_of
from control.reconcilers.resources import parallel as build
from control.reconcilers.resources.flows import Observed

SETTINGS = AdmissionSettings()
NOW = "2026-01-01T00:00:00Z"
IMC = {"apiVersion": "messaging.knative.dev/v1", "kind": "InMemoryChannel"}


def parallel(**spec: Any) -> dict[str, Any]:
    branches = [
        {"filter": {"uri": "http://even-filter/"}, "subscriber": {"uri": "http://even/"}},
        {"subscriber": {"uri": "http://odd/"}, "reply": {"uri": "http://odd-reply/"}, "delivery": {"retry": 1}},
    ]
    return {"apiVersion": "flows.knative.dev/v1", "kind": "Parallel", "metadata": {"name": "p", "namespace": "ns1"},
            "spec": {"branches": branches, **spec}}


def stored(manifest: dict[str, Any]) -> dict[str, Any]:
    obj = admit(manifest, None, SETTINGS).obj
    obj["metadata"].update(uid="uid-p", generation=1)
    return obj


def refused(manifest: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(Refused) as info:
        admit(manifest, None, SETTINGS)
    return [(e.path, e.reason) for e in info.value.errors]


def with_status(child: dict[str, Any], ready_status: str, url: str | None = None) -> dict[str, Any]:
    have = copy.deepcopy(child)
    have["status"] = {"conditions": [{"type": "Ready", "status": ready_status}],
                      **({"address": {"url": url}} if url else {})}
    return have


def test_the_registry_knows_parallels_by_knatives_spellings() -> None:
    for spelling in ("parallel", "parallels", "Parallel", "parallels.flows.knative.dev"):
        assert kinds.resolve(spelling).kind == "Parallel"
    assert [c.header for c in kinds.resolve("parallels").columns] == ["NAME", "URL", "AGE", "READY", "REASON"]


def test_admission_defaults_the_channel_template_and_the_namespaces_of_refs() -> None:
    manifest = parallel(reply={"ref": {"apiVersion": "v1", "kind": "Service", "name": "sink"}})
    manifest["spec"]["branches"][0]["filter"] = {"ref": {"apiVersion": "v1", "kind": "Service", "name": "f"}}
    obj = admit(manifest, None, SETTINGS).obj
    assert obj["spec"]["channelTemplate"] == IMC
    assert obj["spec"]["branches"][0]["filter"]["ref"]["namespace"] == "ns1"
    assert obj["spec"]["reply"]["ref"]["namespace"] == "ns1"


@pytest.mark.parametrize(("branches", "errors"), [
    ([], [("spec.branches", "at least one branch is required")]),
    (None, [("spec.branches", "at least one branch is required")]),
    ([{"filter": {"uri": "http://f/"}}], [("spec.branches[0].subscriber", "required")]),
    ([{"subscriber": {}}], [("spec.branches[0].subscriber", "expected at least one of ref or uri, got neither")]),
    ([{"subscriber": {"uri": "http://s/"}, "filter": {"uri": "relative"}}],
     [("spec.branches[0].filter.uri", "'relative' must be an absolute URI with a scheme and host")]),
    ([{"subscriber": {"uri": "http://s/"}, "delivery": {"backoffPolicy": "random"}}],
     [("spec.branches[0].delivery.backoffPolicy", "'random' must be linear or exponential")]),
    (["x"], [("spec.branches[0]", "must be an object with a subscriber")]),
])
def test_field_errors_name_the_field_and_the_reason(branches: Any, errors: list[tuple[str, str]]) -> None:
    manifest = parallel()
    manifest["spec"]["branches"] = branches
    assert refused(manifest) == errors


def test_children_have_knatives_names_and_wiring() -> None:
    par = stored(parallel(reply={"uri": "http://sink/"}))
    built = build.children(par)
    assert built.ingress["metadata"]["name"] == "p-kn-parallel"
    assert [c["metadata"]["name"] for c in built.branch_channels] == ["p-kn-parallel-0", "p-kn-parallel-1"]
    with_filter, without_filter = built.filter_subscriptions
    assert with_filter["metadata"]["name"] == "p-kn-parallel-filter-0"
    # A filter answers into the branch channel; no filter: the branch channel itself subscribes.
    assert with_filter["spec"] == {
        "channel": {**IMC, "name": "p-kn-parallel"},
        "subscriber": {"uri": "http://even-filter/"},
        "reply": {"ref": {**IMC, "name": "p-kn-parallel-0", "namespace": "ns1"}},
    }
    assert without_filter["spec"] == {
        "channel": {**IMC, "name": "p-kn-parallel"},
        "subscriber": {"ref": {**IMC, "name": "p-kn-parallel-1", "namespace": "ns1"}},
    }
    even, odd = built.subscriptions
    assert even["metadata"]["name"] == "p-kn-parallel-0"
    assert even["spec"] == {"channel": {**IMC, "name": "p-kn-parallel-0"}, "subscriber": {"uri": "http://even/"},
                            "reply": {"uri": "http://sink/"}}
    # A branch's own reply wins over the Parallel's; its delivery goes to its subscriber's Subscription.
    assert odd["spec"] == {"channel": {**IMC, "name": "p-kn-parallel-1"}, "subscriber": {"uri": "http://odd/"},
                           "reply": {"uri": "http://odd-reply/"}, "delivery": {"retry": 1}}


def test_status_lists_every_child_and_is_ready_once_all_are() -> None:
    par = stored(parallel())
    built = build.children(par)

    def observe(ready_status: str) -> dict[str, Any]:
        ingress = Observed(built.ingress, with_status(built.ingress, ready_status, "http://in/channels/ns1/p-kn-parallel"))
        channels = [Observed(c, with_status(c, ready_status, "http://x/")) for c in built.branch_channels]
        filters = [Observed(s, with_status(s, ready_status)) for s in built.filter_subscriptions]
        subs = [Observed(s, with_status(s, "True")) for s in built.subscriptions]
        return build.status(par, ingress, channels, filters, subs, NOW)

    ready = observe("True")
    assert ready_of({"status": ready}) == {"type": "Ready", "status": "True", "lastTransitionTime": NOW}
    assert ready["address"] == {"url": "http://in/channels/ns1/p-kn-parallel"}
    assert ready["ingressChannelStatus"]["channel"] == {**IMC, "name": "p-kn-parallel", "namespace": "ns1"}
    assert [sorted(b) for b in ready["branchStatuses"]] == [
        ["filterChannelStatus", "filterSubscriptionStatus", "subscriberSubscriptionStatus"]] * 2
    assert ready["branchStatuses"][1]["filterSubscriptionStatus"]["subscription"]["name"] == "p-kn-parallel-filter-1"
    assert ready["branchStatuses"][1]["subscriberSubscriptionStatus"]["subscription"]["name"] == "p-kn-parallel-1"
    # Parallel marks what is not ready False, as Knative's parallel_lifecycle.go does.
    not_ready = observe("False")
    conditions = {c["type"]: (c["status"], c.get("reason")) for c in not_ready["conditions"]}
    assert conditions["ChannelsReady"] == ("False", "ChannelsNotReady")
    assert conditions["SubscriptionsReady"] == ("False", "SubscriptionsNotReady")
    assert conditions["Ready"][0] == "False"


def test_before_the_ingress_channel_has_an_address_the_parallel_is_not_addressable() -> None:
    par = stored(parallel())
    built = build.children(par)
    status = build.status(par, Observed(built.ingress), [Observed(c) for c in built.branch_channels],
                          [Observed(s) for s in built.filter_subscriptions], [Observed(s) for s in built.subscriptions],
                          NOW)
    assert "address" not in status
    assert next(c for c in status["conditions"] if c["type"] == "Addressable")["reason"] == "emptyAddress"
