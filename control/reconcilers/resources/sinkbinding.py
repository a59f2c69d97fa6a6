"""What a SinkBinding produces: its status, and the environment of every local workload it binds.

On Kubernetes, Knative's webhook rewrites the pod spec of each PodSpecable object the binding's subject
matches (`ev:pkg/apis/sources/v1/sinkbinding_lifecycle.go` Do/Undo): it removes any K_SINK,
K_CE_OVERRIDES and K_CA_CERTS, then appends `K_SINK` = the resolved sink and `K_CE_OVERRIDES` = the JSON
of `spec.ceOverrides` ("" when there are none) to every container, and `K_CA_CERTS` = the sink's
CACerts (`status.sinkCACerts`) when it has some. Embedded Nerve has no pod specs to
patch: the workloads runner asks `injected_env` for a workload's bound variables each time it starts one
of its processes, so a binding applied later reaches the next process started, and a deleted binding's
variables are gone from it ("Undo").

What is matched is the PodSpecable object itself, as the webhook sees it: a Deployment's or Job's own
`metadata.labels` (not its pod template's), a Pod's labels. The Jobs a CronJob creates carry
`spec.jobTemplate.metadata.labels`, so the seed's binding with subject `batch/v1 Job` and selector
`app: heartbeat-cron` binds every Job of the CronJob `heartbeat-cron`.

Selection is Knative's default `exclusion` mode: a workload labelled `bindings.knative.dev/exclude: "true"`,
or in a Namespace so labelled, is never bound. When several bindings match one workload, the oldest
(creationTimestamp, then name) wins each variable: Knative leaves that case undefined, Nerve keeps it stable.
"""

from __future__ import annotations

import json
from typing import Any

from control.api import kinds
from control.conditions import cond
from control.reconcilers.resources.source import resolve_sink_address, source_status
from control.reconcilers.snapshot import Snapshot
from control.resolver import Resolver
from core.selector import LabelSelector

EXCLUDE_LABEL = "bindings.knative.dev/exclude"
BOUND_VARIABLES = ("K_SINK", "K_CE_OVERRIDES", "K_CA_CERTS")
"""The variables a binding owns: a workload's own values of these are replaced by the binding's."""
BINDABLE = ("Deployment", "Job", "Pod")
"""The PodSpecable kinds embedded Nerve runs (a CronJob's Jobs are Jobs)."""


def subject_kind(binding: dict[str, Any]) -> str | None:
    """The stored kind the subject names (apiVersion and kind as Nerve serves them), or None."""
    subject = binding["spec"]["subject"]
    kind = kinds.for_manifest(str(subject.get("apiVersion")), str(subject.get("kind")))
    return kind.kind if kind is not None else None


def subject_matches(binding: dict[str, Any], kind: str, namespace: str, name: str, labels: dict[str, str]) -> bool:
    """Whether the binding's subject names this workload: same namespace, kind, and name or selector."""
    subject = binding["spec"]["subject"]
    if binding["metadata"]["namespace"] != namespace or subject_kind(binding) != kind:
        return False
    if subject.get("name") is not None:
        return bool(subject["name"] == name)
    return LabelSelector.from_json(subject.get("selector")).matches(labels)


def ce_overrides_json(spec: dict[str, Any]) -> str:
    """K_CE_OVERRIDES as Knative's json.Marshal writes it: compact, keys sorted, "" without ceOverrides."""
    overrides = spec.get("ceOverrides")
    if overrides is None:
        return ""
    out: dict[str, Any] = {}
    if overrides.get("extensions"):
        out["extensions"] = dict(overrides["extensions"])
    return json.dumps(out, separators=(",", ":"), sort_keys=True)


def binding_env(binding: dict[str, Any]) -> dict[str, str]:
    """What a binding injects; {} while its sink does not resolve (status.sinkUri unset)."""
    status = binding.get("status") or {}
    sink = status.get("sinkUri")
    if not sink:
        return {}
    env = {"K_SINK": str(sink), "K_CE_OVERRIDES": ce_overrides_json(binding["spec"])}
    if status.get("sinkCACerts"):
        env["K_CA_CERTS"] = str(status["sinkCACerts"])  # what the workload verifies an https sink with
    return env


def excluded(labels: dict[str, str], namespace_labels: dict[str, str]) -> bool:
    return labels.get(EXCLUDE_LABEL) == "true" or namespace_labels.get(EXCLUDE_LABEL) == "true"


def _age_order(obj: dict[str, Any]) -> tuple[str, str]:
    meta = obj["metadata"]
    return str(meta.get("creationTimestamp") or ""), str(meta["name"])


def injected_env(kind: str, namespace: str, name: str, labels: dict[str, str], snapshot: Snapshot) -> dict[str, str]:
    """The variables the live SinkBindings of `namespace` set on the workload `kind`/`name` with `labels`."""
    ns = snapshot.find("Namespace", "", namespace)
    if excluded(labels, dict((ns or {}).get("metadata", {}).get("labels") or {})):
        return {}
    bindings = sorted((b for b in snapshot.live("SinkBinding")
                       if subject_matches(b, kind, namespace, name, labels)), key=_age_order)
    for binding in bindings:
        env = binding_env(binding)
        if env:
            return env
    return {}


def _availability(binding: dict[str, Any], snapshot: Snapshot) -> dict[str, Any]:
    """SinkBindingAvailable: whether the subject is one Nerve can bind and, named, exists (psbinding's
    reconciler marks SubjectMissing otherwise)."""
    subject, ns = binding["spec"]["subject"], binding["metadata"]["namespace"]
    kind = subject_kind(binding)
    if kind not in BINDABLE:
        return cond("SinkBindingAvailable", False, "SubjectUnsupported",
                    f"{subject.get('apiVersion')}/{subject.get('kind')} is not a workload embedded Nerve runs; "
                    f"subjects are apps/v1 Deployment, batch/v1 Job or v1 Pod (a CronJob's Jobs: bind kind Job "
                    "with a selector on its spec.jobTemplate.metadata.labels)")
    name = subject.get("name")
    if name is not None and snapshot.get(kind, ns, name) is None:
        found = kinds.for_manifest(str(subject["apiVersion"]), str(subject["kind"]))
        resource = found.resource if found is not None else str(subject["kind"]).lower()
        return cond("SinkBindingAvailable", False, "SubjectMissing", f'{resource} "{name}" not found')
    return cond("SinkBindingAvailable", True)


def status(binding: dict[str, Any], snapshot: Snapshot, resolver: Resolver, now: str | None = None) -> dict[str, Any]:
    """SinkBindingStatus: SinkProvided and status.sinkUri from the sink, SinkBindingAvailable, Ready."""
    sink_provided, sink = resolve_sink_address(binding, resolver)
    return source_status(binding, [sink_provided, _availability(binding, snapshot)], sink.url, now=now,
                         sink_ca_certs=sink.ca_certs)
