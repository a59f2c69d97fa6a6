"""The pass's check for Triggers naming a `knative.dev/dependency` looks for the annotation's key before
parsing it: the same answer as asking dependency_of of every live Trigger."""

from __future__ import annotations

import json
from typing import Any

from control.api import kinds
from control.api import source as source_api
from control.api.trigger import DEPENDENCY_ANNOTATION, dependency_of
from control.reconcilers.controller import _dependencies
from control.reconcilers.resources.trigger import dependency_view
from control.reconcilers.snapshot import Snapshot

PING = {"apiVersion": "sources.knative.dev/v1", "kind": "PingSource", "name": "ping"}


def trigger(name: str, annotations: Any = None, deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "ns"}
    if annotations is not None:
        meta["annotations"] = annotations
    if deleting:
        meta["deletionTimestamp"] = "2026-12-02T00:00:00Z"
    return {"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger", "metadata": meta, "spec": {"broker": "b"}}


def slow(snapshot: Snapshot) -> dict[tuple[str, str, str], tuple[Any, ...]]:
    """The check as it was: dependency_of of every live Trigger."""
    if not any(dependency_of(t) for t in snapshot.live("Trigger")):
        return {}
    return {(kind.kind, o["metadata"]["namespace"], o["metadata"]["name"]): dependency_view(o)
            for kind in kinds.in_category(source_api.CATEGORY) for o in snapshot.all(kind.kind)}


def test_the_key_first_check_answers_as_dependency_of_for_every_trigger() -> None:
    ping = {"apiVersion": "sources.knative.dev/v1", "kind": "PingSource",
            "metadata": {"name": "ping", "namespace": "ns", "generation": 2},
            "status": {"observedGeneration": 2, "conditions": [{"type": "Ready", "status": "True"}]}}
    cases = {
        "none": [trigger("a"), trigger("b", {"other": "x"}), trigger("c", "not a mapping")],
        "unparseable": [trigger("a"), trigger("b", {DEPENDENCY_ANNOTATION: "{not json"})],
        "not an object": [trigger("a", {DEPENDENCY_ANNOTATION: json.dumps(["PingSource"])})],
        "only one being deleted": [trigger("a"), trigger("b", {DEPENDENCY_ANNOTATION: json.dumps(PING)}, True)],
        "one live": [trigger("a"), trigger("b", {DEPENDENCY_ANNOTATION: json.dumps(PING)})],
    }
    answers = {}
    for name, triggers in cases.items():
        snapshot = Snapshot.of([*triggers, ping])
        answers[name] = _dependencies(snapshot)
        assert answers[name] == slow(snapshot), name
    assert answers["one live"] == {("PingSource", "ns", "ping"): (2, 2, "True", None, None)}
    assert all(answers[name] == {} for name in cases if name != "one live")
