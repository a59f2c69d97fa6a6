"""The local API server is real: objects written with the official client are stored in etcd and read
back as Kubernetes serves them."""

from __future__ import annotations

import uuid

from kubernetes import client


def test_a_namespace_and_a_configmap_round_trip(k8s_client: client.ApiClient) -> None:
    core = client.CoreV1Api(k8s_client)
    name = f"roundtrip-{uuid.uuid4().hex[:8]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    core.create_namespaced_config_map(name, client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="greeting"), data={"hello": "world"}))

    namespace = core.read_namespace(name)
    configmap = core.read_namespaced_config_map("greeting", name)

    assert namespace.status.phase == "Active"
    assert configmap.data == {"hello": "world"}
    assert configmap.metadata.uid and configmap.metadata.resource_version
    assert "greeting" in {cm.metadata.name for cm in core.list_namespaced_config_map(name).items}
