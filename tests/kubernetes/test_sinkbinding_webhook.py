"""SinkBinding binds Jobs and Pods as they are created (control/operator/webhooks.py `/bind`): the API server
refuses changes to a Job's template or a Pod's containers once stored, so the operator's mutating webhook
injects K_SINK and K_CE_OVERRIDES on CREATE, as Knative's does. Against the real API server, the operator a
process with its webhooks over TLS; the SinkBinding is the seed's (subject: Jobs labelled app: heartbeat-cron,
sink: the Service event-display), beside one for Pods with the same selector."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

from kubernetes import client, dynamic

from tests.kubernetes.operator import (
    Operator,
    delete_namespaces,
    free_port,
    install_webhooks,
    make_cert,
    remove_webhooks,
    wait_for,
)
from tests.kubernetes.support import apply, install_crds

LABELS = {"app": "heartbeat-cron"}
OVERRIDES = '{"extensions":{"hello":"world"}}'


def binding(name: str, namespace: str, api_version: str, kind: str) -> dict[str, Any]:
    return {"apiVersion": "sources.knative.dev/v1", "kind": "SinkBinding",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"subject": {"apiVersion": api_version, "kind": kind, "selector": {"matchLabels": LABELS}},
                     "sink": {"ref": {"apiVersion": "v1", "kind": "Service", "name": "event-display"}},
                     "ceOverrides": {"extensions": {"hello": "world"}}}}


def pod_spec() -> dict[str, Any]:
    return {"restartPolicy": "Never",
            "containers": [{"name": "heartbeat", "image": "busybox", "env": [{"name": "MINE", "value": "kept"}]}]}


def env_of(spec: dict[str, Any]) -> dict[str, str]:
    return {v["name"]: v.get("value", "") for v in spec["containers"][0].get("env") or []}


async def test_sinkbindings_bind_jobs_and_pods_at_creation(
        kube_apiserver: Path, k8s_client: client.ApiClient, nats_url: str, tmp_path: Path) -> None:
    install_crds(k8s_client)
    core = client.CoreV1Api(k8s_client)
    batch = client.BatchV1Api(k8s_client)
    home = f"nerve-{uuid.uuid4().hex[:6]}"
    namespace = f"bind-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": home}})
    core.create_namespace({"metadata": {"name": namespace}})
    # No controller-manager runs to make it, and the Pods' ServiceAccount admission looks it up.
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "default"}})
    certs = make_cert(tmp_path / "certs")
    operator = Operator(kube_apiserver, tmp_path / "op", home, nats_url=nats_url, webhook_port=free_port(),
                        certs=certs, lease_name=f"bind-{uuid.uuid4().hex[:6]}")
    operator.start()
    dyn = dynamic.DynamicClient(k8s_client)
    sink = f"http://event-display.{namespace}.svc.cluster.local"
    try:
        install_webhooks(k8s_client, certs, operator.webhook_port)
        core.create_namespaced_service(namespace, {"metadata": {"name": "event-display"}, "spec": {
            "selector": {"app": "event-display"}, "ports": [{"port": 80, "targetPort": 8080}]}})
        for manifest in (binding("test-sink-binding", namespace, "batch/v1", "Job"),
                         binding("pods", namespace, "v1", "Pod")):
            await asyncio.to_thread(apply, dyn, manifest)
        sinkbindings = dyn.resources.get(api_version="sources.knative.dev/v1", kind="SinkBinding")
        for name in ("test-sink-binding", "pods"):
            try:
                await asyncio.to_thread(wait_for, f"SinkBinding {name} sinkUri", lambda n=name: (
                    sinkbindings.get(name=n, namespace=namespace).to_dict().get("status") or {}).get("sinkUri"))
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n{operator.log()}") from None

        job = batch.create_namespaced_job(namespace, {
            "metadata": {"name": "heartbeat", "labels": LABELS},
            "spec": {"template": {"metadata": {"labels": LABELS}, "spec": pod_spec()}}})
        pod = core.create_namespaced_pod(namespace, {"metadata": {"name": "heartbeat", "labels": LABELS},
                                                     "spec": pod_spec()})
        other = core.create_namespaced_pod(namespace, {"metadata": {"name": "other", "labels": {"app": "other"}},
                                                       "spec": pod_spec()})
        stored_job = k8s_client.sanitize_for_serialization(batch.read_namespaced_job("heartbeat", namespace))
        stored_pod = k8s_client.sanitize_for_serialization(core.read_namespaced_pod("heartbeat", namespace))
        stored_other = k8s_client.sanitize_for_serialization(core.read_namespaced_pod("other", namespace))
        assert job.metadata.name == pod.metadata.name == "heartbeat" and other.metadata.name == "other"

        bound = {"MINE": "kept", "K_SINK": sink, "K_CE_OVERRIDES": OVERRIDES}
        assert env_of(stored_job["spec"]["template"]["spec"]) == bound, operator.log()
        assert stored_job["metadata"]["annotations"]["sinkbindings.sources.nerve.dev/bound"] == "test-sink-binding"
        assert env_of(stored_pod["spec"]) == bound
        assert stored_pod["metadata"]["annotations"]["sinkbindings.sources.nerve.dev/bound"] == "pods"
        assert env_of(stored_other["spec"]) == {"MINE": "kept"}
        assert "sinkbindings.sources.nerve.dev/bound" not in (stored_other["metadata"].get("annotations") or {})
    finally:
        remove_webhooks(k8s_client)
        code = operator.stop()
        delete_namespaces(core, namespace, home)
    assert code == 0, operator.log()
