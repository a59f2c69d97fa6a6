"""ContainerSource on a real API server: an owned apps/v1 Deployment `<name>-deployment` (the cluster's own
kind) and an owned SinkBinding `<name>-sinkbinding`, the Deployment's containers carrying K_SINK after the
pass. No kube-controller-manager runs here: nothing gives the Deployment a status (ReceiveAdapterReady
stays Unknown, the source not Ready) and no garbage collector deletes the children with the source; the
ownerReferences it would follow are asserted instead."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from kubernetes import client

from tests.kubernetes.sources_support import Cluster, cluster, condition, env_of, example, new_namespace, put
from tests.kubernetes.support import install_crds


@pytest.fixture
async def on_cluster(kube_apiserver: Path, k8s_client: client.ApiClient, tmp_path: Path) -> AsyncIterator[Cluster]:
    install_crds(k8s_client)
    async for c in cluster(kube_apiserver, tmp_path):
        yield c


async def test_the_seed_container_source_is_a_bound_deployment(on_cluster: Cluster,
                                                                k8s_client: client.ApiClient) -> None:
    ns = new_namespace(k8s_client, "cs-seed")
    put(k8s_client, example("event-display/01-event-display.yaml")[1], ns)
    put(k8s_client, example("container-source/containersource.yaml")[0], ns)
    await on_cluster.reconcile()

    src = await on_cluster.get("ContainerSource", ns, "test-container-source")
    sink = f"http://event-display.{ns}.svc.cluster.local"
    dep = await on_cluster.get("Deployment", ns, "test-container-source-deployment")
    assert dep["apiVersion"] == "apps/v1"
    [owner] = dep["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == \
        ("ContainerSource", "test-container-source", src["metadata"]["uid"], True)
    [container] = dep["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "docker.io/coldtea214/heartbeats:1.0" and container["args"] == ["--period=1"]
    # The seed's `kubectl get pod ... | grep -A1 K_SINK`, on the template the cluster's Pods are made from.
    assert env_of(container) == {"POD_NAME": "mypod", "POD_NAMESPACE": "event-test", "NAME": "test-container-source",
                                 "NAMESPACE": ns, "K_SINK": sink, "K_CE_OVERRIDES": None}

    sb = await on_cluster.get("SinkBinding", ns, "test-container-source-sinkbinding")
    assert sb["metadata"]["ownerReferences"][0]["uid"] == src["metadata"]["uid"]
    assert sb["spec"]["subject"] == {"apiVersion": "apps/v1", "kind": "Deployment", "namespace": ns,
                                     "name": "test-container-source-deployment"}
    assert condition(sb, "Ready")["status"] == "True", sb["status"]

    assert src["status"]["sinkUri"] == sink
    assert condition(src, "SinkBindingReady")["status"] == "True"
    adapter = condition(src, "ReceiveAdapterReady")
    assert (adapter["status"], adapter["reason"]) == ("Unknown", "DeploymentUnavailable")  # no controller-manager

    # Nothing changes on a second pass: the API server's defaults are no difference to the wanted Deployment.
    version = dep["metadata"]["resourceVersion"]
    await on_cluster.reconcile()
    assert (await on_cluster.get("Deployment", ns, "test-container-source-deployment"))["metadata"][
        "resourceVersion"] == version

    # A new sink and ceOverrides on the source reach the Deployment through its binding.
    changed = copy.deepcopy(src)
    changed["spec"]["sink"] = {"uri": "http://elsewhere.example/"}
    changed["spec"]["ceOverrides"] = {"extensions": {"extra": "x"}}
    await on_cluster.store.update(changed)
    await on_cluster.reconcile()
    dep = await on_cluster.get("Deployment", ns, "test-container-source-deployment")
    env = env_of(dep["spec"]["template"]["spec"]["containers"][0])
    assert (env["K_SINK"], env["K_CE_OVERRIDES"]) == ("http://elsewhere.example/", '{"extensions":{"extra":"x"}}')
    assert (await on_cluster.get("ContainerSource", ns, "test-container-source"))["status"]["sinkUri"] == \
        "http://elsewhere.example/"
