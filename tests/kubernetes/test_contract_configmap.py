"""The data-plane contract as ConfigMaps in the real API server (control/operator/contract_configmap.py):
a contract of 10,000 Triggers (eight times the ~1,200 at which Knative's single contract ConfigMap reaches
the 1 MiB object limit) is written, read back from the API server and, mounted as a kubelet would mount
the ConfigMaps, by the data plane's reader. Gzipped, 10,000 Triggers (4.9 MB of JSON) take about 650 KB:
one ConfigMap. Written in smaller parts, the same contract spans several ConfigMaps and reassembles the
same; a smaller contract then removes the parts it no longer needs."""

from __future__ import annotations

import base64
import uuid
from pathlib import Path

from kubernetes import client

from control.operator.contract_configmap import ContractConfigMaps, part_name
from core.contract import PART_BYTES, Contract, Egress, Reference, Resource, read


def big_contract(triggers: int, generation: int) -> Contract:
    brokers = []
    for b in range(10):
        egresses = tuple(
            Egress(uid=str(uuid.uuid4()), reference=Reference(str(uuid.uuid4()), f"ns-{b}", f"trigger-{i}", "Trigger"),
                   consumer_group=f"knative-trigger.ns-{b}.trigger-{i}",
                   destination=f"http://subscriber-{i}.ns-{b}.svc.cluster.local/",
                   filter_attributes={"type": f"dev.example.order.{i}", "source": f"/orders/{b}/{i}"})
            for i in range(triggers // 10))
        broker = Reference(str(uuid.uuid4()), f"ns-{b}", "default", "Broker")
        brokers.append(Resource(uid=broker.uid, reference=broker, backend="kafka",
                                topic=f"knative-broker.ns-{b}.default", ingress_path=f"/ns-{b}/default",
                                egresses=egresses))
    return Contract(generation, tuple(brokers))


def mount(core: client.CoreV1Api, namespace: str, name: str, directory: Path, parts: int = 64) -> None:
    """What a kubelet writes for a projected volume of `<name>`, `<name>-1`, ... (optional): one file per key."""
    directory.mkdir()
    for i in range(parts):
        try:
            cm = core.read_namespaced_config_map(part_name(name, i), namespace)
        except client.ApiException as exc:
            assert exc.status == 404
            continue
        for key, value in (cm.data or {}).items():
            (directory / key).write_text(value)
        for key, value in (cm.binary_data or {}).items():
            (directory / key).write_bytes(base64.b64decode(value))


async def test_a_contract_of_10000_triggers_round_trips_through_configmaps(
        k8s_client: client.ApiClient, tmp_path: Path) -> None:
    core = client.CoreV1Api(k8s_client)
    namespace = f"contract-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": namespace}})
    # The chart's ConfigMap, as it installs it (the operator patches it, keeping Helm's labels).
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "nerve-contract", "labels": {"helm": "yes"}},
                                                  "data": {"contract.json": '{"generation": 0, "resources": []}'}})
    writer = ContractConfigMaps(k8s_client, namespace, "nerve-contract")
    assert await writer.read() == Contract(0)

    contract = big_contract(10_000, 5)
    assert sum(len(r.egresses) for r in contract.resources) == 10_000
    await writer.write(contract)
    head = core.read_namespaced_config_map("nerve-contract", namespace)
    assert head.metadata.labels == {"helm": "yes"}
    assert "contract.json" not in (head.data or {})
    assert 0 < sum(len(base64.b64decode(v)) for v in head.binary_data.values()) <= PART_BYTES
    mount(core, namespace, "nerve-contract", tmp_path / "whole")
    assert read(tmp_path / "whole") == contract

    # In parts of 256 KiB (a contract past PART_BYTES gzipped, some 14,000 Triggers, splits the same way).
    contract = big_contract(10_000, 6)
    writer = ContractConfigMaps(k8s_client, namespace, "nerve-contract", part_bytes=256 * 1024)
    await writer.write(contract)
    assert core.read_namespaced_config_map("nerve-contract-2", namespace).binary_data

    # A new leader reads it back from the API server; the data plane reads the mounted files.
    assert await ContractConfigMaps(k8s_client, namespace, "nerve-contract").read() == contract
    mount(core, namespace, "nerve-contract", tmp_path / "mounted")
    assert read(tmp_path / "mounted") == contract

    # A small contract again: one ConfigMap, the parts it no longer needs deleted.
    small = big_contract(10, 7)
    await writer.write(small)
    names = {cm.metadata.name for cm in core.list_namespaced_config_map(namespace).items}
    assert "nerve-contract-1" not in names
    mount(core, namespace, "nerve-contract", tmp_path / "again")
    assert read(tmp_path / "again") == small
    core.delete_namespace(namespace)
