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

import copy
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


# ------------------------------------------------------------------------------------- on a cluster
#
# On Kubernetes the cluster runs the workloads, so a binding is a patch of the subjects' pod templates
# on the API server, as Knative's psbinding reconciler patches them (`pkg:webhook/psbinding/reconciler.go`
# ReconcileSubject, with SinkBinding's Do/Undo): every container and init container loses any K_SINK,
# K_CE_OVERRIDES and K_CA_CERTS and gets the binding's K_SINK then K_CE_OVERRIDES appended. What the
# reconciler can patch and what it cannot:
#
# - a Deployment's `spec.template` (the cluster rolls out new Pods with the env);
# - a CronJob's `spec.jobTemplate.spec.template`, so every Job it makes from then on carries the env. A
#   binding whose subject is `batch/v1 Job` with a selector (the seed's heartbeat-cron) patches each CronJob
#   whose `spec.jobTemplate.metadata.labels` match: those are the labels its Jobs will have. A subject of
#   kind CronJob binds the CronJob itself (Knative has no CronJob subject: its duck needs spec.template);
# - not a Job or a Pod that exists: the API server refuses any change of a Job's `spec.template` and of a
#   Pod's containers. Knative binds those at admission, in its webhook, when they are created; here the
#   mutating webhook calls `bound_object` for that. The reconciler leaves them as they are.
#
# What Knative does not do and Nerve does: a subject that stops matching (relabelled, excluded, the
# binding's subject changed or the binding deleted) is unbound. Each patched object carries the annotation
# BOUND_ANNOTATION naming its binding, so the reconciler undoes only what it did, never a K_SINK a user
# wrote into a template. No finalizer is needed: a binding that is gone leaves annotated objects that name
# it, and the next pass unbinds them (Knative holds the binding with finalizer
# `sinkbindings.sources.knative.dev` until its Undo ran).

BOUND_ANNOTATION = "sinkbindings.sources.nerve.dev/bound"
INCLUDE_LABEL = "bindings.knative.dev/include"
CLUSTER_BINDABLE = ("Deployment", "Job", "CronJob", "Pod")
PATCHABLE = ("Deployment", "CronJob")
_POD_SPEC = {
    "Deployment": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
    "Pod": ("spec",),
}


def selected(labels: dict[str, str], ns_labels: dict[str, str], mode: str = "exclusion") -> bool:
    """Whether an object is considered for binding, as the webhook's object and namespace selectors say
    (`SINK_BINDING_SELECTION_MODE`). Inclusion: the object is labelled include=true, and so is its namespace,
    which Knative's reconciler labels itself when it carries neither label (`labelNamespace`)."""
    if mode == "inclusion":
        ns_ok = ns_labels.get(INCLUDE_LABEL) == "true" or (INCLUDE_LABEL not in ns_labels
                                                            and EXCLUDE_LABEL not in ns_labels)
        return labels.get(INCLUDE_LABEL) == "true" and ns_ok
    return not excluded(labels, ns_labels)


_DO_ORDER = ("K_SINK", "K_CA_CERTS", "K_CE_OVERRIDES")


def _containers_bound(containers: list[dict[str, Any]], env: dict[str, str]) -> list[dict[str, Any]]:
    out = []
    for container in containers:
        kept = [var for var in container.get("env") or [] if var.get("name") not in BOUND_VARIABLES]
        # Knative's order (K_SINK, K_CA_CERTS when the sink has CA certs, K_CE_OVERRIDES); an empty value is
        # no `value` at all once stored (Go's omitempty): written so, it compares equal.
        for key in sorted(env, key=_DO_ORDER.index):
            kept.append({"name": key, "value": env[key]} if env[key] else {"name": key})
        new = {**container, "env": kept}
        if not kept:
            new.pop("env")
        out.append(new)
    return out


