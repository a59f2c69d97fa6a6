"""The generated CRDs in a real kube-apiserver: Knative's getting-started YAML is accepted and read back as
written, `kubectl get` prints Nerve's columns, the categories list the kinds, and the server prunes exactly
the fields Nerve's own admission reports as unknown. No operator runs yet: nothing reconciles these objects,
so no status is asserted here."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client, dynamic
from kubernetes.dynamic.exceptions import ResourceNotFoundError

from control.api import kinds
from control.api.schema import check
from control.crds import crd_kinds
from tests.kubernetes.support import GETTING_STARTED, apply, documents, get_json, install_crds, resource, table


@pytest.fixture(scope="module")
def crds(k8s_client: client.ApiClient) -> Iterator[list[dict[str, Any]]]:
    yield install_crds(k8s_client)
    # These objects were stored as kubectl stores them with no webhook, undefaulted: remove them, so that
    # the reconcilers of tests/kubernetes/test_reconcile_on_apiserver.py see only what admission defaulted.
    dyn = dynamic.DynamicClient(k8s_client)
    for kind in ("Trigger", "Broker"):
        api = dyn.resources.get(api_version="eventing.knative.dev/v1", kind=kind)
        for obj in api.get(namespace=None).items:
            if obj.metadata.namespace in ("event-example", "default"):
                api.delete(name=obj.metadata.name, namespace=obj.metadata.namespace)


@pytest.fixture
def dyn(k8s_client: client.ApiClient, crds: list[dict[str, Any]]) -> dynamic.DynamicClient:
    return dynamic.DynamicClient(k8s_client)


def test_every_crd_is_served_with_its_versions(k8s_client: client.ApiClient, crds: list[dict[str, Any]]) -> None:
    assert {c["metadata"]["name"] for c in crds} == {k.resource for k in crd_kinds()}
    discovery = client.ApisApi(k8s_client).get_api_versions()
    served = {(g.name, v.version) for g in discovery.groups for v in g.versions}
    for kind in crd_kinds():
        for api_version in kind.api_versions():
            assert tuple(api_version.split("/")) in served, api_version


def test_the_getting_started_yaml_is_accepted_and_read_back(dyn: dynamic.DynamicClient) -> None:
    manifests = documents(sorted(GETTING_STARTED.glob("*.yaml")))
    assert {m["kind"] for m in manifests} >= {"Namespace", "Broker", "Trigger", "Service"}
    for manifest in manifests:
        apply(dyn, manifest)
    for manifest in manifests:
        api = resource(dyn, manifest)
        stored = api.get(name=manifest["metadata"]["name"], namespace=manifest["metadata"].get("namespace")).to_dict()
        assert stored["apiVersion"] == manifest["apiVersion"]
        if manifest["kind"] in ("Broker", "Trigger"):
            # Knative's kinds come back exactly as written: the CRD's schema knows every field they use.
            assert stored.get("spec") == manifest.get("spec"), manifest["metadata"]["name"]
            assert stored["metadata"]["generation"] == 1


def test_kubectl_get_prints_nerve_get_columns(k8s_client: client.ApiClient, dyn: dynamic.DynamicClient) -> None:
    for manifest in documents(sorted(GETTING_STARTED.glob("*.yaml"))):
        apply(dyn, manifest)
    triggers = table(k8s_client, "/apis/eventing.knative.dev/v1/namespaces/event-example/triggers")
    headers = [c["name"] for c in triggers["columnDefinitions"]]
    assert headers == ["Name", *[c.header for c in kinds.TRIGGER.columns if c.header != "NAME"]]
    cells = {row["cells"][0]: row["cells"] for row in triggers["rows"]}
    assert cells["hello-display"][headers.index("BROKER")] == "default"


def test_categories_list_every_kind(k8s_client: client.ApiClient, crds: list[dict[str, Any]]) -> None:
    """`kubectl get knative` / `kubectl get sources` expand categories from discovery."""
    categories: dict[str, set[str]] = {}
    for group in client.ApisApi(k8s_client).get_api_versions().groups:
        if not group.name.endswith("knative.dev"):
            continue
        for version in group.versions:
            for res in get_json(k8s_client, f"/apis/{version.group_version}")["resources"]:
                for category in res.get("categories", []):
                    categories.setdefault(category, set()).add(res["kind"])
    assert categories["knative"] >= {k.kind for k in crd_kinds()}
    assert categories["sources"] >= {k.kind for k in kinds.in_category("sources")}
    assert categories["channel"] >= {"InMemoryChannel", "KafkaChannel", "Channel"}


def test_the_server_prunes_what_admission_calls_unknown(dyn: dynamic.DynamicClient) -> None:
    trigger = {
        "apiVersion": "eventing.knative.dev/v1", "kind": "Trigger",
        "metadata": {"name": "typo", "namespace": "default"},
        "spec": {"broker": "default", "brokr": "oops",
                 "filter": {"attributes": {"type": "greeting"}, "atributes": {"x": "y"}},
                 "subscriber": {"uri": "http://example.com/", "urii": "x"}},
    }
    unknown = sorted(n.path for n in check(trigger, kinds.TRIGGER.schema) if n.unknown)
    stored = apply(dyn, trigger).to_dict()
    assert unknown == ["spec.brokr", "spec.filter.atributes", "spec.subscriber.urii"]
    assert stored["spec"] == {"broker": "default", "filter": {"attributes": {"type": "greeting"}},
                              "subscriber": {"uri": "http://example.com/"}}


# Versions the seeds write that Kubernetes no longer serves (embedded Nerve accepts them as the newer one):
# on a cluster the manifest needs the newer version, which the test applies instead.
REMOVED = {("batch/v1beta1", "CronJob"): "batch/v1"}  # removed in Kubernetes 1.25
EXAMPLES = sorted(p for p in (GETTING_STARTED.parent).iterdir() if p.is_dir() and any(p.glob("*.yaml")))


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_every_example_is_accepted_as_written(dyn: dynamic.DynamicClient, example: Any) -> None:
    """The Knative YAML of examples/ (the seeds' walkthroughs) through the CRDs and the API server's own
    kinds, by a server-side dry run: every Knative object's spec would be stored exactly as written."""
    manifests = [m for m in documents(sorted(example.glob("*.yaml"))) if m["kind"] != "Namespace"]
    for manifest in manifests:
        namespace = manifest.setdefault("metadata", {}).setdefault("namespace", "default")
        # What the controller-manager would do (none runs here): a namespace and its `default` account,
        # which admission of a Pod (the examples' busybox) looks up.
        apply(dyn, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
        apply(dyn, {"apiVersion": "v1", "kind": "ServiceAccount",
                    "metadata": {"name": "default", "namespace": namespace}})
        newer = REMOVED.get((manifest["apiVersion"], manifest["kind"]))
        if newer is not None:
            with pytest.raises(ResourceNotFoundError):
                resource(dyn, manifest)
            manifest = {**manifest, "apiVersion": newer}
        stored = apply(dyn, manifest, dry_run=True).to_dict()
        kind = kinds.for_manifest(manifest["apiVersion"], manifest["kind"])
        if kind is None or kind not in crd_kinds():
            continue
        assert stored["apiVersion"] == manifest["apiVersion"]
        if manifest["apiVersion"] == kind.api_version:
            assert stored.get("spec") == manifest.get("spec"), f"{example.name}: {manifest['kind']} pruned"
            continue
        # An older version converts through the operator's webhook (Kind.convert, docs/kubernetes.md): what is
        # stored is what embedded admission makes of it, fields the older version spells differently included
        # (read back in the older version, only apiVersion changes).
        converted = copy.deepcopy(manifest)
        kind.convert(converted)
        assert stored.get("spec") == converted.get("spec"), f"{example.name}: {manifest['kind']} not converted"
        stored = apply(dyn, {**converted, "apiVersion": kind.api_version}, dry_run=True).to_dict()
        assert stored.get("spec") == converted.get("spec"), f"{example.name}: converted {manifest['kind']} pruned"


def test_an_older_version_is_converted_by_the_operators_webhook(dyn: dynamic.DynamicClient) -> None:
    """A v1beta1 PingSource's `jsonData` is stored as v1's `data` (Kind.convert behind the CRD's conversion
    webhook); the API server then serves the object in either version."""
    namespace = f"conv-{uuid.uuid4().hex[:6]}"
    apply(dyn, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    apply(dyn, {"apiVersion": "sources.knative.dev/v1beta1", "kind": "PingSource",
                "metadata": {"name": "beat", "namespace": namespace},
                "spec": {"schedule": "*/1 * * * *", "jsonData": '{"message": "hello"}',
                         "sink": {"uri": "http://example.com/"}}})
    v1 = dyn.resources.get(api_version="sources.knative.dev/v1", kind="PingSource").get(
        name="beat", namespace=namespace).to_dict()
    assert v1["spec"] == {"schedule": "*/1 * * * *", "contentType": "application/json",
                          "data": '{"message": "hello"}', "sink": {"uri": "http://example.com/"}}
    older = dyn.resources.get(api_version="sources.knative.dev/v1beta1", kind="PingSource").get(
        name="beat", namespace=namespace).to_dict()
    assert older["apiVersion"] == "sources.knative.dev/v1beta1" and older["spec"] == v1["spec"]
