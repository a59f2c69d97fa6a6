"""The Parallel reconciler: its Channels and Subscriptions kept as the builder says, its status from theirs."""

from __future__ import annotations

from typing import Any

from control.reconcilers import flows
from control.reconcilers.resources import parallel as build
from control.reconcilers.snapshot import Snapshot
from control.reconcilers.writes import Writes


class ParallelReconciler:
    kind = "Parallel"

    async def reconcile(self, par: dict[str, Any], snapshot: Snapshot, writes: Writes) -> None:
        built = build.children(par)
        ingress = await flows.ensure(par, built.ingress, snapshot, writes)
        channels = [await flows.ensure(par, c, snapshot, writes) for c in built.branch_channels]
        filters = [await flows.ensure(par, s, snapshot, writes) for s in built.filter_subscriptions]
        subscriptions = [await flows.ensure(par, s, snapshot, writes) for s in built.subscriptions]
        await flows.remove_unwanted(par, built.all(), snapshot, writes)
        await writes.status(par, build.status(par, ingress, channels, filters, subscriptions))
