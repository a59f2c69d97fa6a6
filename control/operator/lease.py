"""Leader election on a `coordination.k8s.io/v1` Lease: one control replica reconciles, the others wait.

The rules are client-go's (k8s.io/client-go/tools/leaderelection), the facts that carry over:

- a candidate takes the Lease when nobody holds it (`holderIdentity` empty: released) or when its record
  (holder, renewTime) has not changed for `leaseDurationSeconds` *as this candidate observed it*: expiry is
  judged on the local monotonic clock since the record was first seen, never by comparing the holder's
  renewTime with this machine's clock, so clock skew between nodes cannot make two leaders;
- every write is a replace carrying the resourceVersion read, so of two candidates taking an expired Lease
  at once one gets a Conflict and stays a standby;
- the leader renews every `renew_every_s`; one that cannot renew for `renew_deadline_s` (below the
  duration, so it stops before anyone may take over) has lost the Lease and stops leading;
- on a clean shutdown the leader releases the Lease (holder emptied, duration 1s), so a standby takes
  over at its next attempt rather than after the whole duration.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

log = logging.getLogger("nerve.operator.lease")


def _now() -> str:
    """A MicroTime, as a Lease's acquireTime and renewTime are."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True, slots=True)
class LeaseSettings:
    namespace: str
    name: str
    identity: str
    duration_s: float = 15.0
    renew_every_s: float = 2.0

    @property
    def renew_deadline_s(self) -> float:
        """How long a leader keeps leading without a successful renewal: two thirds of the duration (client-go's
        defaults are 15s and 10s), and at least two attempts."""
        return max(self.duration_s * 2 / 3, self.renew_every_s * 2)


class LeaderElector:
    def __init__(self, api_client: client.ApiClient, settings: LeaseSettings) -> None:
        # Any: bodies are plain dicts (a Lease's MicroTimes as written), which the typed signatures do not admit.
        self._api: Any = client.CoordinationV1Api(api_client)
        self._settings = settings
        self.leading = asyncio.Event()
        """Set while this replica holds the Lease."""
        self.lost = asyncio.Event()
        """Set when this replica led and could not renew in time: it must stop acting as the leader."""
        self._observed: tuple[Any, Any] | None = None
        self._observed_at = 0.0
        self._renewed_at = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="leader-election")

    async def stop(self) -> None:
        """Stop campaigning and, when leading, release the Lease."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.leading.is_set():
            self.leading.clear()
            try:
                await asyncio.to_thread(self._release)
                log.info("released Lease %s/%s", self._settings.namespace, self._settings.name)
            except Exception as exc:  # noqa: BLE001 - the standby then waits for the Lease to expire
                log.warning("could not release Lease %s: %s", self._settings.name, exc)

    async def _run(self) -> None:
        s = self._settings
        while True:
            try:
                held = await asyncio.to_thread(self._try_acquire_or_renew)
            except Exception as exc:  # noqa: BLE001 - the API server away: try again, and judge the deadline
                log.warning("Lease %s/%s: %s", s.namespace, s.name, exc)
                held = False
            now = time.monotonic()
            if held:
                self._renewed_at = now
                if not self.leading.is_set():
                    log.info("%s leads (Lease %s/%s)", s.identity, s.namespace, s.name)
                    self.leading.set()
            elif self.leading.is_set() and now - self._renewed_at > s.renew_deadline_s:
                log.error("%s lost the Lease %s/%s (not renewed for %.1fs)", s.identity, s.namespace, s.name,
                          now - self._renewed_at)
                self.leading.clear()
                self.lost.set()
                return
            await asyncio.sleep(s.renew_every_s)

    def _spec(self, acquire: bool, transitions: int) -> dict[str, Any]:
        s = self._settings
        now = _now()
        spec: dict[str, Any] = {"holderIdentity": s.identity, "leaseDurationSeconds": max(1, round(s.duration_s)),
                                "renewTime": now, "leaseTransitions": transitions}
        if acquire:
            spec["acquireTime"] = now
        return spec

    def _try_acquire_or_renew(self) -> bool:
        """One attempt (blocking; run in a thread): True when this replica holds the Lease after it."""
        s = self._settings
        try:
            lease = self._api.read_namespaced_lease(s.name, s.namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise
            body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": s.name, "namespace": s.namespace}, "spec": self._spec(True, 0)}
            try:
                self._api.create_namespaced_lease(s.namespace, body)
            except ApiException as conflict:
                if conflict.status == 409:
                    return False  # another candidate created it first
                raise
            return True
        spec = lease.spec
        holder = spec.holder_identity or ""
        record = (holder, spec.renew_time)
        now = time.monotonic()
        if record != self._observed:
            self._observed, self._observed_at = record, now
        if holder == s.identity:
            acquire, transitions = False, spec.lease_transitions or 0
        else:
            duration = spec.lease_duration_seconds or s.duration_s
            if holder and now - self._observed_at < duration:
                return False  # held, and renewed within the duration as far as this replica has seen
            acquire, transitions = True, (spec.lease_transitions or 0) + 1
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": s.name, "namespace": s.namespace,
                             "resourceVersion": lease.metadata.resource_version},
                "spec": {**({} if acquire else {"acquireTime": _micro(spec.acquire_time)}),
                         **self._spec(acquire, transitions)}}
        try:
            self._api.replace_namespaced_lease(s.name, s.namespace, body)
        except ApiException as exc:
            if exc.status == 409:
                return False  # someone else wrote it since the read
            raise
        if acquire:
            log.info("%s took the Lease %s/%s from %r", s.identity, s.namespace, s.name, holder or None)
        return True

    def _release(self) -> None:
        s = self._settings
        lease = self._api.read_namespaced_lease(s.name, s.namespace)
        if (lease.spec.holder_identity or "") != s.identity:
            return
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": s.name, "namespace": s.namespace,
                             "resourceVersion": lease.metadata.resource_version},
                "spec": {"holderIdentity": None, "leaseDurationSeconds": 1, "renewTime": _now(),
                         "leaseTransitions": lease.spec.lease_transitions or 0}}
        self._api.replace_namespaced_lease(s.name, s.namespace, body)


def _micro(value: datetime | None) -> str | None:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ") if value is not None else None
