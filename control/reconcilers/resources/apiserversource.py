"""What an ApiServerSource produces: its status and its `sources[]` entry of the contract.

Embedded mode watches Nerve's own resource store, so there is no adapter Deployment and no RBAC:
`Deployed` is True when the sources service runs in control's process (`nerve up`; the adapter is handed
the store), False with reason `ResourceWatchUnavailable` under separate services, whose sources process
has no store to watch; `SufficientPermissions` is always True (nothing restricts what a source sees).

`status.namespaces` is what the source watches, as Knative lists it: the source's own namespace when
`namespaceSelector` is unset, else every namespace whose labels match (`{}`: all of them). A namespace
exists for Nerve when a Namespace object names it or any stored object is in it; its labels are the
Namespace object's plus `kubernetes.io/metadata.name`, as the API server gives them.

The contract entry's config (read by sources/apiserver.py):
  {"source": <the API server URL>, "mode": "Reference"|"Resource",
   "resources": [{"apiVersion", "kind", "namespaced", "selector"}],   only kinds Nerve stores
   "owner": {"apiVersion", "kind"} | None, "filters": [...],
   "namespaces": [<own namespace>] | None,   None when a namespaceSelector decides
   "namespaceSelector": {...} | None, "allNamespaces": bool, "ceOverrides": {...}}
The selector itself, not the namespaces it matched, is handed over, so a namespace labelled or created
after the last reconcile is covered at once.

On a cluster (`cluster=True`: the store is a Kubernetes API server, the sources service runs with
`--watch kubernetes`) the "API server" is the real one: every `resources[]` entry is watched as written
(any kind the API server serves, not only those Nerve stores), the entry names `serviceAccountName`
(default `default`) for the adapter to act as, `source` is the API server's URL, and
SufficientPermissions is what the reconciler's SubjectAccessReviews found (`permission_checks`,
`permissions_condition`): get, list and watch of each resource in each watched namespace, for the
ServiceAccount's user, as Knative's `runAccessCheck`. Missing any: SufficientPermissions and Ready False
with Knative's message (`User system:serviceaccount:ns:sa cannot get, list, watch resource "events" in API
group "" in Namespace "ns"`) and Knative's reason, which is empty; and no contract entry, so nothing is
watched. The annotation `features.knative.dev/apiserversource-skip-permissions-check: "true"` skips the
check, as in Knative.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from control.api import kinds
from control.api.apiserversource import REFERENCE_MODE, RESOURCE_MODE
from control.conditions import cond
from control.reconcilers.resources.source import contract_source, resolve_sink_address, source_status
from control.reconcilers.resources.trigger import OIDC_REASON
from control.reconcilers.snapshot import Snapshot
from control.resolver import Resolver
from core.contract import Source
from core.kube import group_of, guess_plural
from core.selector import LabelSelector, namespace_labels

EVENT_TYPES = {
    RESOURCE_MODE: ("dev.knative.apiserver.resource.add", "dev.knative.apiserver.resource.delete",
                    "dev.knative.apiserver.resource.update"),
    REFERENCE_MODE: ("dev.knative.apiserver.ref.add", "dev.knative.apiserver.ref.delete",
                     "dev.knative.apiserver.ref.update"),
}
"""The types each mode emits, in the order of Knative's ceAttributes (add, delete, update)."""

WATCH_UNAVAILABLE = (
    "the sources service runs apart from control (separate services) and has no resource store to watch; "
    "an ApiServerSource runs in embedded mode (`nerve up`)")


SKIP_PERMISSIONS = "features.knative.dev/apiserversource-skip-permissions-check"
VERBS = ("get", "list", "watch")
DEFAULT_SERVICE_ACCOUNT = "default"


@dataclass(frozen=True, slots=True)
class Check:
    """One SubjectAccessReview: may the source's ServiceAccount `verb` `resource` of `group` in `namespace`?"""

    namespace: str
    verb: str
    group: str
    resource: str


def service_account(source: dict[str, Any]) -> str:
    return str(source["spec"].get("serviceAccountName") or DEFAULT_SERVICE_ACCOUNT)


def skips_permissions(source: dict[str, Any]) -> bool:
    return (source["metadata"].get("annotations") or {}).get(SKIP_PERMISSIONS) == "true"


def permission_checks(source: dict[str, Any], namespaces: list[str]) -> list[Check]:
    """Knative's order: per resource, per namespace, get, list, watch."""
    return [Check(ns, verb, group_of(str(res["apiVersion"])), guess_plural(str(res["kind"])))
            for res in source["spec"]["resources"] for ns in namespaces for verb in VERBS]


