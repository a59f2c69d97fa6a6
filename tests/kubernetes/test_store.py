"""The store seam on a real API server (control/store/kubernetes.py): the promises tests/integration/
test_store.py checks of SQLite, kept by Kubernetes itself: versions, conflicts, the status subresource,
finalizers, watches from a listed version."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from control.store.base import WatchEvent
from control.store.kubernetes import KubernetesStore
from core.errors import Conflict, NotFound
from tests.kubernetes.support import install_crds


@pytest.fixture
async def store(kube_apiserver: Path, k8s_client: client.ApiClient) -> AsyncIterator[KubernetesStore]:
    install_crds(k8s_client)
    s = KubernetesStore.from_kubeconfig(str(kube_apiserver))
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
def namespace(k8s_client: client.ApiClient) -> str:
    name = f"store-{uuid.uuid4().hex[:8]}"
    client.CoreV1Api(k8s_client).create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    return name


def broker(name: str, namespace: str, **metadata: Any) -> dict[str, Any]:
    return {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker",
            "metadata": {"name": name, "namespace": namespace, **metadata},
            "spec": {"delivery": {"retry": 3}}}


async def test_every_write_gets_a_new_version_and_the_server_fields(store: KubernetesStore, namespace: str) -> None:
    created = await store.create(broker("a", namespace))
    meta = created["metadata"]
    assert meta["uid"] and meta["creationTimestamp"] and meta["generation"] == 1
    assert isinstance(meta["resourceVersion"], str)
    updated = await store.update({**created, "spec": {"delivery": {"retry": 5}}})
    assert updated["metadata"]["resourceVersion"] != meta["resourceVersion"]
    assert updated["metadata"]["generation"] == 2
    labelled = await store.update({**updated, "metadata": {**updated["metadata"], "labels": {"l": "v"}}})
    assert labelled["metadata"]["generation"] == 2  # metadata changes do not bump the generation
    assert await store.get("Broker", namespace, "a") == labelled
    assert await store.get("Broker", namespace, "absent") is None


async def test_a_stale_resource_version_is_a_conflict(store: KubernetesStore, namespace: str) -> None:
    first = await store.create(broker("a", namespace))
    await store.update({**first, "spec": {"delivery": {"retry": 5}}})
    with pytest.raises(Conflict):
        await store.update({**first, "spec": {"delivery": {"retry": 6}}})
    with pytest.raises(Conflict):
        await store.update_status({**first, "status": {"observedGeneration": 1}})
    # Without a resourceVersion the write is unconditional, as the seam promises.
    unconditional = {**first, "metadata": {k: v for k, v in first["metadata"].items() if k != "resourceVersion"}}
    assert (await store.update({**unconditional, "spec": {"delivery": {"retry": 7}}}))["spec"] == {
        "delivery": {"retry": 7}}


async def test_status_and_spec_are_written_separately(store: KubernetesStore, namespace: str) -> None:
    created = await store.create(broker("a", namespace))
    status = {"conditions": [{"type": "Ready", "status": "True"}],
              "address": {"url": f"http://nerve-ingress.nerve.svc.cluster.local/{namespace}/a"}}
    with_status = await store.update_status({**created, "spec": {"ignored": True}, "status": status})
    assert with_status["status"] == status and with_status["spec"] == created["spec"]
    respec = await store.update({**with_status, "spec": {"delivery": {"retry": 1}}, "status": {}})
    assert respec["status"] == status and respec["spec"] == {"delivery": {"retry": 1}}


async def test_create_update_and_delete_refuse_what_they_cannot_do(store: KubernetesStore, namespace: str) -> None:
    await store.create(broker("a", namespace))
    with pytest.raises(Conflict):
        await store.create(broker("a", namespace))
    with pytest.raises(NotFound):
        await store.update(broker("absent", namespace))
    with pytest.raises(NotFound):
        await store.delete("Broker", namespace, "absent")


async def test_finalizers_hold_a_deleted_object_until_they_are_removed(store: KubernetesStore, namespace: str) -> None:
    created = await store.create(broker("a", namespace, finalizers=["nerve.dev/topic"]))
    marked = await store.delete("Broker", namespace, "a")
    assert marked is not None and marked["metadata"]["deletionTimestamp"]
    assert marked["metadata"]["uid"] == created["metadata"]["uid"]
    released = {**marked, "metadata": {**marked["metadata"], "finalizers": []}}
    await store.update(released)
    assert await store.get("Broker", namespace, "a") is None
    await store.create(broker("b", namespace))
    assert await store.delete("Broker", namespace, "b") is None


async def test_list_and_watch_follow_changes_from_a_listed_version(store: KubernetesStore, namespace: str) -> None:
    await store.create(broker("before", namespace))
    listed = await store.list("Broker", namespace)
    assert [(o["kind"], o["metadata"]["name"]) for o in listed.items] == [("Broker", "before")]
    events: list[WatchEvent] = []

    async def follow() -> None:
        async for event in store.watch("Broker", namespace, resource_version=listed.resource_version):
            events.append(event)
            if event.type == "DELETED":
                return

    task = asyncio.create_task(follow())
    created = await store.create(broker("after", namespace))
    await store.update({**created, "spec": {"delivery": {"retry": 9}}})
    await store.delete("Broker", namespace, "after")
    await asyncio.wait_for(task, timeout=30)
    assert [(e.type, e.object["metadata"]["name"]) for e in events] == [
        ("ADDED", "after"), ("MODIFIED", "after"), ("DELETED", "after")]
    assert events[1].object["spec"] == {"delivery": {"retry": 9}}
