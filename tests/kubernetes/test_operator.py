"""The operator (`python -m control --store kubernetes`) as a process against the real API server, with its
admission webhooks over TLS: Knative's getting-started YAML applied as `kubectl apply` sends it (by a user
that is not the operator, undefaulted), and the cluster's state checked as a user would check it.

No kubelet runs here, so no Pod starts: the data plane's Deployments never run, and delivery through
ingress and dispatcher is covered by the topology tests (tests/e2e, tests/contract). What is checked is
what the operator does: defaults and refusals by its webhooks, statuses, the contract ConfigMap, the
Kafka topic of a Broker and the finalizer that removes it, leader election between two replicas.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from kubernetes import client, config, dynamic
from kubernetes.client.rest import ApiException

from control.api.admission import AdmissionSettings, admit
from control.api.broker import DEFAULT_CLASS_FOR_BACKEND
from control.operator.contract_configmap import ContractConfigMaps
from core.contract import Contract
from core.errors import InvalidResource
from tests.kubernetes.operator import (
    INGRESS,
    Operator,
    as_chart_account,
    free_port,
    install_webhooks,
    make_cert,
    remove_webhooks,
    wait_for,
)
from tests.kubernetes.support import GETTING_STARTED, apply, documents, install_crds

USER = "alice"
"""Who applies the YAML: a user, not the operator (whose own writes its webhooks let through)."""


@pytest.fixture
def as_user(kube_apiserver: Path, k8s_client: client.ApiClient) -> Iterator[client.ApiClient]:
    """A client acting as user `alice` (impersonated by the admin), allowed everything by a ClusterRoleBinding."""
    rbac = client.RbacAuthorizationV1Api(k8s_client)
    binding = {"metadata": {"name": f"{USER}-admin"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
               "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": USER}]}
    try:
        rbac.create_cluster_role_binding(binding)
    except ApiException as exc:
        assert exc.status == 409
    api = config.new_client_from_config(config_file=str(kube_apiserver))
    api.set_default_header("Impersonate-User", USER)
    try:
        yield api
    finally:
        api.close()


def getting_started(namespace: str) -> list[dict[str, Any]]:
    """The README's YAML in `namespace`; the displays' Services without embedded mode's nerve.dev/url, as on
    a cluster (their address is then the Service's DNS name)."""
    out = []
    for manifest in documents(sorted(GETTING_STARTED.glob("*.yaml"))):
        manifest = copy.deepcopy(manifest)
        if manifest["kind"] == "Namespace":
            manifest["metadata"]["name"] = namespace
        else:
            manifest["metadata"]["namespace"] = namespace
            manifest["metadata"].pop("annotations", None)
        out.append(manifest)
    return out


def ready(obj: dict[str, Any] | None) -> bool:
    conditions = ((obj or {}).get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def get(dyn: dynamic.DynamicClient, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
    api_version = "eventing.knative.dev/v1"
    try:
        found: dict[str, Any] = dyn.resources.get(api_version=api_version, kind=kind).get(
            name=name, namespace=namespace).to_dict()
        return found
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def wait_ready(dyn: dynamic.DynamicClient, kind: str, namespace: str, name: str, *operators: Operator,
               timeout: float = 30) -> dict[str, Any]:
    """The object once Ready; failing, the test says its status and the operators' logs."""
    try:
        found: dict[str, Any] = wait_for(f"{kind} {name} Ready",
                                         lambda: (o := get(dyn, kind, namespace, name)) and ready(o) and o,
                                         timeout=timeout)
    except AssertionError as exc:
        logs = "\n".join(op.log() for op in operators)
        raise AssertionError(f"{exc}\n{kind} {name}: {(get(dyn, kind, namespace, name) or {}).get('status')}\n"
                             f"{logs}") from None
    return found


def standby_contract(operator: Operator) -> Contract | None:
    """What a replica's control API answers a data plane's long poll with (`--contract-from control`)."""
    token = (operator.state / "token").read_text().strip()
    request = urllib.request.Request(f"http://127.0.0.1:{operator.port}/api/v1/contract?after=-1&timeoutSeconds=1",
                                     headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return Contract.loads(response.read()) if response.status == 200 else None


def status_writer(obj: dict[str, Any]) -> set[str]:
    """Who wrote an object's status (managedFields of the status subresource)."""
    return {f["manager"] for f in obj["metadata"].get("managedFields") or [] if f.get("subresource") == "status"}


async def topics(bootstrap: str) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return list(await admin.list_topics())
    finally:
        await admin.close()


async def test_the_operator_reconciles_getting_started_with_its_webhooks_and_kafka(
        kube_apiserver: Path, k8s_client: client.ApiClient, as_user: client.ApiClient, kafka_bootstrap: str,
        tmp_path: Path) -> None:
    install_crds(k8s_client)
    core = client.CoreV1Api(k8s_client)
    home = f"nerve-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": home}})
    certs = make_cert(tmp_path / "certs")
    operator = Operator(kube_apiserver, tmp_path / "op", home, kafka_bootstrap=kafka_bootstrap,
                        webhook_port=free_port(), certs=certs)
    operator.start()
    user = dynamic.DynamicClient(as_user)
    admin = dynamic.DynamicClient(k8s_client)
    namespace = f"gs-{uuid.uuid4().hex[:6]}"
    try:
        install_webhooks(k8s_client, certs, operator.webhook_port)
        for manifest in getting_started(namespace):
            await asyncio.to_thread(apply, user, manifest)

        broker = await asyncio.to_thread(wait_ready, admin, "Broker", namespace, "default", operator)
        # Defaulted by the mutating webhook: the class of the operator's backend, Knative's delivery defaults.
        assert broker["metadata"]["annotations"]["eventing.knative.dev/broker.class"] == "Kafka"
        assert broker["status"]["address"]["url"] == f"{INGRESS}/{namespace}/default"
        assert broker["status"]["observedGeneration"] == broker["metadata"]["generation"]
        assert "nerve.dev/backend-cleanup" in broker["metadata"]["finalizers"]
        topic = f"knative-broker.{namespace}.default"
        assert topic in await topics(kafka_bootstrap)
        for name in ("hello-display", "goodbye-display"):
            trigger = await asyncio.to_thread(wait_ready, admin, "Trigger", namespace, name, operator)
            assert trigger["metadata"]["labels"]["eventing.knative.dev/broker"] == "default"
            assert trigger["status"]["subscriberUri"] == f"http://{name}.{namespace}.svc.cluster.local"

        # The contract ConfigMap the data plane mounts names the Broker and both Triggers.
        def contract_names() -> list[str] | None:
            contract = asyncio.run(ContractConfigMaps(k8s_client, home, "nerve-contract").read())
            mine = [r for r in (contract.resources if contract else ()) if r.reference.namespace == namespace]
            return sorted(e.reference.name for e in mine[0].egresses) if mine and mine[0].egresses else None
        assert await asyncio.to_thread(wait_for, "the contract ConfigMap", contract_names) == [
            "goodbye-display", "hello-display"]

        # An invalid Trigger is refused by the validating webhook, with the message `nerve apply` prints.
        invalid = {"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger",
                   "metadata": {"name": "no-subscriber", "namespace": namespace},
                   "spec": {"broker": "default", "filter": {"attributes": {"type": "greeting"}}}}
        with pytest.raises(InvalidResource) as nerve_says:
            admit(copy.deepcopy(invalid), None, AdmissionSettings())
        with pytest.raises(ApiException) as refused:
            await asyncio.to_thread(apply, user, invalid)
        assert refused.value.status == 422
        assert json.loads(refused.value.body)["message"] == (
            f'admission webhook "validation.nerve.knative.dev" denied the request: {nerve_says.value}')
        assert str(nerve_says.value) == "spec.subscriber: required"
        assert get(admin, "Trigger", namespace, "no-subscriber") is None

        # kubectl delete broker default: the finalizer holds it until the topic is gone from Kafka.
        await asyncio.to_thread(lambda: user.resources.get(api_version="eventing.knative.dev/v1", kind="Broker")
                                .delete(name="default", namespace=namespace))
        await asyncio.to_thread(wait_for, "the Broker deleted",
                                lambda: get(admin, "Broker", namespace, "default") is None)
        assert topic not in await topics(kafka_bootstrap)
    finally:
        remove_webhooks(k8s_client)
        code = operator.stop()
        core.delete_namespace(namespace)
        core.delete_namespace(home)
    assert code == 0, operator.log()


async def test_two_replicas_elect_one_leader_and_the_standby_takes_over_after_kill_9(
        kube_apiserver: Path, k8s_client: client.ApiClient, nats_url: str, tmp_path: Path) -> None:
    install_crds(k8s_client)
    core = client.CoreV1Api(k8s_client)
    coordination = client.CoordinationV1Api(k8s_client)
    home = f"nerve-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": home}})
    namespace = f"le-{uuid.uuid4().hex[:6]}"
    # Both replicas run as the chart's control ServiceAccount, with only the rights its RBAC grants.
    account = as_chart_account(k8s_client, kube_apiserver, home, home, tmp_path / "account")
    names = {"lease_name": f"{home}-control", "contract_configmap": f"{home}-contract"}
    first = Operator(account, tmp_path / "a", home, nats_url=nats_url, **names).start()
    second = Operator(account, tmp_path / "b", home, nats_url=nats_url, **names).start()
    admin = dynamic.DynamicClient(k8s_client)
    try:
        leader = wait_for("a leader", lambda: coordination.read_namespaced_lease(f"{home}-control", home)
                          .spec.holder_identity)
        manifests = getting_started(namespace)
        triggers = [m for m in manifests if m["kind"] == "Trigger"]
        # Defaulted as the webhooks would (they are the other test's; here the writes come from the admin).
        defaults = AdmissionSettings(DEFAULT_CLASS_FOR_BACKEND["nats"])
        for manifest in manifests:
            if manifest["kind"] != "Trigger":
                apply(admin, admit(manifest, None, defaults).obj)
        broker = wait_ready(admin, "Broker", namespace, "default", first, second)
        leading = first if f"{leader} leads" in first.log() else second
        standby = second if leading is first else first
        # Only the leader wrote the status.
        assert status_writer(broker) == {leader}

        # kill -9 the leader: its Lease is not released, the standby takes it once it has expired.
        before = await ContractConfigMaps(k8s_client, home, f"{home}-contract").read()
        assert before is not None and before.generation > 0
        # The standby answers the data plane's long poll (the control Service balances over both) with the
        # leader's contract, read from the ConfigMap.
        assert wait_for("the standby's contract", lambda: standby_contract(standby) == before)
        killed_at = time.monotonic()
        leading.kill()
        successor = wait_for("another leader", lambda: (h := coordination.read_namespaced_lease(
            f"{home}-control", home).spec.holder_identity) != leader and h, timeout=20, interval=0.1)
        took = time.monotonic() - killed_at
        assert took <= leading.lease_duration + 2, f"took over after {took:.1f}s"

        # The getting-started Triggers, applied now, go Ready: reconciled by the new leader.
        for manifest in triggers:
            apply(admin, admit(manifest, None, defaults).obj)
        for manifest in triggers:
            name = manifest["metadata"]["name"]
            trigger = wait_ready(admin, "Trigger", namespace, name, first, second)
            assert status_writer(trigger) == {successor}
        assert standby.process is not None and standby.process.poll() is None
        # The contract ConfigMap the new leader wrote goes on from the old leader's generations.
        contract = await ContractConfigMaps(k8s_client, home, f"{home}-contract").read()
        assert contract is not None and contract.generation > before.generation
        assert sorted(e.reference.name for r in contract.resources if r.reference.namespace == namespace
                      for e in r.egresses) == ["goodbye-display", "hello-display"]
        assert f"{successor} leads" in standby.log()
    finally:
        first.stop()
        second.stop()
        core.delete_namespace(namespace)
        core.delete_namespace(home)
