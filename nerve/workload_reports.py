"""`nerve up`'s WorkloadReporter: what the local runner saw, written to the control store as the kubelet
writes it to the API server — the Pod's `status.containerStatuses[]` and `v1 Event` objects about the Pod
(reason Created, Started, BackOff, ...; a repeated one counts up, as kubelet's event aggregation does).

Each write is followed by a reconcile, so Deployments, Jobs and CronJobs see their Pods' new states; the
reconcile runs in the background, never inside the report (a report can come from inside a reconcile,
while the contract is being applied).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from control.store.base import ResourceStore
from core.contract import Workload
from core.errors import Conflict, NotFound
from core.hops import now_rfc3339
from sources.workloads.report import ContainerState

log = logging.getLogger("nerve.workloads")
COMPONENT = "kubelet"


class StoreReporter:
    def __init__(self) -> None:
        self._store: ResourceStore | None = None
        self._reconcile: Callable[[], Awaitable[Any]] | None = None
        self._pending: asyncio.Task[None] | None = None
        self._again = False

    def bind(self, store: ResourceStore, reconcile: Callable[[], Awaitable[Any]]) -> None:
        self._store, self._reconcile = store, reconcile

    async def close(self) -> None:
        self._store = None
        if self._pending is not None:
            self._pending.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pending
            self._pending = None

    async def container_state(self, workload: Workload, state: ContainerState) -> None:
        store = self._store
        if store is None:
            return
        ref = workload.reference
        for _ in range(10):  # read, merge, write: retried when a reconcile wrote the Pod in between
            pod = await store.get("Pod", ref.namespace, ref.name)
            if pod is None or pod["metadata"].get("uid") != ref.uid:
                return
            status = dict(pod.get("status") or {})
            entries = [s for s in status.get("containerStatuses") or [] if s.get("name") != workload.container]
            entry = state.to_status()
            entry["image"] = _image(pod, workload.container)
            order = [c["name"] for c in pod["spec"].get("containers") or []]
            status["containerStatuses"] = sorted([*entries, entry], key=lambda s: _index(order, s.get("name")))
            if state.state == "running" and "startTime" not in status:
                status["startTime"] = state.started_at
            try:
                await store.update_status({**pod, "status": status})
            except Conflict:
                continue
            except NotFound:
                return
            break
        self._schedule()

    async def event(self, workload: Workload, reason: str, message: str, type_: str = "Normal") -> None:
        store = self._store
        if store is None:
            return
        ref = workload.reference
        digest = hashlib.sha256(f"{ref.uid}/{reason}/{message}".encode()).hexdigest()[:16]
        name = f"{ref.name}.{digest}"
        now = now_rfc3339()
        for _ in range(10):
            old = await store.get("Event", ref.namespace, name)
            try:
                if old is None:
                    await store.create({
                        "apiVersion": "v1", "kind": "Event",
                        "metadata": {"name": name, "namespace": ref.namespace,
                                     # The Event goes with its Pod (Kubernetes expires them after an hour).
                                     "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": ref.name,
                                                          "uid": ref.uid}]},
                        "involvedObject": {"apiVersion": "v1", "kind": "Pod", "namespace": ref.namespace,
                                           "name": ref.name, "uid": ref.uid,
                                           "fieldPath": f"spec.containers{{{workload.container}}}"},
                        "reason": reason, "message": message, "type": type_, "count": 1,
                        "firstTimestamp": now, "lastTimestamp": now,
                        "source": {"component": COMPONENT, "host": "localhost"},
                        "reportingComponent": COMPONENT, "reportingInstance": "localhost",
                    })
                else:
                    await store.update({**old, "count": int(old.get("count") or 1) + 1, "lastTimestamp": now})
            except Conflict:
                continue
            except NotFound:
                return
            return

    def _schedule(self) -> None:
        """One reconcile at a time; reports that come meanwhile make one more after it."""
        if self._pending is not None and not self._pending.done():
            self._again = True
            return
        self._pending = asyncio.create_task(self._run(), name="workload-report-reconcile")

    async def _run(self) -> None:
        while True:
            self._again = False
            if self._reconcile is None or self._store is None:
                return
            try:
                await self._reconcile()
            except Exception:  # the periodic resync tries again
                log.warning("reconcile after a workload report failed", exc_info=True)
            if not self._again:
                return


def _image(pod: dict[str, Any], container: str) -> str:
    for c in pod["spec"].get("containers") or []:
        if c.get("name") == container:
            return str(c.get("image") or "")
    return ""


def _index(order: list[str], name: Any) -> int:
    return order.index(name) if name in order else len(order)
