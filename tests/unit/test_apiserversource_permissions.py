"""ApiServerSource on a cluster, the pure part (control/reconcilers/resources/apiserversource.py): which
SubjectAccessReviews Knative's access check asks, the condition in Knative's words, and the contract entry."""

from __future__ import annotations

from typing import Any

from control.conditions import cond
from control.reconcilers.resources.apiserversource import (
    Check,
    build,
    permission_checks,
    permissions_condition,
    skips_permissions,
)
from control.reconcilers.snapshot import Snapshot
from control.resolver import Resolver


def _source(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "sources.knative.dev/v1", "kind": "ApiServerSource",
            "metadata": {"name": "s", "namespace": "ns", "uid": "u", "generation": 1},
            "spec": {"resources": [{"apiVersion": "v1", "kind": "Event"},
                                   {"apiVersion": "apps/v1", "kind": "Deployment"}],
                     "sink": {"uri": "http://sink/"}, "mode": "Resource", **spec}}


def test_checks_are_get_list_watch_of_each_resource_in_each_namespace() -> None:
    checks = permission_checks(_source(), ["a", "b"])
    assert checks[:3] == [Check("a", "get", "", "events"), Check("a", "list", "", "events"),
                          Check("a", "watch", "", "events")]
    assert checks[6] == Check("a", "get", "apps", "deployments")
    assert len(checks) == 12


def test_the_message_is_knatives() -> None:
    user = "system:serviceaccount:ns:events-sa"
    denied = [Check("ns", "get", "", "events"), Check("ns", "list", "", "events"),
              Check("ns", "watch", "apps", "deployments")]
    assert permissions_condition(user, denied) == cond(
        "SufficientPermissions", False, "",
        f'User {user} cannot get, list resource "events" in API group "" in Namespace "ns", '
        'watch resource "deployments" in API group "apps" in Namespace "ns"')
    assert permissions_condition(user, []) == cond("SufficientPermissions", True)


def test_on_a_cluster_every_resource_is_watched_as_written_with_the_service_account() -> None:
    source = _source(serviceAccountName="events-sa",
                     resources=[{"apiVersion": "example.com/v1", "kind": "Widget"}])
    built = build(source, Snapshot.of([source]), Resolver(Snapshot.of([source]), ""), source_url="https://api:443",
                  watch_available=True, cluster=True, permissions=cond("SufficientPermissions", True))
    assert built.source is not None
    assert built.source.config["resources"] == [{"apiVersion": "example.com/v1", "kind": "Widget",
                                                 "namespaced": True, "selector": None}]
    assert built.source.config["serviceAccountName"] == "events-sa"
    assert built.source.config["source"] == "https://api:443"
    denied = build(source, Snapshot.of([source]), Resolver(Snapshot.of([source]), ""), source_url="https://api:443",
                   watch_available=True, cluster=True, permissions=cond("SufficientPermissions", False, "", "no"))
    assert denied.source is None


def test_the_skip_annotation() -> None:
    source = _source()
    assert not skips_permissions(source)
    source["metadata"]["annotations"] = {"features.knative.dev/apiserversource-skip-permissions-check": "true"}
    assert skips_permissions(source)
