"""ApiServerSource against a real API server: the seed's walkthrough (its ServiceAccount, ClusterRole and
ClusterRoleBinding, its ApiServerSource in Resource mode on `v1 Event`) applied with kubectl's semantics,
control's reconciler on the Kubernetes store checking the account's permissions with SubjectAccessReviews,
and `python -m sources --watch kubernetes` watching the API server with a token the TokenRequest API issued
for that ServiceAccount (its own credentials, the test's admin kubeconfig, only request the token). A
`v1 Event` created in the namespace (the API server stores Events without a kubelet) arrives at a real
HTTP receiver as `dev.knative.apiserver.resource.add`, its data the object byte for byte.

The seed's sink is `ref: {kind: Service, name: event-display}`: the Service here carries Nerve's
`nerve.dev/url` annotation naming the test's receiver, since no cluster DNS reaches loopback."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from kubernetes import client

from control.resolver import URL_ANNOTATION
from core.contract import write_atomically
from sources.kube_watch import KubernetesWatch, ServiceAccountWatches
from tests.kubernetes.sources_support import Cluster, cluster, condition, example, new_namespace, put
from tests.kubernetes.support import get_json, install_crds
from tests.support.receiver import Receiver
from tests.support.services import Service, free_port


@pytest.fixture
async def on_cluster(kube_apiserver: Path, k8s_client: client.ApiClient, tmp_path: Path) -> AsyncIterator[Cluster]:
    install_crds(k8s_client)
    async for c in cluster(kube_apiserver, tmp_path):
        yield c


def seed_rbac(namespace: str) -> list[dict[str, Any]]:
    """01-rbac.yaml with the ClusterRoleBinding's subject in this test's namespace (the seed's is
    `default`) and the cluster-wide names made unique to it."""
    docs = copy.deepcopy(example("apiserver-source/01-rbac.yaml"))
    account, role, binding = docs
    role["metadata"]["name"] = f"event-watcher-{namespace}"
    binding["metadata"]["name"] = f"k8s-ra-event-watcher-{namespace}"
    binding["roleRef"]["name"] = role["metadata"]["name"]
    binding["subjects"][0]["namespace"] = namespace
    return [account, role, binding]


async def test_the_seed_apiserversource_delivers_a_v1_event(
        on_cluster: Cluster, k8s_client: client.ApiClient, kube_apiserver: Path, receiver: Receiver,
        tmp_path: Path) -> None:
    ns = new_namespace(k8s_client, "apis")
    display = copy.deepcopy(example("event-display/01-event-display.yaml")[1])
    display["metadata"]["annotations"] = {URL_ANNOTATION: receiver.url}
    put(k8s_client, display, ns)
    account, role, binding = seed_rbac(ns)
    put(k8s_client, account, ns)
    put(k8s_client, example("apiserver-source/02-apiserversource.yaml")[0], ns)

    # The ServiceAccount exists but may not read Events yet: not Ready, in Knative's words, nothing watched.
    await on_cluster.reconcile()
    src = await on_cluster.get("ApiServerSource", ns, "test-apiserver-source")
    permitted = condition(src, "SufficientPermissions")
    user = f"system:serviceaccount:{ns}:events-sa"
    assert permitted["status"] == "False"
    assert permitted["message"] == (f'User {user} cannot get, list, watch resource "events" in API group "" '
                                    f'in Namespace "{ns}"')
    assert "reason" not in permitted  # Knative leaves it empty
    assert condition(src, "Ready")["status"] == "False"
    assert not [s for s in on_cluster.published[-1].sources if s.reference.namespace == ns]

    put(k8s_client, role, ns)
    put(k8s_client, binding, ns)
    contract = await on_cluster.reconcile()
    src = await on_cluster.get("ApiServerSource", ns, "test-apiserver-source")
    assert condition(src, "Ready")["status"] == "True", src["status"]
    assert src["status"]["sinkUri"] == receiver.url
    host = str(k8s_client.configuration.host)
    assert src["status"]["ceAttributes"][0] == {"type": "dev.knative.apiserver.resource.add", "source": host}
    [entry] = [s for s in contract.sources if s.reference.namespace == ns]
    assert entry.config["serviceAccountName"] == "events-sa"

    # The sources service on its own, following the contract file, watching the API server.
    contract_file = tmp_path / "contract.json"
    write_atomically(contract_file, contract)
    port = free_port()
    sources = Service("sources", "sources", [
        "--host", "127.0.0.1", "--port", str(port), "--contract", str(contract_file), "--state-dir",
        str(tmp_path / "sources-state"), "--watch", "kubernetes", "--kubeconfig", str(kube_apiserver)],
        tmp_path, port)
    sources.start()
    try:
        await asyncio.to_thread(sources.wait_ready, contract.generation)
        created = client.CoreV1Api(k8s_client).create_namespaced_event(ns, {
            "metadata": {"name": "busybox.1"},
            "involvedObject": {"kind": "Pod", "name": "busybox", "namespace": ns},
            "reason": "Created", "message": "Created container busybox", "type": "Normal"})
        [event] = await receiver.wait_for(1)
    finally:
        sources.stop()

    got = receiver.received[0]
    assert event.type == "dev.knative.apiserver.resource.add"
    assert event.source == host
    attrs = event.attributes
    assert attrs["subject"] == f"/apis/v1/namespaces/{ns}/events/busybox.1"
    assert (attrs["kind"], attrs["apiversion"], attrs["name"], attrs["namespace"]) == ("Event", "v1", "busybox.1", ns)
    assert attrs["datacontenttype"] == "application/json"
    assert got.headers["Kn-Namespace"] == ns
    # The object as the API server serves it, byte for byte (in the order the API server wrote its fields).
    stored = get_json(k8s_client, f"/api/v1/namespaces/{ns}/events/busybox.1")
    assert stored["metadata"]["resourceVersion"] == created.metadata.resource_version
    assert got.body == orjson.dumps(stored)
    assert json.loads(got.body)["message"] == "Created container busybox"


async def test_the_watch_acts_as_the_service_account(kube_apiserver: Path, k8s_client: client.ApiClient) -> None:
    """With the account's own token a kind its Roles do not grant is refused by the API server; a
    ServiceAccount that does not exist gets no token at all."""
    from core.contract import Egress, Reference, Source
    from core.errors import BackendError

    ns = new_namespace(k8s_client, "apis-sa")
    client.CoreV1Api(k8s_client).create_namespaced_service_account(ns, {"metadata": {"name": "nobody"}})
    watches = ServiceAccountWatches.from_kubeconfig(str(kube_apiserver))

    def source(account: str) -> Source:
        ref = Reference("uid", ns, "s", "ApiServerSource")
        return Source("uid", ref, Egress("uid", ref, "", "http://127.0.0.1:1/"), config={
            "serviceAccountName": account, "resources": [{"apiVersion": "v1", "kind": "Event"}]})

    try:
        watch = await watches.for_source(source("nobody"))
        try:
            with pytest.raises(BackendError, match="403"):
                await watch.list("Event", ns)
        finally:
            await watch.close()
        with pytest.raises(BackendError, match=f'no token for ServiceAccount {ns}/absent'):
            await watches.for_source(source("absent"))
    finally:
        await watches.close()


async def test_the_kubernetes_watch_follows_a_list(
        kube_apiserver: Path, k8s_client: client.ApiClient) -> None:
    """KubernetesWatch on the real API server: the changes after a list's version, in order. (A 410 Gone
    needs a version etcd has compacted away, which a fresh server has not done yet: tests/unit covers how
    it is reported.)"""
    from kubernetes import config

    ns = new_namespace(k8s_client, "kwatch")
    watch = KubernetesWatch(config.new_client_from_config(config_file=str(kube_apiserver)), {"Event": "v1"})
    core = client.CoreV1Api(k8s_client)
    try:
        listed = await watch.list("Event", ns)
        assert listed.items == []
        changes = watch.watch("Event", ns, resource_version=listed.resource_version)
        body = {"metadata": {"name": "e"}, "involvedObject": {"kind": "Pod", "name": "p", "namespace": ns},
                "reason": "R", "message": "m"}
        await asyncio.to_thread(core.create_namespaced_event, ns, body)
        await asyncio.to_thread(core.patch_namespaced_event, "e", ns, {"message": "m2"})
        await asyncio.to_thread(core.delete_namespaced_event, "e", ns)
        seen = []
        async for change in changes:
            seen.append((change.type, change.object["message"]))
            if len(seen) == 3:
                break
        await changes.aclose()
        assert seen == [("ADDED", "m"), ("MODIFIED", "m2"), ("DELETED", "m2")]
        assert await watch.get("Event", ns, "e") is None
    finally:
        await watch.close()


async def test_a_namespace_selector_needs_a_role_in_each_matched_namespace_only(
        on_cluster: Cluster, k8s_client: client.ApiClient, kube_apiserver: Path, receiver: Receiver,
        tmp_path: Path) -> None:
    """As Knative's adapter, each matched namespace is watched on its own: a RoleBinding in each is enough."""
    home = new_namespace(k8s_client, "apis-home")
    team = f"t{home[-8:]}"
    matched = sorted(new_namespace(k8s_client, "apis-m", {"team": team}) for _ in range(2))
    other = new_namespace(k8s_client, "apis-o")
    account, role, _ = seed_rbac(home)
    put(k8s_client, account, home)
    put(k8s_client, role, home)
    for ns in matched:
        put(k8s_client, {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                         "metadata": {"name": "read-events"},
                         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                     "name": role["metadata"]["name"]},
                         "subjects": [{"kind": "ServiceAccount", "name": "events-sa", "namespace": home}]}, ns)
    src = copy.deepcopy(example("apiserver-source/02-apiserversource.yaml")[0])
    src["spec"]["sink"] = {"uri": receiver.url}
    src["spec"]["namespaceSelector"] = {"matchLabels": {"team": team}}
    put(k8s_client, src, home)
    contract = await on_cluster.reconcile()
    stored = await on_cluster.get("ApiServerSource", home, "test-apiserver-source")
    assert condition(stored, "Ready")["status"] == "True", stored["status"]
    assert stored["status"]["namespaces"] == matched

    contract_file = tmp_path / "contract.json"
    write_atomically(contract_file, contract)
    port = free_port()
    sources = Service("sources", "sources", [
        "--host", "127.0.0.1", "--port", str(port), "--contract", str(contract_file), "--state-dir",
        str(tmp_path / "sources-state"), "--watch", "kubernetes", "--kubeconfig", str(kube_apiserver)],
        tmp_path, port)
    sources.start()
    try:
        await asyncio.to_thread(sources.wait_ready, contract.generation)
        core = client.CoreV1Api(k8s_client)
        for ns in (other, *matched):
            core.create_namespaced_event(ns, {"metadata": {"name": "ev"}, "reason": "R", "message": ns,
                                              "involvedObject": {"kind": "Pod", "name": "p", "namespace": ns}})
        await receiver.wait_for(2)
        await receiver.settle()
    finally:
        sources.stop()
    assert sorted(e.attributes["namespace"] for e in receiver.events) == matched
