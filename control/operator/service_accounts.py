"""The OIDC ServiceAccounts of senders (authentication-oidc enabled), as Knative creates them.

Every Trigger, Subscription and source that sends has an identity, `<name>-oidc-<group>-<kind>` in its
namespace (core/oidc.py `service_account_name`); the contract names it on the egress. On Kubernetes the
operator creates that ServiceAccount, owned by the object (so the cluster's garbage collector deletes
it with the object), labelled as Nerve's; the dispatcher and sources get tokens for it with the
TokenRequest API (core/kube_tokens.py).

After each contract the leader publishes, the ServiceAccounts are brought in line with it: the missing
ones created, labelled ones no egress names any more (the object deleted, or OIDC turned off) deleted,
so it does not depend on a garbage collector running. A failed write is retried after RETRY_S.
Needs `create` and `delete` on serviceaccounts (the chart's control ClusterRole).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from control.api import kinds
from core.contract import Contract, Egress

log = logging.getLogger("nerve.operator.serviceaccounts")
LABEL = "nerve.dev/oidc-identity-of"
"""On the ServiceAccounts the operator made: the kind of the object they are the identity of."""
RETRY_S = 30.0
Key = tuple[str, str]
"""(namespace, ServiceAccount name)."""


def wanted(contract: Contract) -> dict[Key, dict[str, Any]]:
    """The ServiceAccount each sending egress of the contract names, with its owner reference."""
    egresses: list[Egress] = [e for r in contract.resources for e in r.egresses]
    egresses += [s.egress for s in contract.sources]
    out: dict[Key, dict[str, Any]] = {}
    for egress in egresses:
        auth, ref = egress.auth, egress.reference
        if auth is None or not auth.service_account or not ref.uid:
            continue
        kind = kinds.lookup(ref.kind)
        if kind is None:
            continue
        out[(ref.namespace, auth.service_account)] = {
            "apiVersion": kind.api_version, "kind": kind.kind, "name": ref.name, "uid": ref.uid,
            "controller": True, "blockOwnerDeletion": False}
    return out


class OidcServiceAccounts:
    def __init__(self, api_client: client.ApiClient) -> None:
        self._api: Any = client.CoreV1Api(api_client)
        self._known: set[Key] | None = None
        """The labelled ServiceAccounts that exist (listed once, then kept by this leader's writes)."""
        self._latest: Contract | None = None
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def follow(self, contract: Contract) -> None:
        """A contract was published: sync to it in the background (publishing never waits on this)."""
        self._latest = contract
        self._changed.set()
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="oidc-service-accounts")

    async def _run(self) -> None:
        failed = False
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), RETRY_S if failed else None)
            self._changed.clear()
            if self._latest is None:
                continue
            try:
                failed = not await asyncio.to_thread(self.sync, self._latest)
            except Exception:  # the next contract, or the retry, tries again
                log.exception("OIDC ServiceAccounts not synced")
                failed = True

    def sync(self, contract: Contract) -> bool:
        """Create and delete ServiceAccounts to match `contract` (blocking); False when a write failed."""
        if self._known is None:
            listed = self._api.list_service_account_for_all_namespaces(label_selector=LABEL)
            self._known = {(sa.metadata.namespace, sa.metadata.name) for sa in listed.items}
        ok = True
        want = wanted(contract)
        for (namespace, name), owner in want.items():
            if (namespace, name) in self._known:
                continue
            body = {"apiVersion": "v1", "kind": "ServiceAccount",
                    "metadata": {"name": name, "namespace": namespace, "labels": {LABEL: owner["kind"]},
                                 "ownerReferences": [owner]}}
            try:
                self._api.create_namespaced_service_account(namespace, body)
                log.info("created ServiceAccount %s/%s, the OIDC identity of %s %s", namespace, name,
                         owner["kind"], owner["name"])
            except ApiException as exc:
                if exc.status != 409:  # 409: it exists (made by an earlier leader)
                    log.warning("cannot create ServiceAccount %s/%s: %s %s", namespace, name, exc.status, exc.reason)
                    ok = False
                    continue
            self._known.add((namespace, name))
        for namespace, name in sorted(self._known - set(want)):
            try:
                self._api.delete_namespaced_service_account(name, namespace)
                log.info("deleted ServiceAccount %s/%s: no object sends as it any more", namespace, name)
            except ApiException as exc:
                if exc.status != 404:
                    log.warning("cannot delete ServiceAccount %s/%s: %s %s", namespace, name, exc.status, exc.reason)
                    ok = False
                    continue
            self._known.discard((namespace, name))
        return ok

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
