"""What an EventType's reconcile computes: its status from its reference, and the EventTypes a source registers.

Status (`ev:pkg/reconciler/eventtype/eventtype.go`, `eventtype_lifecycle.go`): the condition
`ReferenceExists` — True with reason `ReferenceNotSet` when there is no `spec.reference`, False with
`ResourceDoesNotExist` when the referenced object is not there, Unknown with `ReferenceGetFailed` when it
names a kind Nerve does not know. Nerve adds `ReferenceReady` for a referenced Broker or channel: False
with `BrokerIsNotReady` / `ChannelIsNotReady` while it is not Ready (the reason the registry's docs and
the old v1alpha1 EventType's `BrokerReady` condition show), so the registry says which entries a Trigger
can consume from now.

Registration (`ev:pkg/reconciler/source/duck/duck.go`, `resources/eventtype.go`): a source whose
`spec.sink.ref` names a Broker or a channel, with `status.ceAttributes`, registers one EventType per
ceAttributes entry, named hex md5(type + source + schema + source uid), labelled
`eventing.knative.dev/sourceName`, owned by the source, referencing the sink.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from control.api import eventtype, kinds
from control.api.meta import mapping
from control.conditions import cond, is_ready, ready_of, with_ready
from control.reconcilers.snapshot import Snapshot

SOURCE_NAME_LABEL = "eventing.knative.dev/sourceName"
_CHANNELS = frozenset({"Channel", *(kind.kind for kind in kinds.CHANNEL_KINDS)})


def _referenced_kind(ref: dict[str, Any]) -> kinds.Kind | None:
    """The kind a reference names, by group and kind, at any version (the seed's sinks say v1alpha1)."""
    kind = kinds.lookup(str(ref.get("kind") or ""))
    if kind is None or kind.kind != ref.get("kind"):
        return None
    group = str(ref.get("apiVersion") or "").rpartition("/")[0]
    return kind if group == kind.group else None


def reference_conditions(et: dict[str, Any], snapshot: Snapshot) -> list[dict[str, Any]]:
    ref = mapping(mapping(et.get("spec")).get("reference"))
    if not ref.get("name"):
        return [cond("ReferenceExists", True, "ReferenceNotSet", "spec.reference is not set")]
    kind = _referenced_kind(ref)
    where = f"{ref.get('apiVersion')}/{ref.get('kind')} {ref['name']}"
    if kind is None:
        return [cond("ReferenceExists", None, "ReferenceGetFailed", f"{where}: not a kind Nerve knows")]
    namespace = ref.get("namespace") or et["metadata"]["namespace"]
    target = snapshot.get(kind.kind, namespace, str(ref["name"]))
    if target is None:
        return [cond("ReferenceExists", False, "ResourceDoesNotExist", "Resource in spec.reference does not exist")]
    conditions = [cond("ReferenceExists", True)]
    if kind.kind == "Broker" or kind.kind in _CHANNELS:
        if is_ready(target):
            conditions.append(cond("ReferenceReady", True))
        else:
            reason = "BrokerIsNotReady" if kind.kind == "Broker" else "ChannelIsNotReady"
            why = (ready_of(target) or {}).get("message") or "it has no Ready condition yet"
            conditions.append(cond("ReferenceReady", False, reason, f"{kind.kind} {ref['name']} is not Ready: {why}"))
    return conditions


def status(et: dict[str, Any], snapshot: Snapshot, now: str | None = None) -> dict[str, Any]:
    conditions = reference_conditions(et, snapshot)
    built = with_ready(conditions, mapping(et.get("status")).get("conditions"), now)
    # knative.dev/pkg's MarkTrueWithReason: a happy condition set True with a reason carries it to Ready
    # (`kubectl get eventtypes` shows REASON ReferenceNotSet for an EventType without a reference).
    exists = next(c for c in built if c["type"] == "ReferenceExists")
    ready = next(c for c in built if c["type"] == "Ready")
    if ready["status"] == "True" and exists.get("reason"):
        ready["reason"], ready["message"] = exists["reason"], exists.get("message", "")
    return {"observedGeneration": et["metadata"].get("generation", 1), "conditions": built}


# ------------------------------------------------------------------------------ registration by sources


@dataclass(frozen=True, slots=True)
class Registration:
    """The EventTypes one source should own: `wanted` to ensure, by name (every other one it owns goes)."""

    wanted: dict[str, dict[str, Any]]


def _sink_reference(source: dict[str, Any]) -> dict[str, Any] | None:
    """The sink ref when it names a Broker or a channel (the addressables a registry entry is consumed at)."""
    ref = mapping(mapping(mapping(source.get("spec")).get("sink")).get("ref"))
    if ref.get("kind") not in ("Broker", *_CHANNELS) or not ref.get("name"):
        return None
    namespace = source["metadata"]["namespace"]
    return {"apiVersion": ref.get("apiVersion"), "kind": ref["kind"], "name": ref["name"],
            "namespace": ref.get("namespace") or namespace}


def registered_name(ce_type: str, ce_source: str, schema: str, source_uid: str) -> str:
    """Knative's name: hex md5(type + source + schema + the source's uid) (always a DNS-1123 name)."""
    return hashlib.md5((ce_type + ce_source + schema + source_uid).encode(), usedforsecurity=False).hexdigest()


def registration(source: dict[str, Any]) -> Registration:
    meta = source["metadata"]
    reference = _sink_reference(source)
    attributes = mapping(source.get("status")).get("ceAttributes") or []
    if reference is None or not isinstance(attributes, list):
        return Registration({})
    wanted: dict[str, dict[str, Any]] = {}
    for attrs in attributes:
        if not isinstance(attrs, dict) or not attrs.get("type"):
            continue
        ce_type, ce_source = str(attrs["type"]), str(attrs.get("source") or "")
        name = registered_name(ce_type, ce_source, "", str(meta["uid"]))
        # Built as Knative builds it (a v1beta2 EventType), then stored in Nerve's v1beta3 shape.
        manifest: dict[str, Any] = {
            "apiVersion": eventtype.OLDER_VERSIONS[0], "kind": "EventType",
            "metadata": {"name": name, "namespace": meta["namespace"],
                         "labels": {SOURCE_NAME_LABEL: meta["name"]}},
            "spec": {"type": ce_type, "source": ce_source, "reference": dict(reference)},
        }
        eventtype.convert_eventtype(manifest)
        wanted[name] = manifest
    return Registration(wanted)