def bound_pod_spec(pod_spec: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    """Knative's Do (`env`: K_SINK, K_CE_OVERRIDES in that order) or, with `env` empty, its Undo, on every
    container and init container of a pod spec."""
    out = dict(pod_spec)
    for key in ("initContainers", "containers"):
        if pod_spec.get(key):
            out[key] = _containers_bound(list(pod_spec[key]), env)
    return out


def _pod_spec(obj: dict[str, Any]) -> dict[str, Any] | None:
    node: Any = obj
    for key in _POD_SPEC.get(str(obj.get("kind")), ("-",)):
        node = node.get(key) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else None


def _with_pod_spec(obj: dict[str, Any], pod_spec: dict[str, Any]) -> dict[str, Any]:
    path = _POD_SPEC[str(obj["kind"])]
    out = copy.deepcopy(obj)
    node = out
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = pod_spec
    return out


def _match_labels(obj: dict[str, Any], subject_kind_: str | None) -> dict[str, str] | None:
    """The labels a binding's selector is matched against for `obj`, or None when its kind cannot match:
    a CronJob is matched as the Jobs it makes (jobTemplate labels) by a Job subject, as itself by a CronJob one."""
    kind = obj.get("kind")
    if kind == "CronJob" and subject_kind_ == "Job":
        return dict(((obj.get("spec") or {}).get("jobTemplate") or {}).get("metadata", {}).get("labels") or {})
    if kind == subject_kind_:
        return dict(obj["metadata"].get("labels") or {})
    return None


def binding_for(obj: dict[str, Any], snapshot: Snapshot, mode: str = "exclusion") -> dict[str, Any] | None:
    """The live SinkBinding (with a resolved sink) that binds `obj` on a cluster: the oldest of those whose
    subject names or selects it, when the object and its namespace are selected (`mode`)."""
    meta = obj["metadata"]
    namespace = str(meta.get("namespace") or "")
    ns = snapshot.find("Namespace", "", namespace)
    ns_labels = dict((ns or {}).get("metadata", {}).get("labels") or {})
    for binding in sorted(snapshot.live("SinkBinding"), key=_age_order):
        if binding["metadata"]["namespace"] != namespace or not binding_env(binding):
            continue
        subject = binding["spec"]["subject"]
        labels = _match_labels(obj, subject_kind(binding))
        if labels is None:
            continue
        if subject.get("name") is not None:
            # A named Job subject cannot name a CronJob's future Jobs: names bind only their own kind.
            if obj["kind"] != subject_kind(binding) or subject["name"] != meta["name"]:
                continue
        elif not LabelSelector.from_json(subject.get("selector")).matches(labels):
            continue
        if not selected({**(meta.get("labels") or {}), **labels}, ns_labels, mode):
            continue
        return binding
    return None


def bound_object(obj: dict[str, Any], snapshot: Snapshot, mode: str = "exclusion") -> dict[str, Any]:
    """`obj` as its binding wants it: bound (env set, BOUND_ANNOTATION naming the binding), unbound when it
    carries the annotation and no binding applies any more, else unchanged. Pure: what the reconciler
    writes for a Deployment or CronJob, and what an admission webhook would return for a Pod or Job."""
    pod_spec = _pod_spec(obj)
    if pod_spec is None:
        return obj
    binding = binding_for(obj, snapshot, mode)
    annotations = dict(obj["metadata"].get("annotations") or {})
    if binding is None and BOUND_ANNOTATION not in annotations:
        return obj
    env = binding_env(binding) if binding is not None else {}
    out = _with_pod_spec(obj, bound_pod_spec(pod_spec, env))
    if binding is not None:
        annotations[BOUND_ANNOTATION] = str(binding["metadata"]["name"])
    else:
        annotations.pop(BOUND_ANNOTATION, None)
    out["metadata"]["annotations"] = annotations
    if not annotations:
        out["metadata"].pop("annotations")
    return out


def cluster_patches(snapshot: Snapshot, mode: str = "exclusion") -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Every Deployment and CronJob whose stored form is not what the bindings want: (stored, to write)."""
    out = []
    for kind in PATCHABLE:
        for obj in snapshot.live(kind):
            want = bound_object(obj, snapshot, mode)
            if want != obj:
                out.append((obj, want))
    return out


def cluster_availability(binding: dict[str, Any], snapshot: Snapshot) -> dict[str, Any]:
    """SinkBindingAvailable on a cluster: the subject is a kind Nerve binds and, when named, exists."""
    subject, ns = binding["spec"]["subject"], binding["metadata"]["namespace"]
    kind = subject_kind(binding)
    if kind not in CLUSTER_BINDABLE:
        return cond("SinkBindingAvailable", False, "SubjectUnavailable",
                    f"{subject.get('apiVersion')}/{subject.get('kind')} is not a kind Nerve binds; subjects are "
                    "apps/v1 Deployment, batch/v1 Job, batch/v1 CronJob or v1 Pod")
    name = subject.get("name")
    if name is not None and snapshot.get(kind, ns, name) is None:
        found = kinds.for_manifest(str(subject["apiVersion"]), str(subject["kind"]))
        resource = found.resource if found is not None else str(subject["kind"]).lower()
        return cond("SinkBindingAvailable", False, "SubjectMissing", f'{resource} "{name}" not found')
    return cond("SinkBindingAvailable", True)


def cluster_status(binding: dict[str, Any], snapshot: Snapshot, resolver: Resolver,
                   now: str | None = None) -> dict[str, Any]:
    sink_provided, sink = resolve_sink_address(binding, resolver)
    return source_status(binding, [sink_provided, cluster_availability(binding, snapshot)], sink.url, now=now,
                         sink_ca_certs=sink.ca_certs)