def permissions_condition(user: str, denied: list[Check]) -> dict[str, Any]:
    """SufficientPermissions from what was denied, in Knative's words (its reason is left empty)."""
    if not denied:
        return cond("SufficientPermissions", True)
    parts: dict[tuple[str, str, str], list[str]] = {}
    for check in denied:
        parts.setdefault((check.resource, check.group, check.namespace), []).append(check.verb)
    missing = ", ".join(f'{", ".join(verbs)} resource "{resource}" in API group "{group}" in Namespace "{ns}"'
                        for (resource, group, ns), verbs in parts.items())
    return cond("SufficientPermissions", False, "", f"User {user} cannot {missing}")


@dataclass(frozen=True, slots=True)
class Built:
    status: dict[str, Any]
    source: Source | None
    """None while the sink does not resolve or nothing can watch the store."""


def known_namespaces(snapshot: Snapshot) -> dict[str, dict[str, str]]:
    """Every namespace Nerve knows, with the labels a namespaceSelector sees."""
    objects = {o["metadata"]["name"]: o for o in snapshot.live("Namespace")}
    names = set(objects) | {str(o["metadata"].get("namespace")) for o in snapshot.objects()
                            if o["metadata"].get("namespace")}
    return {name: namespace_labels(name, objects.get(name)) for name in sorted(names)}


def watched_namespaces(source: dict[str, Any], snapshot: Snapshot) -> list[str]:
    """Knative's `status.namespaces`: unset selector = the source's namespace, else those that match."""
    selector = source["spec"].get("namespaceSelector")
    if selector is None:
        return [source["metadata"]["namespace"]]
    wanted = LabelSelector.from_json(selector)
    return [name for name, labels in known_namespaces(snapshot).items() if wanted.matches(labels)]


def _resources(spec: dict[str, Any], *, cluster: bool = False) -> list[dict[str, Any]]:
    out = []
    for res in spec["resources"]:
        kind = kinds.for_manifest(str(res["apiVersion"]), str(res["kind"]))
        if cluster:  # the API server serves them all, in the version written; scope known or namespaced
            out.append({"apiVersion": str(res["apiVersion"]), "kind": str(res["kind"]),
                        "namespaced": kind.namespaced if kind is not None else True, "selector": res.get("selector")})
            continue
        if kind is None:
            continue  # said at apply time (notices_api_server_source): nothing of it is ever stored
        out.append({"apiVersion": kind.api_version, "kind": kind.kind, "namespaced": kind.namespaced,
                    "selector": res.get("selector")})
    return out


def build(source: dict[str, Any], snapshot: Snapshot, resolver: Resolver, *, source_url: str,
          watch_available: bool, now: str | None = None, cluster: bool = False,
          permissions: dict[str, Any] | None = None) -> Built:
    """`cluster`: the store is a Kubernetes API server; `permissions` the SufficientPermissions condition
    its SubjectAccessReviews gave (None: nothing restricts what the source sees)."""
    spec = source["spec"]
    sink_provided, sink = resolve_sink_address(source, resolver)
    sink_uri = sink.url
    if watch_available:
        deployed = cond("Deployed", True)
    else:
        deployed = cond("Deployed", False, "ResourceWatchUnavailable", WATCH_UNAVAILABLE)
    permitted = permissions or cond("SufficientPermissions", True)
    conditions = [sink_provided, deployed, permitted, cond("OIDCIdentityCreated", True, OIDC_REASON)]
    mode = spec.get("mode", REFERENCE_MODE)
    ce_attributes = [{"type": t, "source": source_url} for t in EVENT_TYPES.get(mode, ())]
    namespaces = watched_namespaces(source, snapshot)
    status = source_status(source, conditions, sink_uri, ce_attributes, now=now, sink_ca_certs=sink.ca_certs,
                           namespaces=namespaces)
    if not sink_uri or not watch_available or permitted["status"] != "True":
        return Built(status, None)
    selector = spec.get("namespaceSelector")
    config = {
        "source": source_url,
        "mode": mode,
        "resources": _resources(spec, cluster=cluster),
        "owner": spec.get("owner"),
        "filters": list(spec.get("filters") or []),
        "namespaces": [source["metadata"]["namespace"]] if selector is None else None,
        "namespaceSelector": selector,
        "allNamespaces": selector is not None and LabelSelector.from_json(selector).everything,
    }
    if cluster:
        config["serviceAccountName"] = service_account(source)
        if not config["allNamespaces"]:
            # Each matched namespace watched on its own, as Knative's adapter does: a Role in each is
            # enough (a watch of every namespace would need a ClusterRole). A namespace that starts to
            # match changes the contract, and the adapter starts again with it.
            config["namespaces"], config["namespaceSelector"] = namespaces, None
    return Built(status, contract_source(source, sink_uri, config, sink_ca_certs=sink.ca_certs))
