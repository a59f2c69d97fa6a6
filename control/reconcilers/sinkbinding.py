"""The SinkBinding reconciler: resolve its sink and check its subject, into its status.

A binding has no data-plane entry and no clean-up: what it does happens when a local workload starts
(resources/sinkbinding.py `injected_env`, asked by the workloads reconciler), so a binding reconciled
earlier in the same pass is what the workloads see.
"""

from __future__ import annotations

from typing import Any

from control.reconcilers.resources import sinkbinding as build
from control.reconcilers.snapshot import Snapshot
from control.reconcilers.writes import Writes
from control.resolver import Resolver


class SinkBindingReconciler:
    kind = "SinkBinding"

    async def reconcile_all(self, bindings: list[dict[str, Any]], snapshot: Snapshot, resolver: Resolver,
                            writes: Writes) -> None:
        for binding in bindings:
            await writes.status(binding, build.status(binding, snapshot, resolver))
