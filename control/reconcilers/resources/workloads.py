"""What the workload kinds produce in embedded mode (pure builders; the I/O is control/reconcilers/workloads.py)."""

from __future__ import annotations

from control.reconcilers.resources import sinkbinding
from control.reconcilers.snapshot import Snapshot


def injected_env(kind: str, namespace: str, name: str, labels: dict[str, str], snapshot: Snapshot) -> dict[str, str]:
    """The environment a binding injects into a workload's containers, as Knative's SinkBinding webhook
    mutates a subject's pod template: `K_SINK`, `K_CE_OVERRIDES` (and whatever a binding kind adds).

    `kind` is the subject's kind (Deployment, Job, Pod: a CronJob's Jobs are asked as Job), `namespace`
    and `name` its own, `labels` its `metadata.labels` (what a SinkBinding's `subject.selector` matches).
    The SinkBindings' matching and env are resources/sinkbinding.py's. What it returns is set over the template's
    env when a pod is made from the template: a Deployment whose injected env changes gets new pods (its
    pod-template-hash changes), a CronJob's next Job gets the new env, as on Kubernetes.
    """
    return sinkbinding.injected_env(kind, namespace, name, labels, snapshot)
