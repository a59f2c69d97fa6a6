"""The ContainerSource reconciler: its SinkBinding and Deployment kept as the builder says, its status
from theirs.

Children are written with Writes.ensure_child (owned, so the garbage collector deletes them with the
source). The Deployment is created only once its binding has been reconciled (its status is the binding
generation's), so its first pod already finds its K_SINK rather than being replaced a moment later. The
pass reconciles SinkBindings before ContainerSources, so the status read back here is the binding's as
this round left it; a child just created is read in the next round.

On a cluster (`on_cluster`) the API server defaults what it stores (a Deployment gains a strategy, a
revisionHistoryLimit, each container a terminationMessagePath, ...), so the stored Deployment is compared
with the wanted one as Knative's reconciler compares them (equality.Semantic.DeepDerivative: every field
the wanted one sets, the stored one has the same), and the wanted one carries what the SinkBinding binds
(resources/sinkbinding.py `bound_object`): Nerve has no admission webhook injecting it on each write, so
without it an update here would take K_SINK away and the binding would put it back, every pass. The
cluster's garbage collector deletes both children with the source (their ownerReferences); no
kube-controller-manager, no Deployment status (ReceiveAdapterReady stays Unknown).
"""

from __future__ import annotations

from typing import Any

from control.reconcilers.garbage import owned_by
from control.reconcilers.resources import containersource as build
from control.reconcilers.resources import sinkbinding
from control.reconcilers.snapshot import Snapshot
from control.reconcilers.writes import Writes


async def _ensure(owner: dict[str, Any], want: dict[str, Any], snapshot: Snapshot, writes: Writes, *,
                  on_cluster: bool = False) -> build.Child:
    meta = want["metadata"]
    existing = snapshot.find(want["kind"], meta["namespace"], meta["name"])
    if existing is not None and not owned_by(existing, owner):
        return build.Child(meta["name"], foreign=True)
    if on_cluster and existing is not None and build.derivative(want.get("spec"), existing.get("spec")) and \
            build.derivative(_labelled(want), _labelled(existing)):
        return build.Child(meta["name"], existing)
    return build.Child(meta["name"], await writes.ensure_child(owner, want, existing))


def _labelled(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj["metadata"]
    return {"labels": meta.get("labels") or {}, "annotations": meta.get("annotations") or {}}


def _reconciled(obj: dict[str, Any] | None) -> bool:
    if obj is None:
        return False
    observed = (obj.get("status") or {}).get("observedGeneration")
    return observed is not None and observed == obj["metadata"].get("generation")


class ContainerSourceReconciler:
    kind = "ContainerSource"

    def __init__(self, *, on_cluster: bool = False) -> None:
        self._on_cluster = on_cluster

    async def reconcile_all(self, sources: list[dict[str, Any]], snapshot: Snapshot, writes: Writes) -> None:
        for src in sources:
            binding = await _ensure(src, build.sink_binding(src), snapshot, writes, on_cluster=self._on_cluster)
            want = build.deployment(src)
            if self._on_cluster:
                want = sinkbinding.bound_object(want, snapshot)
            if snapshot.find("Deployment", want["metadata"]["namespace"], want["metadata"]["name"]) is None \
                    and not _reconciled(binding.stored):
                adapter = build.Child(want["metadata"]["name"])
            else:
                adapter = await _ensure(src, want, snapshot, writes, on_cluster=self._on_cluster)
            await writes.status(src, build.status(src, binding, adapter))
