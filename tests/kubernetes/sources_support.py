"""What the source tests on the API server share: a fresh namespace, the examples' manifests put in it
(Knative kinds defaulted by Nerve's admission, as the mutating webhook will; the cluster's own kinds as
they are), and control's reconcilers run on the Kubernetes store with `on_cluster`."""

from __future__ import annotations

import copy
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from kubernetes import client, dynamic

from channels.registry import BackendPool
from control.api.admission import AdmissionSettings, admit
from control.reconcilers.controller import Reconciler
from control.settings import ControlSettings
from control.store.kubernetes import KubernetesStore
from core.contract import Contract
from tests.kubernetes.support import ROOT, apply, documents

EXAMPLES = ROOT / "examples"


def new_namespace(api_client: client.ApiClient, prefix: str, labels: dict[str, str] | None = None) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    client.CoreV1Api(api_client).create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels=labels)))
    return name


def example(path: str) -> list[dict[str, Any]]:
    return documents([EXAMPLES / path])


def put(api_client: client.ApiClient, manifest: dict[str, Any], namespace: str) -> dict[str, Any]:
    """`kubectl apply -n <namespace>` of one manifest; Knative kinds pass Nerve's admission first."""
    manifest = copy.deepcopy(manifest)
    if manifest["kind"] not in ("ClusterRole", "ClusterRoleBinding", "Namespace"):
        manifest["metadata"]["namespace"] = namespace
    if manifest["apiVersion"] == "batch/v1beta1":  # removed in Kubernetes 1.25 (docs/kubernetes.md)
        manifest["apiVersion"] = "batch/v1"
    if ".knative.dev/" in manifest["apiVersion"]:
        manifest = admit(manifest, None, AdmissionSettings()).obj
    stored: dict[str, Any] = apply(dynamic.DynamicClient(api_client), manifest).to_dict()
    return stored


class Cluster:
    """Control's reconcile pass on the API server, as the operator runs it."""

    def __init__(self, kubeconfig: Path, state_dir: Path, *, api_url: str = "", **settings: Any) -> None:
        self.store = KubernetesStore.from_kubeconfig(str(kubeconfig))
        self.pool = BackendPool()
        self.published: list[Contract] = []
        # The chart's serviceUrlTemplate: a Service ref is the cluster's DNS name of the Service.
        settings = ControlSettings(state_dir=state_dir, default_backend="memory",
                                   service_url_template="http://{name}.{namespace}.svc.cluster.local",
                                   ingress_base_url="http://nerve-ingress.nerve.svc.cluster.local", **settings)
        self.reconciler = Reconciler(self.store, self.pool, settings, self._publish, on_cluster=True,
                                     api_url=api_url)

    async def _publish(self, contract: Contract) -> None:
        self.published.append(contract)

    async def reconcile(self) -> Contract:
        return await self.reconciler.reconcile()

    async def get(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        found = await self.store.get(kind, namespace, name)
        assert found is not None, f"{kind} {namespace}/{name} is not in the API server"
        return found

    async def close(self) -> None:
        await self.reconciler.stop()
        await self.pool.stop()
        await self.store.close()


async def cluster(kubeconfig: Path, state_dir: Path, **kwargs: Any) -> AsyncIterator[Cluster]:
    c = Cluster(kubeconfig, state_dir, **kwargs)
    try:
        yield c
    finally:
        await c.close()


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    found = next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == type_), None)
    assert found is not None, f"no {type_} condition in {obj.get('status')}"
    return found


def env_of(container: dict[str, Any]) -> dict[str, str | None]:
    return {var["name"]: var.get("value") for var in container.get("env") or []}
