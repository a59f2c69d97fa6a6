"""Control's reconcilers, unchanged, running on the Kubernetes store against the real API server: Knative's
getting-started YAML applied as kubectl would (defaulted by Nerve's admission, as the mutating webhook
will), one reconcile, and the Broker and Triggers are Ready in the
API server with the right `status.address.url`, the contract names them, and deleting the Broker runs its
finalizer. The backend is the in-process memory one (the Kafka path is the same reconciler, covered with
real Kafka by tests/integration); no kubelet runs, so no data-plane Pod does: delivery is covered by the
topology tests."""

from __future__ import annotations

import asyncio
import copy
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, dynamic

from channels.registry import BackendPool
from control.api.admission import AdmissionSettings, admit
from control.reconcilers.controller import Reconciler
from control.settings import ControlSettings
from control.store.kubernetes import KubernetesStore
from core.contract import Contract
from tests.kubernetes.support import GETTING_STARTED, apply, documents, install_crds

INGRESS = "http://nerve-ingress.nerve.svc.cluster.local"


@pytest.fixture
async def pool() -> AsyncIterator[BackendPool]:
    p = BackendPool()
    try:
        yield p
    finally:
        await p.stop()


def _ready(obj: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in obj.get("status", {}).get("conditions", []) if c["type"] == "Ready")


async def test_getting_started_is_reconciled_in_the_api_server(
        kube_apiserver: Path, k8s_client: client.ApiClient, pool: BackendPool, tmp_path: Path) -> None:
    install_crds(k8s_client)
    dyn = dynamic.DynamicClient(k8s_client)
    namespace = f"gs-{uuid.uuid4().hex[:8]}"
    for manifest in documents(sorted(GETTING_STARTED.glob("*.yaml"))):
        manifest = copy.deepcopy(manifest)
        if manifest["kind"] == "Namespace":
            manifest["metadata"]["name"] = namespace
        else:
            manifest["metadata"]["namespace"] = namespace
        # What the mutating webhook (not built yet) will do to a `kubectl apply`: Nerve's own defaulting.
        apply(dyn, admit(manifest, None, AdmissionSettings()).obj)

    published: list[Contract] = []

    async def publish(contract: Contract) -> None:
        published.append(contract)

    store = KubernetesStore.from_kubeconfig(str(kube_apiserver))
    settings = ControlSettings(state_dir=tmp_path, ingress_base_url=INGRESS, default_backend="memory")
    reconciler = Reconciler(store, pool, settings, publish, on_cluster=True)
    try:
        await reconciler.reconcile()
        broker = await store.get("Broker", namespace, "default")
        assert broker is not None
        assert _ready(broker)["status"] == "True", broker["status"]
        assert broker["status"]["address"]["url"] == f"{INGRESS}/{namespace}/default"
        assert broker["status"]["observedGeneration"] == broker["metadata"]["generation"]
        assert "nerve.dev/backend-cleanup" in broker["metadata"]["finalizers"]
        for name, url in (("hello-display", "http://127.0.0.1:9001/"), ("goodbye-display", "http://127.0.0.1:9002/")):
            trigger = await store.get("Trigger", namespace, name)
            assert trigger is not None
            assert _ready(trigger)["status"] == "True", trigger["status"]
            assert trigger["status"]["subscriberUri"] == url
        # The cluster runs workloads, not Nerve: the chart's Deployments (tests/kubernetes/test_chart.py) got no
        # Pods from this pass.
        assert not (await store.list("Pod")).items
        contract = published[-1]
        mine = [r for r in contract.resources if r.reference.namespace == namespace]
        assert [r.reference.name for r in mine] == ["default"]
        assert sorted(e.reference.name for e in mine[0].egresses) == ["goodbye-display", "hello-display"]

        # kubectl delete: the finalizer holds the Broker until control has cleaned up, then it is gone.
        await asyncio.to_thread(lambda: dyn.resources.get(api_version="eventing.knative.dev/v1", kind="Broker")
                                .delete(name="default", namespace=namespace))
        marked = await store.get("Broker", namespace, "default")
        assert marked is not None and marked["metadata"]["deletionTimestamp"]
        await reconciler.reconcile()
        assert await store.get("Broker", namespace, "default") is None
        assert not [r for r in published[-1].resources if r.reference.namespace == namespace]
    finally:
        await reconciler.stop()
        await store.close()
