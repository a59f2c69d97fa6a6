"""The ContainerSource reconciler: its SinkBinding and Deployment kept as the builder says, its status
from theirs.

Children are written with Writes.ensure_child (owned, so the garbage collector deletes them with the
source). The binding is written before the Deployment, so the Deployment's first process already finds
its K_SINK. The pass reconciles SinkBindings before ContainerSources, so the status read back here is
the binding's as this round left it; a child just created is read in the next round.
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


class ContainerSourceReconciler:
    kind = "ContainerSource"

    async def reconcile_all(self, sources: list[dict[str, Any]], snapshot: Snapshot, writes: Writes) -> None:
        for src in sources:
            binding = await _ensure(src, build.sink_binding(src), snapshot, writes)
            adapter = await _ensure(src, build.deployment(src), snapshot, writes)
            await writes.status(src, build.status(src, binding, adapter))
