"""Next to a real Knative Eventing (docs/kubernetes.md): with `--broker-classes` and `--channel-kinds` the
operator reconciles only its own Brokers and channels. Against the real API server, the operator a process
with its webhooks over TLS: a Broker of Knative's class `MTChannelBasedBroker`, its Trigger, an
InMemoryChannel and its Subscription keep what the user sent (no defaults, no refusal, no status, no
finalizer) while Nerve's own-class Broker and its Trigger go Ready."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

from kubernetes import client, config, dynamic
from kubernetes.client.rest import ApiException

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

CLASS = "eventing.knative.dev/broker.class"


def as_user(kubeconfig: Path, k8s_client: client.ApiClient, user: str) -> client.ApiClient:
    """A client acting as `user` (impersonated by the admin, whom the operator runs as and its webhooks
    trust), allowed everything."""
    binding = {"metadata": {"name": f"{user}-admin"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
               "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]}
    try:
        client.RbacAuthorizationV1Api(k8s_client).create_cluster_role_binding(binding)
    except ApiException as exc:
        assert exc.status == 409
    api = config.new_client_from_config(config_file=str(kubeconfig))
    api.set_default_header("Impersonate-User", user)
    return api


def get(dyn: dynamic.DynamicClient, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = dyn.resources.get(api_version=api_version, kind=kind).get(
        name=name, namespace=namespace).to_dict()
    return found


def ready(obj: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True"
               for c in (obj.get("status") or {}).get("conditions") or [])


def manifests(namespace: str) -> list[dict[str, Any]]:
    def meta(name: str, **extra: Any) -> dict[str, Any]:
        return {"name": name, "namespace": namespace, **extra}
    sink = {"uri": "http://display.example/"}
    return [
        {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker",
         "metadata": meta("knative", annotations={CLASS: "MTChannelBasedBroker"})},
        {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker",
         "metadata": meta("nerve", annotations={CLASS: "NatsJetStreamBroker"})},
        {"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger", "metadata": meta("on-nerve"),
         "spec": {"broker": "nerve", "subscriber": sink}},
        # No subscriber: Nerve's webhook refuses that on its own Brokers; this one is Knative's to judge.
        {"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger", "metadata": meta("on-knative"),
         "spec": {"broker": "knative"}},
        {"apiVersion": "messaging.knative.dev/v1", "kind": "InMemoryChannel", "metadata": meta("imc")},
        {"apiVersion": "messaging.knative.dev/v1", "kind": "Subscription", "metadata": meta("to-imc"),
         "spec": {"channel": {"apiVersion": "messaging.knative.dev/v1", "kind": "InMemoryChannel", "name": "imc"},
                  "subscriber": sink}},
    ]


async def test_the_operator_leaves_knatives_brokers_and_channels_alone(
        kube_apiserver: Path, k8s_client: client.ApiClient, nats_url: str, tmp_path: Path) -> None:
    install_crds(k8s_client)
    core = client.CoreV1Api(k8s_client)
    home = f"nerve-{uuid.uuid4().hex[:6]}"
    namespace = f"both-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": home}})
    core.create_namespace({"metadata": {"name": namespace}})
    certs = make_cert(tmp_path / "certs")
    operator = Operator(kube_apiserver, tmp_path / "op", home, nats_url=nats_url, webhook_port=free_port(),
                        certs=certs, lease_name=f"coexist-{uuid.uuid4().hex[:6]}",
                        extra=["--broker-classes", "NatsJetStreamBroker", "--channel-kinds", "NatsJetStreamChannel"])
    operator.start()
    user = as_user(kube_apiserver, k8s_client, "carol")
    dyn = dynamic.DynamicClient(user)
    sent = manifests(namespace)
    try:
        install_webhooks(k8s_client, certs, operator.webhook_port)
        for manifest in sent:
            await asyncio.to_thread(apply, dyn, manifest)

        def own_ready() -> bool:
            return all(ready(get(dyn, "eventing.knative.dev/v1", kind, namespace, name))
                       for kind, name in (("Broker", "nerve"), ("Trigger", "on-nerve")))
        try:
            await asyncio.to_thread(wait_for, "Nerve's Broker and Trigger Ready", own_ready)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{operator.log()}") from None
        nerve = get(dyn, "eventing.knative.dev/v1", "Broker", namespace, "nerve")
        assert "delivery" in nerve["spec"]  # defaulted by Nerve's webhook: its own class
        assert nerve["metadata"]["finalizers"]

        # The same pass saw the others, and a resync later still writes nothing of theirs.
        await asyncio.sleep(1.0)
        for manifest in sent[:1] + sent[3:]:
            stored = get(dyn, manifest["apiVersion"], manifest["kind"], namespace, manifest["metadata"]["name"])
            what = f"{manifest['kind']} {manifest['metadata']['name']}"
            assert not stored.get("status"), f"{what}: Nerve wrote {stored.get('status')}"
            assert not stored["metadata"].get("finalizers"), what
            assert stored.get("spec") == manifest.get("spec"), f"{what}: the webhook changed the spec"
            assert (stored["metadata"].get("annotations") or {}) == (manifest["metadata"].get("annotations") or {})
    finally:
        user.close()
        remove_webhooks(k8s_client)
        code = operator.stop()
        delete_namespaces(core, namespace, home)
    assert code == 0, operator.log()
