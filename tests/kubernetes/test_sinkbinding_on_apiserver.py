"""SinkBinding on a real API server: control's reconciler patches the bound Deployments and CronJobs (the
cluster's own apps/v1 and batch/v1 kinds), as Knative's psbinding reconciler does, and undoes it when the
binding goes or the subject stops matching. No kubelet or controller-manager runs, so no Pod is made from
the patched templates: what is asserted is the pod template the cluster would run, K_SINK and
K_CE_OVERRIDES in every container and init container."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, dynamic

from control.reconcilers.resources.sinkbinding import BOUND_ANNOTATION
from tests.kubernetes.sources_support import Cluster, cluster, condition, env_of, example, new_namespace, put
from tests.kubernetes.support import install_crds

OVERRIDES = '{"extensions":{"hello":"world"}}'


@pytest.fixture
async def on_cluster(kube_apiserver: Path, k8s_client: client.ApiClient, tmp_path: Path) -> AsyncIterator[Cluster]:
    install_crds(k8s_client)
    async for c in cluster(kube_apiserver, tmp_path):
        yield c


def deployment(name: str, labels: dict[str, str]) -> dict[str, Any]:
    pod_labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": labels},
            "spec": {"selector": {"matchLabels": pod_labels}, "template": {"metadata": {"labels": pod_labels}, "spec": {
                "initContainers": [{"name": "init", "image": "busybox", "args": ["true"]}],
                "containers": [{"name": "main", "image": "busybox", "args": ["sleep", "1"],
                                "env": [{"name": "MINE", "value": "kept"}, {"name": "K_SINK", "value": "http://old"}]},
                               {"name": "side", "image": "busybox", "args": ["sleep", "1"]}]}}}}


def binding(name: str, subject: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "sources.knative.dev/v1", "kind": "SinkBinding", "metadata": {"name": name},
            "spec": {"subject": subject, "sink": {"ref": {"apiVersion": "v1", "kind": "Service",
                                                          "name": "event-display"}}, **spec}}


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    if obj["kind"] == "CronJob":
        spec: dict[str, Any] = obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        return spec
    spec = obj["spec"]["template"]["spec"]
    return spec


def containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    spec = pod_spec(obj)
    return [*(spec.get("initContainers") or []), *spec["containers"]]


async def test_the_seed_binding_patches_the_cronjob_jobs_template(on_cluster: Cluster,
                                                                  k8s_client: client.ApiClient) -> None:
    ns = new_namespace(k8s_client, "sb-seed")
    for manifest in example("event-display/01-event-display.yaml") + example("sink-binding/01-cronjob.yaml"):
        put(k8s_client, manifest, ns)
    put(k8s_client, example("sink-binding/02-sinkbinding.yaml")[0], ns)
    await on_cluster.reconcile()

    sb = await on_cluster.get("SinkBinding", ns, "test-sink-binding")
    sink = f"http://event-display.{ns}.svc.cluster.local"
    assert sb["status"]["sinkUri"] == sink
    assert condition(sb, "Ready")["status"] == "True", sb["status"]
    assert condition(sb, "SinkProvided")["status"] == "True"
    assert condition(sb, "SinkBindingAvailable")["status"] == "True"
    assert sb["status"]["observedGeneration"] == sb["metadata"]["generation"]

    cron = await on_cluster.get("CronJob", ns, "heartbeat-cron")
    env = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["env"]
    # The template's own variables stay, fieldRefs included; the binding's come after them, in Knative's order.
    assert [v["name"] for v in env] == ["ONE_SHOT", "POD_NAME", "POD_NAMESPACE", "K_SINK", "K_CE_OVERRIDES"]
    assert env[1]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env_of(cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0])["K_SINK"] == sink
    assert env[-1]["value"] == OVERRIDES
    assert cron["metadata"]["annotations"][BOUND_ANNOTATION] == "test-sink-binding"
    # The Deployment is no Job: untouched.
    display = await on_cluster.get("Deployment", ns, "event-display")
    assert "K_SINK" not in env_of(display["spec"]["template"]["spec"]["containers"][0])

    # A second pass changes nothing: the stored CronJob is what the binding wants.
    version = cron["metadata"]["resourceVersion"]
    await on_cluster.reconcile()
    assert (await on_cluster.get("CronJob", ns, "heartbeat-cron"))["metadata"]["resourceVersion"] == version

    # kubectl delete sinkbinding: the CronJob's next Jobs no longer get a sink; its own env is as applied.
    await asyncio.to_thread(lambda: dynamic.DynamicClient(k8s_client).resources.get(
        api_version="sources.knative.dev/v1", kind="SinkBinding").delete(name="test-sink-binding", namespace=ns))
    await on_cluster.reconcile()
    cron = await on_cluster.get("CronJob", ns, "heartbeat-cron")
    env = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["env"]
    assert [v["name"] for v in env] == ["ONE_SHOT", "POD_NAME", "POD_NAMESPACE"]
    assert env[0]["value"] == "true" and env[2]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert BOUND_ANNOTATION not in (cron["metadata"].get("annotations") or {})


async def test_a_deployment_is_bound_by_selector_and_unbound_when_it_stops_matching(
        on_cluster: Cluster, k8s_client: client.ApiClient) -> None:
    ns = new_namespace(k8s_client, "sb-dep")
    put(k8s_client, example("event-display/01-event-display.yaml")[1], ns)  # the Service: the sink
    put(k8s_client, deployment("producer", {"role": "producer"}), ns)
    put(k8s_client, deployment("opted-out", {"role": "producer", "bindings.knative.dev/exclude": "true"}), ns)
    put(k8s_client, binding("by-label", {"apiVersion": "apps/v1", "kind": "Deployment",
                                         "selector": {"matchLabels": {"role": "producer"}}},
                            ceOverrides={"extensions": {"hello": "world"}}), ns)
    await on_cluster.reconcile()

    sink = f"http://event-display.{ns}.svc.cluster.local"
    producer = await on_cluster.get("Deployment", ns, "producer")
    for container in containers(producer):  # init containers too, as Knative's Do
        env = env_of(container)
        assert env["K_SINK"] == sink, container
        assert env["K_CE_OVERRIDES"] == OVERRIDES
    # A K_SINK the template set is replaced, not doubled; the rest of its env stays.
    main = pod_spec(producer)["containers"][0]
    assert [v["name"] for v in main["env"]] == ["MINE", "K_SINK", "K_CE_OVERRIDES"]
    opted_out = await on_cluster.get("Deployment", ns, "opted-out")
    assert env_of(pod_spec(opted_out)["containers"][0])["K_SINK"] == "http://old"
    assert BOUND_ANNOTATION not in (opted_out["metadata"].get("annotations") or {})

    # Relabelled out of the selector: unbound, and what the template said of its own is kept.
    relabelled = copy.deepcopy(producer)
    relabelled["metadata"]["labels"] = {"role": "other"}
    await on_cluster.store.update(relabelled)
    await on_cluster.reconcile()
    producer = await on_cluster.get("Deployment", ns, "producer")
    assert [v["name"] for v in pod_spec(producer)["containers"][0]["env"]] == ["MINE"]
    assert all("K_CE_OVERRIDES" not in env_of(c) for c in containers(producer))


async def test_a_named_subject_that_does_not_exist_is_not_available(on_cluster: Cluster,
                                                                    k8s_client: client.ApiClient) -> None:
    ns = new_namespace(k8s_client, "sb-missing")
    put(k8s_client, example("event-display/01-event-display.yaml")[1], ns)
    put(k8s_client, binding("named", {"apiVersion": "apps/v1", "kind": "Deployment", "name": "later"}), ns)
    await on_cluster.reconcile()
    sb = await on_cluster.get("SinkBinding", ns, "named")
    available = condition(sb, "SinkBindingAvailable")
    assert (available["status"], available["reason"]) == ("False", "SubjectMissing")
    assert available["message"] == 'deployments.apps "later" not found'  # the API server's own words
    assert condition(sb, "Ready")["status"] == "False"

    # Created afterwards (by name, with no K_CE_OVERRIDES in the spec: an empty one, as Knative writes it).
    put(k8s_client, deployment("later", {}), ns)
    await on_cluster.reconcile()
    assert condition(await on_cluster.get("SinkBinding", ns, "named"), "Ready")["status"] == "True"
    later = await on_cluster.get("Deployment", ns, "later")
    env = env_of(pod_spec(later)["containers"][1])
    assert env == {"K_SINK": f"http://event-display.{ns}.svc.cluster.local", "K_CE_OVERRIDES": None}


async def test_inclusion_mode_binds_only_what_is_labelled_include(
        kube_apiserver: Path, k8s_client: client.ApiClient, tmp_path: Path) -> None:
    install_crds(k8s_client)
    ns = new_namespace(k8s_client, "sb-incl")
    put(k8s_client, example("event-display/01-event-display.yaml")[1], ns)
    put(k8s_client, deployment("included", {"role": "p", "bindings.knative.dev/include": "true"}), ns)
    put(k8s_client, deployment("plain", {"role": "p"}), ns)
    put(k8s_client, binding("all", {"apiVersion": "apps/v1", "kind": "Deployment",
                                    "selector": {"matchLabels": {"role": "p"}}}), ns)
    async for c in cluster(kube_apiserver, tmp_path, sink_binding_selection_mode="inclusion"):
        await c.reconcile()
        included, plain = await c.get("Deployment", ns, "included"), await c.get("Deployment", ns, "plain")
        assert env_of(pod_spec(included)["containers"][1])["K_SINK"] == f"http://event-display.{ns}.svc.cluster.local"
        assert "K_SINK" not in env_of(pod_spec(plain)["containers"][1])
