"""The workload controllers of embedded mode: CronJob -> Jobs, Job -> Pods, Deployment -> Pods, and each
Pod's status and `workloads[]` contract entries (resources/workloads.py computes them; here is the I/O).

Every runnable Pod owns a free loopback port, chosen here once and kept in its `status.port` (so a
restart of `nerve up` runs it on the same port), handed to its processes as `PORT`; a Service whose
selector matches the Pod resolves to it (control/resolver.py).

Statuses are read bottom-up in one pass: Pods first (their containerStatuses are what the runner
reported), then the Jobs that own them, the CronJobs that own those, and the Deployments. A controller
that made or deleted a child asks for another round (Writes.again), which reads the child back.

Without a local runner (separate services: `python -m control` with `python -m sources`) nothing runs:
each Pod says so (reason NoLocalRunner) rather than nothing happening silently, and CronJobs make no Jobs.
"""

from __future__ import annotations

import socket
from datetime import UTC, datetime
from typing import Any

from control.reconcilers.resources import workloads as build
from control.reconcilers.snapshot import Snapshot
from control.reconcilers.writes import Writes
from core.contract import Workload


def _free_port(used: set[int]) -> int:
    for _ in range(20):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((build.LOOPBACK, 0))
            port = int(sock.getsockname()[1])
        if port not in used:
            return port
    raise OSError("no free loopback port")


class WorkloadReconciler:
    def __init__(self, *, local: bool) -> None:
        self._local = local
        self._ports: dict[str, int] = {}
        """Ports by Pod uid: what a status write that lost a race still holds for the next round."""
        self.wake_at: datetime | None = None
        """When a CronJob ticks or a Job's back-off ends next: the controller reconciles again then."""

    async def reconcile_all(self, snapshot: Snapshot, writes: Writes, now: datetime | None = None) -> list[Workload]:
        now = now or datetime.now(UTC)
        wakes: list[datetime] = []
        workloads = await self._pods(snapshot, writes)
        for job in snapshot.live("Job"):
            plan = build.job_plan(job, build.owned(snapshot, "Pod", job), snapshot, now)
            await self._apply(job, "Pod", plan, snapshot, writes)
            if plan.wake_at is not None:
                wakes.append(plan.wake_at)
        # Without a runner nothing completes: a CronJob would pile up a pending Job every tick.
        for cj in snapshot.live("CronJob") if self._local else []:
            plan = build.cronjob_plan(cj, build.owned(snapshot, "Job", cj), now)
            await self._apply(cj, "Job", plan, snapshot, writes)
            if plan.wake_at is not None:
                wakes.append(plan.wake_at)
        for dep in snapshot.live("Deployment"):
            plan = build.deployment_plan(dep, build.owned(snapshot, "Pod", dep), snapshot)
            await self._apply(dep, "Pod", plan, snapshot, writes)
        self.wake_at = min(wakes, default=None)
        return workloads

    async def _apply(self, owner: dict[str, Any], child_kind: str, plan: build.Plan, snapshot: Snapshot,
                     writes: Writes) -> None:
        ns = owner["metadata"]["namespace"]
        for child in plan.wanted:
            if child["metadata"].get("uid"):
                continue  # a child that exists and is kept as it is
            existing = snapshot.find(child_kind, ns, child["metadata"]["name"])
            await writes.ensure_child(owner, child, existing)
        for child in plan.delete:
            await writes.delete(child)
        await writes.status(owner, plan.status)

    async def _pods(self, snapshot: Snapshot, writes: Writes) -> list[Workload]:
        pods = snapshot.live("Pod")
        used = {int(p.get("status", {}).get("port") or 0) for p in pods} | set(self._ports.values())
        live_uids = {p["metadata"]["uid"] for p in pods}
        self._ports = {uid: port for uid, port in self._ports.items() if uid in live_uids}
        out: list[Workload] = []
        for pod in pods:
            uid = pod["metadata"]["uid"]
            port = int(pod.get("status", {}).get("port") or 0) or self._ports.get(uid, 0)
            if not port and self._local and build.runnable(pod):
                port = _free_port(used)
                used.add(port)
            if port:
                self._ports[uid] = port
            await writes.status(pod, build.pod_status(pod, port, local=self._local))
            if self._local:
                out += build.pod_workloads(pod, port, snapshot)
        return out
