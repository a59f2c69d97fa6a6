"""What a ContainerSource produces: a Deployment running its template, a SinkBinding binding that Deployment
to the source's sink, and the source's status read back from both.

As `ev:pkg/reconciler/containersource/resources`: Deployment `<name>-deployment` (labels
`sources.knative.dev/source: container-source-controller` and `sources.knative.dev/containerSource:
<name>` on it, on its selector and on its pod template, over the template's own) and SinkBinding
`<name>-sinkbinding` with the source's `sink` and `ceOverrides` and subject `apps/v1 Deployment
<name>-deployment`. Both are owned by the source (ownerReferences), so deleting the source deletes them,
and the Deployment's processes stop. The containers get `K_SINK` and `K_CE_OVERRIDES` from that binding
when the workloads runner starts them (resources/sinkbinding.py), and `NAME` / `NAMESPACE` (the receive
adapter contract of `ev:pkg/adapter/v2/config.go`) unless the template sets them.

Status (`container_lifecycle.go`): `SinkBindingReady` from the binding's Ready, with its `sinkUri`;
`ReceiveAdapterReady` from the Deployment's `Available` condition; `Ready` when both are True.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass
from typing import Any

from control.api import kinds
from control.api.admission import AdmissionSettings
from control.conditions import cond, ready_of, with_ready

SOURCE_LABEL = "sources.knative.dev/containerSource"
CONTROLLER_LABEL = "sources.knative.dev/source"
CONTROLLER = "container-source-controller"
_LONGEST = 63  # a DNS-1123 label
_MD5_LEN = 32


def child_name(parent: str, suffix: str) -> str:
    """knative.dev/pkg/kmeta.ChildName: `parent + suffix`, with the parent shortened and hashed when the
    whole would pass 63 characters, so a long source name still gives a valid, stable child name."""
    if len(parent) + len(suffix) <= _LONGEST:
        return parent + suffix
    head = _LONGEST - len(suffix) - _MD5_LEN
    if head <= 0:
        return hashlib.md5((parent + suffix).encode(), usedforsecurity=False).hexdigest()
    return f"{parent[:head]}{hashlib.md5(parent.encode(), usedforsecurity=False).hexdigest()}{suffix}"


def deployment_name(name: str) -> str:
    return child_name(name, "-deployment")


def binding_name(name: str) -> str:
    return child_name(name, "-sinkbinding")


def labels(name: str) -> dict[str, str]:
    return {CONTROLLER_LABEL: CONTROLLER, SOURCE_LABEL: name}


def _with_adapter_env(container: dict[str, Any], name: str, namespace: str) -> dict[str, Any]:
    env = list(container.get("env") or [])
    have = {var.get("name") for var in env if isinstance(var, dict)}
    env += [{"name": key, "value": value} for key, value in (("NAME", name), ("NAMESPACE", namespace))
            if key not in have]
    return {**container, "env": env}


def deployment(src: dict[str, Any]) -> dict[str, Any]:
    meta = src["metadata"]
    name, namespace = meta["name"], meta["namespace"]
    template = copy.deepcopy(src["spec"]["template"])
    template_meta = template.setdefault("metadata", {})
    template_meta["labels"] = {**(template_meta.get("labels") or {}), **labels(name)}
    pod = template.setdefault("spec", {})
    pod["containers"] = [_with_adapter_env(c, name, namespace) for c in pod.get("containers") or []]
    child: dict[str, Any] = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": deployment_name(name), "namespace": namespace, "labels": labels(name)},
        "spec": {"selector": {"matchLabels": labels(name)}, "template": template},
    }
    # Written by the controller, not through admission: the Deployment kind's defaults (replicas,
    # restartPolicy, ...) are applied here, so the stored child looks like an applied one.
    kind = kinds.for_manifest("apps/v1", "Deployment")
    if kind is not None:
        kind.default(child, AdmissionSettings())
    return child


def sink_binding(src: dict[str, Any]) -> dict[str, Any]:
    meta, spec = src["metadata"], src["spec"]
    name, namespace = meta["name"], meta["namespace"]
    binding_spec: dict[str, Any] = {
        "subject": {"apiVersion": "apps/v1", "kind": "Deployment", "namespace": namespace,
                    "name": deployment_name(name)},
    }
    for key in ("sink", "ceOverrides"):
        if key in spec:
            binding_spec[key] = copy.deepcopy(spec[key])
    return {"apiVersion": kinds.SINK_BINDING.api_version, "kind": "SinkBinding",
            "metadata": {"name": binding_name(name), "namespace": namespace}, "spec": binding_spec}


def derivative(want: Any, have: Any) -> bool:
    """Knative's equality.Semantic.DeepDerivative: `have` agrees with every field `want` sets (an unset or
    empty map or list in `want` agrees with anything), so what the API server defaults is no difference."""
    if want is None or want == {} or want == []:
        return True
    if isinstance(want, dict):
        return isinstance(have, dict) and all(derivative(v, have.get(k)) for k, v in want.items())
    if isinstance(want, list):
        return isinstance(have, list) and len(want) == len(have) and all(map(derivative, want, have))
    return bool(want == have)


@dataclass(frozen=True, slots=True)
class Child:
    """One child as the pass left it: `stored` None while it is not there yet (or not the source's)."""

    name: str
    stored: dict[str, Any] | None = None
    foreign: bool = False
    """An object of that name exists that the source does not own: Nerve leaves it alone."""


def _binding_ready(binding: Child) -> dict[str, Any]:
    if binding.foreign:
        return cond("SinkBindingReady", False, "SinkBindingNotOwned",
                    f'SinkBinding "{binding.name}" exists and is not owned by this ContainerSource')
    ready = ready_of(binding.stored) if binding.stored is not None else None
    if ready is None:
        return cond("SinkBindingReady", None)
    status = {"True": True, "False": False}.get(str(ready.get("status")))
    return cond("SinkBindingReady", status, str(ready.get("reason") or ""), str(ready.get("message") or ""))


def _adapter_ready(adapter: Child) -> dict[str, Any]:
    if adapter.foreign:
        return cond("ReceiveAdapterReady", False, "DeploymentNotOwned",
                    f'Deployment "{adapter.name}" exists and is not owned by this ContainerSource')
    conditions = ((adapter.stored or {}).get("status") or {}).get("conditions") or []
    available = next((c for c in conditions if c.get("type") == "Available"), None)
    if available is None:
        return cond("ReceiveAdapterReady", None, "DeploymentUnavailable",
                    f"The Deployment '{adapter.name}' is unavailable.")
    status = {"True": True, "False": False}.get(str(available.get("status")))
    return cond("ReceiveAdapterReady", status, str(available.get("reason") or ""),
                str(available.get("message") or ""))


def status(src: dict[str, Any], binding: Child, adapter: Child, now: str | None = None) -> dict[str, Any]:
    """ContainerSourceStatus: the binding's SourceStatus (sinkUri), SinkBindingReady, ReceiveAdapterReady."""
    out: dict[str, Any] = {"observedGeneration": src["metadata"]["generation"]}
    bound = (binding.stored or {}).get("status") or {}
    if not binding.foreign and bound.get("sinkUri"):
        out["sinkUri"] = bound["sinkUri"]
    conditions = [_binding_ready(binding), _adapter_ready(adapter)]
    out["conditions"] = with_ready(conditions, (src.get("status") or {}).get("conditions"), now)
    return out
