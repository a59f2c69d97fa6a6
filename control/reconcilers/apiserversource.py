"""The ApiServerSource reconciler: status and the `sources[]` entry; nothing to clean up on deletion
(the adapter stops when the contract no longer names the source).

On a cluster it also asks the API server whether the source's ServiceAccount may get, list and watch
what it names (`ClusterAccess.allowed`, a SubjectAccessReview each), as Knative's reconciler does before
it deploys an adapter (resources/apiserversource.py says what follows from the answers).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from control.reconcilers.resources import apiserversource as build
from control.reconcilers.snapshot import Snapshot
from control.reconcilers.writes import Writes
from control.resolver import Resolver
from core.contract import Source
from core.kube import service_account_groups, service_account_user

DEFAULT_SOURCE_URL = "http://127.0.0.1:8081"


@runtime_checkable
class ClusterAccess(Protocol):
    """What the reconciler asks of a Kubernetes API server (control/store/kubernetes.py provides it)."""

    @property
    def host(self) -> str:
        """The API server's URL: the `source` of every event, as Knative's controller gives its adapters."""
        ...

    async def allowed(self, user: str, groups: Sequence[str], *, namespace: str, verb: str, group: str,
                      resource: str) -> bool:
        """A SubjectAccessReview: may `user` (in `groups`) `verb` `resource` of API group `group` in `namespace`?"""
        ...


class ApiServerSourceReconciler:
    kind = "ApiServerSource"

    def __init__(self, *, source_url: str = "", watch_available: bool = False,
                 cluster: ClusterAccess | None = None) -> None:
        self.cluster = cluster
        """The API server the sources service watches (`--watch kubernetes`); None in embedded mode."""
        self.source_url = source_url or (cluster.host if cluster is not None else "") or DEFAULT_SOURCE_URL
        """The `source` of every event: the URL of the API server watched (the control API's when embedded)."""
        self.watch_available = watch_available or cluster is not None
        """Whether the sources service is handed the store (`nerve up`) or runs apart from it."""

    async def _permissions(self, source: dict[str, Any], snapshot: Snapshot) -> dict[str, Any] | None:
        if self.cluster is None:
            return None
        namespace = source["metadata"]["namespace"]
        user = service_account_user(namespace, build.service_account(source))
        if build.skips_permissions(source):
            return build.permissions_condition(user, [])
        groups = service_account_groups(namespace)
        checks = build.permission_checks(source, build.watched_namespaces(source, snapshot))
        denied = [check for check in checks
                  if not await self.cluster.allowed(user, groups, namespace=check.namespace, verb=check.verb,
                                                    group=check.group, resource=check.resource)]
        return build.permissions_condition(user, denied)

    async def reconcile_all(self, snapshot: Snapshot, resolver: Resolver, writes: Writes) -> list[Source]:
        out: list[Source] = []
        for source in snapshot.live(self.kind):
            built = build.build(source, snapshot, resolver, source_url=self.source_url,
                                watch_available=self.watch_available, cluster=self.cluster is not None,
                                permissions=await self._permissions(source, snapshot))
            await writes.status(source, built.status)
            if built.source is not None:
                out.append(built.source)
        return out
