"""The ContainerSource reconciler: its SinkBinding and Deployment kept as the builder says, its status
from theirs.

Children are written with Writes.ensure_child (owned, so the garbage collector deletes them with the
source). The Deployment is created only once its binding has been reconciled (its status is the binding
generation's), so its first pod already finds its K_SINK rather than being replaced a moment later. The
pass reconciles SinkBindings before ContainerSources, so the status read back here is the binding's as
this round left it; a child just created is read in the next round.
"""

from __future__ import annotations

from typing import Any

from control.reconcilers.garbage import owned_by
from control.reconcilers.resources import containersource as build
from control.reconcilers.snapshot import Snapshot
from control.reconcilers.writes import Writes


async def _ensure(owner: dict[str, Any], want: dict[str, Any], snapshot: Snapshot, writes: Writes) -> build.Child:
    meta = want["metadata"]
    existing = snapshot.find(want["kind"], meta["namespace"], meta["name"])
    if existing is not None and not owned_by(existing, owner):
        return build.Child(meta["name"], foreign=True)
    return build.Child(meta["name"], await writes.ensure_child(owner, want, existing))


def _reconciled(obj: dict[str, Any] | None) -> bool:
    if obj is None:
        return False
    observed = (obj.get("status") or {}).get("observedGeneration")
    return observed is not None and observed == obj["metadata"].get("generation")


class ContainerSourceReconciler:
    kind = "ContainerSource"

    async def reconcile_all(self, sources: list[dict[str, Any]], snapshot: Snapshot, writes: Writes) -> None:
        for src in sources:
            binding = await _ensure(src, build.sink_binding(src), snapshot, writes)
            want = build.deployment(src)
            if snapshot.find("Deployment", want["metadata"]["namespace"], want["metadata"]["name"]) is None \
                    and not _reconciled(binding.stored):
                adapter = build.Child(want["metadata"]["name"])
            else:
                adapter = await _ensure(src, want, snapshot, writes)
            await writes.status(src, build.status(src, binding, adapter))
