"""A pass's plain Triggers share one build of their conditions (resources/trigger.py `Shared`): each Trigger
must get the status and egress `build` makes of it on its own, and conditions of its own (copies)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from control import conditions as conditions_module
from control.reconcilers.resources import broker as broker_build
from control.reconcilers.resources import trigger as trigger_build
from control.reconcilers.resources.broker import TopicOutcome
from control.reconcilers.snapshot import Snapshot
from control.resolver import Resolver
from tests.unit.test_reconcile_builders import DEFAULTS, NOW, SETTINGS, meta, ready_broker


def trigger(name: str, subscriber: Any, status: dict[str, Any] | None = None, annotations: dict[str, str] | None = None,
            **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger",
            "metadata": meta(name, **({"annotations": annotations} if annotations else {})),
            "spec": {"broker": "b", "subscriber": subscriber, **spec}, "status": status or {}}


def not_ready_broker() -> tuple[dict[str, Any], Any]:
    b, entry = ready_broker()
    where = broker_build.placement(b, Snapshot(), SETTINGS, DEFAULTS)
    assert where is not None
    b["status"] = broker_build.status(b, where, TopicOutcome(False, "TopicNotReady", "down"),
                                      Resolver(Snapshot(), ""), SETTINGS, NOW)
    return b, entry


DEPENDENCY = json.dumps({"apiVersion": "sources.knative.dev/v1", "kind": "PingSource", "name": "p"})
OLD = {"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2020-01-01T00:00:00Z"}]}

TRIGGERS = [
    trigger("plain", {"uri": "http://sub/a"}),
    trigger("plain-ca", {"uri": "https://sub/a", "CACerts": "PEM"}),
    trigger("plain-delivery", {"uri": "http://sub/a"}, delivery={"retry": 3, "backoffDelay": "PT1S"}),
    trigger("plain-filter", {"uri": "http://sub/a"}, filter={"attributes": {"type": "x"}},
            annotations={"kafka.eventing.knative.dev/delivery.order": "ordered"}),
    trigger("dead-letter", {"uri": "http://sub/a"}, delivery={"deadLetterSink": {"uri": "http://dls/"}}),
    trigger("ref", {"ref": {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "name": "nope"}}),
    trigger("no-uri", {}),
    trigger("empty-uri", {"uri": ""}),
    trigger("dependency", {"uri": "http://sub/a"}, annotations={"knative.dev/dependency": DEPENDENCY}),
    trigger("with-conditions", {"uri": "http://sub/a"}, status=OLD),
]


@pytest.mark.parametrize("broker_case", ["ready", "not ready", "none", "ready, no entry", "dead letter on broker",
                                         "delivery on broker"])
def test_shared_conditions_build_what_each_trigger_builds_alone(broker_case: str,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(conditions_module, "now_rfc3339", lambda: NOW)  # both ways stamp the same time
    if broker_case == "not ready":
        b, entry = not_ready_broker()
    elif broker_case == "none":
        b, entry = None, None
    elif broker_case == "dead letter on broker":
        b, entry = ready_broker(delivery={"deadLetterSink": {"uri": "http://dls/"}})
    elif broker_case == "delivery on broker":
        b, entry = ready_broker(delivery={"retry": 2, "timeout": "PT2S", "backoffPolicy": "linear"})
    else:
        b, entry = ready_broker()
        if broker_case == "ready, no entry":
            entry = None
    resolver = Resolver(Snapshot(), "")
    shared = trigger_build.Shared()
    for _ in range(2):  # the second round takes what the first kept
        for t in TRIGGERS:
            alone = trigger_build.build(t, b, entry, resolver, SETTINGS)
            together = trigger_build.build(t, b, entry, resolver, SETTINGS, shared=shared)
            assert together == alone, t["metadata"]["name"]
            assert list(together.status) == list(alone.status)  # the keys' order too (what is stored)


def test_each_plain_trigger_has_conditions_of_its_own() -> None:
    b, entry = ready_broker()
    resolver, shared = Resolver(Snapshot(), ""), trigger_build.Shared()
    one, two = (trigger_build.build(trigger(name, {"uri": f"http://sub/{name}"}), b, entry, resolver, SETTINGS,
                                    shared=shared) for name in ("one", "two"))
    assert one.status["conditions"] == two.status["conditions"]
    assert one.status["conditions"] is not two.status["conditions"]
    assert all(a is not c for a, c in zip(one.status["conditions"], two.status["conditions"], strict=True))
    before = json.dumps(two.status)
    one.status["conditions"][0]["status"] = "False"
    one.status["conditions"].append({"type": "Extra", "status": "True"})
    one.status["observedGeneration"] = 2
    assert json.dumps(two.status) == before
    three = trigger_build.build(trigger("three", {"uri": "http://sub/three"}), b, entry, resolver, SETTINGS,
                                shared=shared)
    assert json.dumps(three.status["conditions"]) == json.dumps(two.status["conditions"])


def test_a_delivery_changed_in_place_gets_its_own_egress_config() -> None:
    b, entry = ready_broker(delivery={"retry": 2})
    resolver, shared = Resolver(Snapshot(), ""), trigger_build.Shared()
    first = trigger_build.build(trigger("one", {"uri": "http://sub/one"}), b, entry, resolver, SETTINGS, shared=shared)
    b["spec"]["delivery"]["retry"] = 7
    second = trigger_build.build(trigger("two", {"uri": "http://sub/two"}), b, entry, resolver, SETTINGS, shared=shared)
    assert first.egress is not None and second.egress is not None
    assert (first.egress.egress_config.retry, second.egress.egress_config.retry) == (2, 7)
