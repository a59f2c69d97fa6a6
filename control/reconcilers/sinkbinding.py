"""The SinkBinding reconciler: resolve its sink and check its subject, into its status.

A binding has no data-plane entry and no clean-up: what it does happens when a local workload makes a
pod (resources/sinkbinding.py `injected_env`, asked by the workloads reconciler, which runs first in a
round because Service refs resolve to the ports it gives pods). So when a binding's resolved sink
changes, another round follows at once: the workloads then see the K_SINK it injects now.
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
            before = build.binding_env(binding)
            await writes.status(binding, build.status(binding, snapshot, resolver))
            if build.binding_env(binding) != before:
                writes.again = True
