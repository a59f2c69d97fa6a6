"""The SinkBinding reconciler: resolve its sink and check its subject, into its status; on a cluster, also
patch the subjects it binds.

Embedded mode: a binding has no data-plane entry and no clean-up: what it does happens when a local
workload makes a pod (resources/sinkbinding.py `injected_env`, asked by the workloads reconciler, which
runs first in a round because Service refs resolve to the ports it gives pods). So when a binding's
resolved sink changes, another round follows at once: the workloads then see the K_SINK it injects now.

On a cluster (`cluster` given: the store is a Kubernetes API server) the workloads are the cluster's, so
after the statuses are written (the sinkUri each binding injects) every Deployment and CronJob whose pod
template is not what the bindings want is written back bound or unbound (resources/sinkbinding.py
`cluster_patches`, which says what is patched and what cannot be). A patch the API server refuses marks
the binding that wanted it SinkBindingAvailable=False, reason BindingFailed, as Knative's does.
"""

from __future__ import annotations

import logging
from typing import Any

from control.conditions import cond, with_ready
from control.reconcilers.resources import sinkbinding as build
from control.reconcilers.snapshot import Snapshot
from control.reconcilers.writes import Writes
from control.resolver import Resolver
from control.store.base import ResourceStore, key_of
from core.errors import Conflict, NerveError, NotFound

log = logging.getLogger("nerve.control")


def _failed(status: dict[str, Any], message: str) -> dict[str, Any]:
    conditions = [c for c in status.get("conditions") or [] if c.get("type") not in ("Ready", "SinkBindingAvailable")]
    conditions.append(cond("SinkBindingAvailable", False, "BindingFailed", message))
    return {**status, "conditions": with_ready(conditions, status.get("conditions"))}


class SinkBindingReconciler:
    kind = "SinkBinding"

    def __init__(self, *, cluster: ResourceStore | None = None, selection_mode: str = "exclusion") -> None:
        self._cluster = cluster
        """The API server's store, whose Deployments and CronJobs the bindings patch; None in embedded mode."""
        self._mode = selection_mode
        """Knative's SINK_BINDING_SELECTION_MODE: `exclusion` (the default) or `inclusion`."""

    async def reconcile_all(self, bindings: list[dict[str, Any]], snapshot: Snapshot, resolver: Resolver,
                            writes: Writes) -> None:
        if self._cluster is not None:
            await self._reconcile_on_cluster(self._cluster, bindings, snapshot, resolver, writes)
            return
        for binding in bindings:
            before = build.binding_env(binding)
            await writes.status(binding, build.status(binding, snapshot, resolver))
            if build.binding_env(binding) != before:
                writes.again = True

    async def _reconcile_on_cluster(self, store: ResourceStore, bindings: list[dict[str, Any]], snapshot: Snapshot,
                                    resolver: Resolver, writes: Writes) -> None:
        for binding in bindings:
            # Written first: the patches below inject the sinkUri this status carries.
            await writes.status(binding, build.cluster_status(binding, snapshot, resolver))
        failures: dict[str, str] = {}
        for stored, want in build.cluster_patches(snapshot, self._mode):
            meta = want["metadata"]
            try:
                written = await store.update(want)
            except (Conflict, NotFound):
                writes.again = True  # changed or gone since the snapshot: the next round reads it again
                continue
            except NerveError as exc:
                name = (meta.get("annotations") or {}).get(build.BOUND_ANNOTATION, "")
                log.warning("%s: binding refused: %s", "/".join(key_of(want)), exc)
                failures[name] = f'failed binding subject {meta["name"]}: {exc}'
                continue
            # The snapshot's copy too (no round is needed to read it back): a ContainerSource reconciled
            # later in this round compares its Deployment with what is stored now.
            stored.clear()
            stored.update(written)
        for binding in bindings:
            message = failures.get(binding["metadata"]["name"])
            if message is not None:
                await writes.status(binding, _failed(binding["status"], message))
